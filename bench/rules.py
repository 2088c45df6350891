"""What the business rules cost on receipt: a 96-ISP FlexOffer at a DSO, and a matching
FlexOrder at the AGR, a FlexSettlement of that order and a D-PrognosisResponse naming it
(#18), against the rest of taking a message in (open, verify, parse).

    python bench/rules.py [--runs 15] [--series 1000]

Each party's archive holds what the message names (the DSO's FlexRequest, the AGR's
D-Prognosis and offer, a portfolio update) in a memory store and in a SQLite store. Figures
are medians over ``--runs`` runs (min-max), in µs of one process's CPU per message.

Then a day of D-Prognoses (#16.5): ``--series`` of them for one congestion point and day,
revisions rising, each archived as the inbox does and then checked by every rule: the CPU of
the rules for the first and the last 100 (median). It should not grow with the day's count
(run it with ``PYTHONPATH=/work/before`` for the old figures).
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pyuftp
from pyuftp.store.archiving import StoreLookups, entry
from pyuftp.signing.envelope import open_envelope, seal_message
from pyuftp.message.examples import example, flex_offer_96
from pyuftp.core.exchange import Exchange
from pyuftp.store import MemoryStore, SQLiteStore, Store

NOW = dt.datetime.now(dt.timezone.utc)
KEYS = {"AGR": pyuftp.generate_keypair(), "DSO": pyuftp.generate_keypair()}


def fresh(message_type: str, **fields: Any) -> dict[str, Any]:
    payload = example(message_type, now=NOW)
    payload.update(fields)
    return payload


def archived(store: Store, direction: str, message_type: str, payload: dict[str, Any],
             roles: tuple[str, str]) -> None:
    xml = pyuftp.create_message(message_type, payload, rules=False).encode()
    store.archive(entry(direction, message_type, payload, xml, *roles))


def scene(store: Store) -> dict[str, bytes]:
    """Fill ``store`` as both parties' archive; return the signed messages to judge, by type."""
    request = fresh("FlexRequest")
    prognosis = fresh("D-Prognosis")
    portfolio = fresh("DSOPortfolioUpdate")
    offer = flex_offer_96()
    offer.update({k: v for k, v in fresh("FlexOffer").items()
                  if k in ("time_stamp", "period", "expiration_date_time", "message_id")})
    offer["expiration_date_time"] = NOW + dt.timedelta(hours=2)
    offer["flex_request_message_id"] = request["message_id"]
    offer["d_prognosis_message_id"] = prognosis["message_id"]
    option = offer["offer_options"][0]
    # the whole option, at its full price (no activation factor)
    order = fresh("FlexOrder", flex_offer_message_id=offer["message_id"],
                  d_prognosis_message_id=prognosis["message_id"], option_reference="A",
                  isps=[dict(i) for i in option["isps"]], price=option["price"])
    order.pop("activation_factor")
    archived(store, "out", "FlexRequest", request, ("DSO", "AGR"))       # the DSO's
    archived(store, "in", "D-Prognosis", prognosis, ("AGR", "DSO"))      # the DSO's
    archived(store, "out", "DSOPortfolioUpdate", portfolio, ("DSO", "CRO"))
    # the AGR's view: it sent the offer and the prognosis (one store holds both parties'
    # entries; their keys differ by direction)
    archived(store, "out", "FlexOffer", offer, ("AGR", "DSO"))
    archived(store, "out", "D-Prognosis", prognosis, ("AGR", "DSO"))
    # (#18) what the AGR then gets from the DSO: the order, a settlement of it, and the
    # answer to its D-Prognosis that names the order
    archived(store, "in", "FlexOrder", order, ("DSO", "AGR"))
    settled = dict(fresh("FlexSettlement")["flex_order_settlements"][0],
                   order_reference=order["order_reference"], period=order["period"],
                   d_prognosis_message_id=prognosis["message_id"])
    settlement = fresh("FlexSettlement", flex_order_settlements=[settled],
                       period_start=order["period"] - dt.timedelta(days=3),
                       period_end=order["period"] + dt.timedelta(days=3))
    answer = fresh("D-PrognosisResponse", d_prognosis_message_id=prognosis["message_id"],
                   conversation_id=prognosis["conversation_id"],
                   flex_order_statuses=[{"flex_order_message_id": order["message_id"],
                                         "is_validated": True}])
    return {"FlexOffer": seal_message("FlexOffer", offer, KEYS["AGR"][0], "AGR")[0],
            "FlexOrder": seal_message("FlexOrder", order, KEYS["DSO"][0], "DSO")[0],
            "FlexSettlement": seal_message("FlexSettlement", settlement, KEYS["DSO"][0],
                                           "DSO")[0],
            "D-PrognosisResponse": seal_message("D-PrognosisResponse", answer,
                                                KEYS["DSO"][0], "DSO")[0]}


