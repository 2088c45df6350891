"""What the business rules cost: in create and on receipt, per message, against another tree.

    python bench/rules.py [--runs 7] [--seconds 0.1] [--series 1000]
    python bench/rules.py --compare /path/to/an/old/checkout [--runs 7]

Six messages, each as it is sent (the rules ``create_message`` runs: the stateless ones,
``DEFAULT_RULES.check``) and as it is received (every enabled rule, the stateful ones against
an archive that holds what the message names, in a memory store and in a SQLite store:
``Exchange.rule_problems``): a 96-ISP FlexOffer at the DSO, a 96-ISP FlexRequest and the
FlexOrder of the whole 96-ISP option at the AGR, a 96-ISP D-Prognosis at the DSO, and at the
AGR a FlexSettlement of that order and a D-PrognosisResponse naming it (#18). Beside them,
what taking the message in costs before any rule (open the envelope, verify, parse).

Each round runs in a process of its own (``python bench/rules.py --worker``, its pyuftp the
tree's: ``PYTHONPATH=<tree>``) that builds the archives, then times each figure for
``--seconds`` of its own CPU; with ``--compare`` the rounds alternate between this tree and
the other (A B, B A, ...), so that a machine getting busier weighs on both alike. Figures are
µs of CPU per message, median [min-max] of ``--runs`` rounds; the ratio is that of the
medians, with the range of the per-round ratios. "in look-ups" is the part of "receipt
sqlite" spent inside the store's ``find``/``query``/``highest_revision`` (timed by a wrapper
on the real store object, which adds a little); the calls per message follow the table.

Then (this tree only, without ``--compare``) a day of D-Prognoses (#16.5): ``--series`` of them
for one congestion point and day, revisions rising, each archived as the inbox does and then
checked by every rule: the CPU of the rules for the first and the last 100 (median). It
should not grow with the day's count.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
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
ROOT = Path(__file__).resolve().parents[1]
# label: (message type, sender role); the receiver is the other of AGR and DSO
MESSAGES = {"FlexOffer 96": ("FlexOffer", "AGR"), "FlexRequest 96": ("FlexRequest", "DSO"),
            "FlexOrder 96": ("FlexOrder", "DSO"), "D-Prognosis 96": ("D-Prognosis", "AGR"),
            "FlexSettlement": ("FlexSettlement", "DSO"),
            "D-PrognosisResponse": ("D-PrognosisResponse", "DSO")}
COUNTED = ("find", "query", "highest_revision")


def fresh(message_type: str, **fields: Any) -> dict[str, Any]:
    payload = example(message_type, now=NOW)
    payload.update(fields)
    return payload


def archived(store: Store, direction: str, message_type: str, payload: dict[str, Any],
             roles: tuple[str, str]) -> None:
    xml = pyuftp.create_message(message_type, payload, rules=False).encode()
    store.archive(entry(direction, message_type, payload, xml, *roles))


def whole_day(message_type: str, **fields: Any) -> dict[str, Any]:
    """A FlexRequest (ISPs 69-72 Requested, the rest Available) or a D-Prognosis with one
    ISP a line for the 96 ISPs of the day, a new message of the example's conversation."""
    if message_type == "FlexRequest":
        isps = [{"disposition": "Requested", "min_power": -400000, "max_power": -150000,
                 "start": n} if 69 <= n <= 72 else
                {"disposition": "Available", "min_power": -300000, "max_power": 200000,
                 "start": n} for n in range(1, 97)]
    else:
        isps = [{"start": n, "power": 380000 + n} for n in range(1, 97)]
    return fresh(message_type, isps=isps, message_id=str(uuid.uuid4()), **fields)


def scene(store: Store) -> dict[str, dict[str, Any]]:
    """Fill ``store`` as both parties' archive; return the payloads to judge, by label."""
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
    return {"FlexOffer 96": offer, "FlexRequest 96": whole_day("FlexRequest", revision=1),
            "FlexOrder 96": order,
            "D-Prognosis 96": whole_day("D-Prognosis", revision=prognosis["revision"] + 1),
            "FlexSettlement": settlement, "D-PrognosisResponse": answer}


def cpu(action: Any, seconds: float) -> float:
    """µs of this process's CPU per call of ``action``, over about ``seconds`` of it."""
    action()  # warm: caches, the first parse of what the message names
    count, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        action()
        count += 1
    return (time.process_time() - started) / count * 1e6


