"""Every rule of the registry under adversarial values, with a time and memory bound per
message (issue #16, "the habit").

Each example takes a message type some rule applies to, its example payload (whose ids name
the other examples, all archived both ways in a memory store), and makes it hostile: dates
at the ends of the calendar, ISP starts and durations up to 2**31 - 1, ISP-Durations up to
2**31 - 1 minutes, thousands of ISPs (a message still of bounded size), odd time stamps and
strings with line separators. Every enabled rule (the default-off ones too) runs on it
through ``Rules.check_all`` with the archive; the whole check must take less than 0.5 s of CPU and
20 MB (tracemalloc peak), and no rule may raise (a raising rule shows as "could not be
checked"). Derandomized: the same examples in every run; the budget is a few seconds.

Before #16.2 the first explicit example (one ISP of Duration 10,000,000 in an offer naming
a real FlexRequest) took over a second and hundreds of MB in ``offer.request_exists``.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import pyuftp
from pyuftp.store.archiving import StoreLookups, entry
from pyuftp.message.examples import example as payload_of
from pyuftp.rules import BUILT_IN, Context, Rules
from pyuftp.rules.context import _isp_lists
from pyuftp.store import MemoryStore

UTC = dt.timezone.utc
TYPES = sorted({t for rule in BUILT_IN for t in rule.applies_to})
BIG = 2**31 - 1
TIME_BOUND, MEMORY_BOUND = 0.5, 20 * 2**20
ODD = ["ea1.2019-04.com.example.dso:cp\u2028INFO forged", "cp\x85next", "\u2029", "\x0b\x0c\x1c",
       "\ud7ff\ue000\U0010fffd", "a" * 300]
ZONES = ["Europe/Amsterdam", "Pacific/Kiritimati", "Etc/GMT+12", "UTC", "Mars/Olympus_Mons",
         "Europe/Amsterdam\u2028", ""]
DAYS = [dt.date.min, dt.date.max, dt.date(1, 1, 2), dt.date(9999, 12, 30), dt.date(2026, 11, 24)]
MOMENTS = [dt.datetime.min.replace(tzinfo=UTC), dt.datetime.max.replace(tzinfo=UTC),
           dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=-14))),
           dt.datetime(1, 1, 1, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=14)))]
NUMBERS = st.one_of(st.sampled_from([BIG, -BIG - 1, 0, 1, 96, 100, 10_000_000]),
                    st.integers(-BIG - 1, BIG))


def _archive() -> StoreLookups:
    """A memory store holding every example message, sent and received, for the lookups."""
    store = MemoryStore()
    for message_type in pyuftp.message.catalog.spec().message_types:
        if message_type == "SignedMessage":
            continue
        payload = payload_of(message_type)
        xml = pyuftp.create_message(message_type, payload, rules=False).encode()
        for direction in ("in", "out"):
            store.archive(entry(direction, message_type, payload, xml, "AGR", "DSO"))
    return StoreLookups(store)


ARCHIVE = _archive()
ALL_RULES = Rules()
ALL_RULES.enable(*(rule.id for rule in BUILT_IN))  # the default-off ones too


def _hostile_isps(template: dict[str, Any], spans: list[tuple[int, int]], copies: int
                  ) -> list[dict[str, Any]]:
    return [dict(template, start=start, duration=duration)
            for _ in range(copies) for start, duration in spans]


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    message_type = draw(st.sampled_from(TYPES))
    payload = payload_of(message_type)
    fields = {"period": st.sampled_from(DAYS), "time_zone": st.sampled_from(ZONES),
              "congestion_point": st.sampled_from(ODD),
              "isp_duration": st.sampled_from([dt.timedelta(minutes=BIG), dt.timedelta(0),
                                                dt.timedelta(microseconds=1),
                                                dt.timedelta(minutes=15)]),
              "time_stamp": st.sampled_from(MOMENTS),
              "expiration_date_time": st.sampled_from(MOMENTS),
              "revision": NUMBERS, "contract_id": st.sampled_from(ODD)}
    for key, strategy in fields.items():
        if key in payload and draw(st.booleans()):
            payload[key] = draw(strategy)
    spans = draw(st.lists(st.tuples(NUMBERS, st.integers(1, BIG)), min_size=1, max_size=8))
    copies = draw(st.sampled_from([1, 10, 500]))  # up to 4,000 ISPs a list
    for _, isps in _isp_lists(message_type, payload):
        if isps and draw(st.booleans()):
            isps[:] = _hostile_isps(isps[0], spans, copies)
    return message_type, payload, draw(st.sampled_from(["in", "out"]))


def _checked(message_type: str, payload: dict[str, Any], direction: str) -> list[str]:
    counterparty = payload["sender_domain" if direction == "in" else "recipient_domain"]
    ctx = Context(message_type, payload, direction, counterparty,
                  dt.datetime(2026, 11, 23, 12, tzinfo=UTC), lookups=ARCHIVE)
    tracemalloc.start()
    started = time.process_time()  # CPU: a busy machine does not stretch it
    try:
        problems = ALL_RULES.check_all(ctx)
        took = time.process_time() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert took < TIME_BOUND, f"{message_type}: {took:.2f} s"
    assert peak < MEMORY_BOUND, f"{message_type}: {peak / 2**20:.1f} MB"
    failed = [p for p in problems if "could not be checked" in p]
    assert not failed, failed
    return problems


def _offer(duration: int) -> tuple[str, dict[str, Any], str]:
    offer = payload_of("FlexOffer")
    offer["offer_options"][0]["isps"] = [{"start": 69, "duration": duration, "power": -1}]
    return "FlexOffer", offer, "in"


@settings(derandomize=True, max_examples=120, deadline=dt.timedelta(seconds=2),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@example(_offer(10_000_000))
@example(_offer(BIG))
@example(("FlexOffer", payload_of("FlexOffer") | {"period": dt.date(9999, 12, 31)}, "in"))
@example(("FlexOffer", payload_of("FlexOffer") | {"period": dt.date(1, 1, 1)}, "in"))
@given(hostile())
def test_every_rule_is_bounded_and_total_whatever_the_values(case):
    _checked(*case)


def test_the_extreme_cases_are_problems_of_the_message():
    """What the bound protects is reported, not skipped: off-calendar days and ISPs beyond
    the day are rule violations."""
    assert any("[isp.within_period]" in p for p in _checked(*_offer(BIG)))
    for day in (dt.date(9999, 12, 31), dt.date(1, 1, 1)):
        problems = _checked("FlexOffer", payload_of("FlexOffer") | {"period": day}, "in")
        assert any("[period.on_calendar]" in p and str(day) in p for p in problems), problems


def test_a_rule_that_raises_becomes_a_problem_naming_it(caplog):
    rules = Rules(rules=[])

    @rules.rule("offer.broken", ["FlexOffer"], "raises on a message of the AGR's")
    def broken(ctx):
        raise OverflowError("date value out of range\u2028FORGED " + "x" * 5000)

    @rules.rule("offer.fine", ["FlexOffer"], "finds one problem")
    async def fine(ctx):
        return ["one problem"]

    ctx = Context("FlexOffer", payload_of("FlexOffer"), "in", "agr.example.com")
    problems = rules.check_all(ctx) + asyncio.run(rules.check_async(ctx))
    assert problems == ["rule offer.broken could not be checked: OverflowError",
                        "one problem [offer.fine]"]
    assert rules.check("FlexOffer", payload_of("FlexOffer")) == [
        "rule offer.broken could not be checked: OverflowError"]
    lines = [r.getMessage() for r in caplog.records if r.name == "pyuftp.rules"]
    assert len(lines) == 2 and all("offer.broken" in line for line in lines)
    assert all(len(line) < 300 and "\u2028" not in line for line in lines)


@pytest.mark.parametrize("message_type", TYPES)
def test_every_type_checks_clean_as_an_example(message_type):
    """The examples themselves raise nothing (the fuzz's base is sound)."""
    _checked(message_type, payload_of(message_type), "in")