def cpu(action: Any, seconds: float = 0.05) -> float:
    count, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        action()
        count += 1
    return (time.process_time() - started) / count * 1e6


def run(store: Store, label: str, runs: int) -> None:
    signed = scene(store)
    archive = StoreLookups(store)
    dso, agr = Exchange("dso.example.com", "DSO"), Exchange("agr.example.com", "AGR")
    parties = {message_type: (dso if sender == "AGR" else agr, signed[message_type], sender)
               for message_type, sender in (("FlexOffer", "AGR"), ("FlexOrder", "DSO"),
                                            ("FlexSettlement", "DSO"),
                                            ("D-PrognosisResponse", "DSO"))}
    for message_type, (exchange, data, sender) in parties.items():
        received = exchange.judge(open_envelope(data), KEYS[sender][1], data).received
        assert received is not None
        problems = exchange.rule_problems(received, archive)
        take, rules = [], []
        for _ in range(runs):
            take.append(cpu(lambda: exchange.judge(open_envelope(data), KEYS[sender][1], data)))
            rules.append(cpu(lambda: exchange.rule_problems(received, archive)))
        t, r = statistics.median(take), statistics.median(rules)
        print(f"{label:7s} {message_type:19s} open+verify+parse {t:7.1f} µs ({min(take):.0f}-"
              f"{max(take):.0f})   all rules {r:7.1f} µs ({min(rules):.0f}-{max(rules):.0f})"
              f"   rules / taking it in {r / t:5.1%}   problems: {problems or 'none'}")


def series(store: Store, label: str, count: int) -> None:
    """The rules' CPU per D-Prognosis over a day of ``count`` of them (each archived first)."""
    from pyuftp.rules import DEFAULT_RULES, Context

    archive = StoreLookups(store)
    costs = []
    for revision in range(1, count + 1):
        payload = fresh("D-Prognosis", revision=revision, message_id=str(uuid.uuid4()),
                        conversation_id=str(uuid.uuid4()))
        archived(store, "in", "D-Prognosis", payload, ("AGR", "DSO"))
        ctx = Context("D-Prognosis", payload, "in", "agr.example.com", NOW, lookups=archive)
        started = time.process_time()
        problems = DEFAULT_RULES.check_all(ctx)
        costs.append(time.process_time() - started)
        assert not problems, problems
    first, last = statistics.median(costs[:100]), statistics.median(costs[-100:])
    print(f"{label:7s} {count} D-Prognoses of a day: rules CPU per message, median of the first "
          f"100 {first * 1e3:6.2f} ms, of the last 100 {last * 1e3:6.2f} ms, all "
          f"{sum(costs):5.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--series", type=int, default=1000,
                        help="D-Prognoses in the day series (0: skip it)")
    args = parser.parse_args()
    run(MemoryStore(), "memory", args.runs)
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "rules.sqlite")
        try:
            run(store, "sqlite", args.runs)
        finally:
            store.close()
    if args.series:
        series(MemoryStore(), "memory", args.series)
        with tempfile.TemporaryDirectory() as folder:
            with SQLiteStore(Path(folder) / "series.sqlite") as store:
                series(store, "sqlite", args.series)


if __name__ == "__main__":
    main()
