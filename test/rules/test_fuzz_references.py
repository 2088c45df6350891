"""The rules that follow references (#18) under hostile messages: time, memory and look-ups
bounded by the message's size, never by a number in it nor by the ids it makes up.

The archive is a real store (memory and SQLite) holding the messages really named; a
counting wrapper around it (the real archive underneath) tells how many look-ups a rule made.
Cases: a FlexSettlement of 10,000 orders naming made-up ids (4 MB), or naming one real order
10,000 times; a D-PrognosisResponse of 10,000 made-up FlexOrder ids; FlexOffers with ISP
Durations of 2**31 - 1 and thousands of options against a real FlexRequest, and a hostile
FlexRequest behind an AGR's own offer. Then, derandomized, the interval arithmetic of
``offer.covers_request`` against a plain count of ISP numbers, for small numbers.
"""
from __future__ import annotations

import time
import tracemalloc
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyuftp
from pyuftp.message.examples import example
from pyuftp.rules import Context, Rules
from pyuftp.rules.references import UNKNOWN_LIMIT
from pyuftp.store import MemoryStore, SQLiteStore
from pyuftp.store.archiving import StoreLookups, entry

BIG = 2**31 - 1
AGR, DSO = "agr.example.com", "dso.example.com"


class Counted(StoreLookups):
    """The real archive of a store, counting the look-ups made through it."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.lookups = 0

    def find(self, *args: Any, **kwargs: Any) -> Any:
        self.lookups += 1
        return super().find(*args, **kwargs)

    def query(self, **criteria: Any) -> Any:
        self.lookups += 1
        return super().query(**criteria)


@pytest.fixture(params=["memory", "sqlite"])
def archive(request, tmp_path):
    store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "x.sqlite")
    yield Counted(store)
    store.close()


def put(archive: StoreLookups, direction: str, message_type: str, **fields: Any) -> dict:
    payload = example(message_type)
    payload.update(fields)
    xml = pyuftp.create_message(message_type, payload, rules=False).encode()
    roles = ("DSO", "AGR") if payload["sender_domain"] == DSO else ("AGR", "DSO")
    assert archive.store.archive(entry(direction, message_type, payload, xml, *roles))
    return payload


def only(rule_id: str) -> Rules:
    rules = Rules()
    rules.disable(*(r.id for r in rules if r.id != rule_id))
    return rules


def judge(archive: Counted, rule_id: str, message_type: str, payload: dict,
          direction: str = "in") -> tuple[list[str], float, int, int]:
    """(problems, seconds, tracemalloc peak bytes, look-ups) of one rule on one message."""
    counterparty = payload["sender_domain"] if direction == "in" else payload["recipient_domain"]
    ctx = Context(message_type, payload, direction, counterparty, payload["time_stamp"],
                  lookups=archive)
    archive.lookups = 0
    tracemalloc.start()
    started = time.perf_counter()
    try:
        problems = only(rule_id).check_all(ctx)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return problems, seconds, peak, archive.lookups


def settlement(count: int, **fields: Any) -> dict[str, Any]:
    payload = example("FlexSettlement")
    first = payload["flex_order_settlements"][0]
    one = dict(first, isps=first["isps"][:1])
    payload["flex_order_settlements"] = [
        dict(one, **{k: (v() if callable(v) else v) for k, v in fields.items()})
        for _ in range(count)]
    return payload


def test_a_settlement_of_10000_made_up_orders(archive):
    payload = settlement(10_000, order_reference=lambda: f"X-{uuid.uuid4()}",
                         d_prognosis_message_id=lambda: str(uuid.uuid4()))
    assert len(pyuftp.create_message("FlexSettlement", payload, rules=False)) > 3_000_000
    problems, seconds, peak, lookups = judge(archive, "settlement.references_known",
                                             "FlexSettlement", payload)
    assert problems and "not looked up after" in problems[-1]
    assert len(problems) <= UNKNOWN_LIMIT + 1
    assert lookups <= UNKNOWN_LIMIT + 2, lookups  # and the two portfolio reads
    assert seconds < 0.5 and peak < 5 * 2**20, (seconds, peak)


def test_a_settlement_naming_one_real_order_10000_times(archive):
    order = put(archive, "in", "FlexOrder")
    prognosis = put(archive, "out", "D-Prognosis")
    payload = settlement(10_000, order_reference=order["order_reference"],
                         period=order["period"],
                         d_prognosis_message_id=prognosis["message_id"])
    problems, seconds, peak, lookups = judge(archive, "settlement.references_known",
                                             "FlexSettlement", payload)
    assert problems == []
    assert lookups <= 4, lookups  # the order and the D-Prognosis once each, two portfolio reads
    assert seconds < 1.0 and peak < 10 * 2**20, (seconds, peak)


def test_a_prognosis_response_of_10000_made_up_orders(archive):
    put(archive, "out", "D-Prognosis")
    payload = example("D-PrognosisResponse")
    payload["flex_order_statuses"] = [{"flex_order_message_id": str(uuid.uuid4()),
                                       "is_validated": False} for _ in range(10_000)]
    problems, seconds, peak, lookups = judge(archive, "prognosis_response.orders_exist",
                                             "D-PrognosisResponse", payload)
    assert len(problems) == UNKNOWN_LIMIT + 1 and "not looked up" in problems[-1]
    assert lookups == UNKNOWN_LIMIT
    assert seconds < 0.5 and peak < 5 * 2**20, (seconds, peak)
    order = put(archive, "in", "FlexOrder", message_id=str(uuid.uuid4()))
    payload["flex_order_statuses"] = [{"flex_order_message_id": order["message_id"],
                                       "is_validated": True}] * 10_000
    problems, seconds, _, lookups = judge(archive, "prognosis_response.orders_exist",
                                          "D-PrognosisResponse", payload)
    assert problems == [] and lookups == 1 and seconds < 0.5


@pytest.mark.parametrize("options,isps_each", [(1, 1), (2_000, 5), (1, 20_000)],
                         ids=["one-huge-isp", "2000-options", "20000-isps"])
def test_an_offer_with_huge_durations_against_a_real_request(archive, options, isps_each):
    put(archive, "out", "FlexRequest")
    payload = example("FlexOffer")
    option = payload["offer_options"][1]
    payload["offer_options"] = [
        dict(option, option_reference=f"O{o}",
             isps=[{"start": 69 + 3 * i, "duration": BIG, "power": -1} for i in range(isps_each)])
        for o in range(options)]
    problems, seconds, peak, lookups = judge(archive, "offer.covers_request", "FlexOffer",
                                             payload)
    assert problems == []  # every option prices ISPs 69-72 (and far beyond the day)
    assert lookups == 1
    assert seconds < 1.0 and peak < 40 * 2**20, (seconds, peak)


def test_an_agrs_offer_against_a_hostile_request(archive):
    """The request came from the DSO: 10,000 requested runs, durations up to 2**31 - 1."""
    isps = [{"disposition": "Requested", "min_power": -1, "max_power": -1, "start": 1 + 7 * i,
             "duration": BIG if i % 2 else 3} for i in range(10_000)]
    put(archive, "in", "FlexRequest", isps=isps)
    problems, seconds, peak, _ = judge(archive, "offer.covers_request", "FlexOffer",
                                       example("FlexOffer"), direction="out")
    # two runs once merged: 1-3, and 8 on (the long ones swallow the rest)
    assert len(problems) == 2 and "ISPs 1-3 (and 1 more run)" in problems[0], problems
    assert seconds < 1.0 and peak < 40 * 2**20, (seconds, peak)


# --- the interval arithmetic against a count of ISP numbers ------------------------------------

SPANS = st.lists(st.tuples(st.integers(1, 40), st.integers(1, 6)), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(requested=SPANS, priced=st.lists(SPANS, min_size=1, max_size=3))
def test_covers_request_says_what_a_count_of_isps_says(requested, priced):
    store = MemoryStore()
    try:
        archive = Counted(store)
        put(archive, "out", "FlexRequest", isps=[
            {"disposition": "Requested", "min_power": -1, "max_power": -1, "start": s,
             "duration": d} for s, d in requested])
        payload = example("FlexOffer")
        option = payload["offer_options"][1]
        payload["offer_options"] = [dict(option, option_reference=f"O{o}", isps=[
            {"start": s, "duration": d, "power": -1} for s, d in spans])
            for o, spans in enumerate(priced)]
        ctx = Context("FlexOffer", payload, "in", AGR, payload["time_stamp"], lookups=archive)
        problems = only("offer.covers_request").check_all(ctx)
    finally:
        store.close()
    wanted = {n for s, d in requested for n in range(s, s + d)}
    covered = [{n for s, d in spans for n in range(s, s + d)} for spans in priced]
    if not wanted & set().union(*covered):
        assert problems == []  # none at all: offer.request_exists says so
    else:
        lacking = [o for o, numbers in enumerate(covered) if not wanted <= numbers]
        assert [p.split("]")[0] for p in problems] == [f"offer_options[{o}" for o in lacking]