def counted(store: Store, action: Any, seconds: float) -> tuple[int, float]:
    """The calls ``action`` makes of the store's look-ups (wrapped on the real object) and
    the µs of CPU per ``action`` spent inside them (over about ``seconds``)."""
    calls, inside = [0], [0.0]
    for name in COUNTED:
        real = getattr(store, name)

        def wrapper(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            calls[0] += 1
            started = time.process_time()
            try:
                return _real(*args, **kwargs)
            finally:
                inside[0] += time.process_time() - started

        setattr(store, name, wrapper)
    try:
        action()
        once = calls[0]
        inside[0], count, started = 0.0, 0, time.process_time()
        while time.process_time() - started < seconds:
            action()
            count += 1
    finally:
        for name in COUNTED:
            delattr(store, name)  # the class's method again
    return once, inside[0] / count * 1e6


def measure(seconds: float) -> dict[str, Any]:
    """One round in this process: every figure once, with this process's pyuftp."""
    from pyuftp.rules import DEFAULT_RULES
    from pyuftp.message.codec import build_message

    figures: dict[str, float] = {}
    calls: dict[str, int] = {}
    problems: dict[str, list[str]] = {}
    exchanges = {"DSO": Exchange("dso.example.com", "DSO"),
                 "AGR": Exchange("agr.example.com", "AGR")}
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("memory", "sqlite"):
            store: Store = (MemoryStore() if kind == "memory"
                            else SQLiteStore(Path(folder) / "rules.sqlite"))
            try:
                archive = StoreLookups(store)
                for label, payload in scene(store).items():
                    message_type, sender = MESSAGES[label]
                    exchange = exchanges["DSO" if sender == "AGR" else "AGR"]
                    if kind == "memory":  # the rules create_message runs, on the payload sent
                        sent = build_message(message_type, payload)[1]
                        figures[f"{label}|create"] = cpu(
                            lambda: DEFAULT_RULES.check(message_type, sent), seconds)
                    data = seal_message(message_type, payload, KEYS[sender][0], sender)[0]
                    received = exchange.judge(open_envelope(data), KEYS[sender][1],
                                              data).received
                    assert received is not None, label
                    problems[f"{label}|{kind}"] = exchange.rule_problems(received, archive)
                    figures[f"{label}|receipt {kind}"] = cpu(
                        lambda: exchange.rule_problems(received, archive), seconds)
                    if kind == "sqlite":
                        calls[label], figures[f"{label}|in look-ups"] = counted(
                            store, lambda: exchange.rule_problems(received, archive), seconds)
                        figures[f"{label}|take in"] = cpu(lambda: exchange.judge(
                            open_envelope(data), KEYS[sender][1], data), seconds)
            finally:
                if isinstance(store, SQLiteStore):
                    store.close()
    return {"figures": figures, "calls": calls, "problems": problems}


def worker(tree: Path, seconds: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run([sys.executable, __file__, "--worker", "--seconds", str(seconds)],
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} [{min(values):.0f}-{max(values):.0f}]"


def report(rounds: dict[Path, list[dict[str, Any]]], trees: list[Path]) -> None:
    runs = len(rounds[trees[0]])
    names = [str(t) for t in trees]
    print(f"rules CPU per message, µs: median [min-max] of {runs} rounds"
          + (f"; ratio {names[0]} / {names[1]}" if len(trees) == 2 else ""))
    header = f"{'message':20s} {'what':15s}" + "".join(f" {n[-24:]:>24s}" for n in names)
    print(header + ("   ratio [per-round range]" if len(trees) == 2 else ""))
    order = ["create", "receipt memory", "receipt sqlite", "in look-ups", "take in"]
    keys = sorted(rounds[trees[0]][0]["figures"], key=lambda key: (
        list(MESSAGES).index(key.split("|")[0]), order.index(key.split("|")[1])))
    for key in keys:
        label, what = key.split("|")
        columns = [[r["figures"][key] for r in rounds[t]] for t in trees]
        line = f"{label:20s} {what:15s}" + "".join(f" {spread(c):>24s}" for c in columns)
        if len(trees) == 2:
            paired = [a / b for a, b in zip(*columns)]
            ratio = statistics.median(columns[0]) / statistics.median(columns[1])
            line += f"   {ratio:5.2f} [{min(paired):.2f}-{max(paired):.2f}]"
        print(line)
    for tree, name in zip(trees, names):
        last = rounds[tree][-1]
        print(f"store calls per message on receipt ({name}): "
              + ", ".join(f"{label} {n}" for label, n in last["calls"].items()))
        found = {k: v for k, v in last["problems"].items() if v}
        print(f"problems found ({name}): {found or 'none'}")
    if len(trees) == 2 and rounds[trees[0]][-1]["problems"] != rounds[trees[1]][-1]["problems"]:
        print("THE TREES FIND DIFFERENT PROBLEMS")


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
    parser.add_argument("--runs", type=int, default=7, help="rounds (per tree)")
    parser.add_argument("--seconds", type=float, default=0.1,
                        help="CPU seconds per figure and round")
    parser.add_argument("--compare", metavar="PATH", help="another tree, rounds alternating")
    parser.add_argument("--series", type=int, default=1000,
                        help="D-Prognoses in the day series (0: skip it)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.seconds)))
        return
    trees = [ROOT] + ([Path(args.compare).resolve()] if args.compare else [])
    rounds: dict[Path, list[dict[str, Any]]] = {tree: [] for tree in trees}
    for n in range(args.runs):
        for tree in trees if n % 2 == 0 else trees[::-1]:
            rounds[tree].append(worker(tree, args.seconds))
    report(rounds, trees)
    if args.series and not args.compare:
        series(MemoryStore(), "memory", args.series)
        with tempfile.TemporaryDirectory() as folder:
            with SQLiteStore(Path(folder) / "series.sqlite") as store:
                series(store, "sqlite", args.series)


if __name__ == "__main__":
    main()
