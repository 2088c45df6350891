"""The rules' one pass and shared look-ups (issue #23): exactly the problems of the plain
paths, and one archive call per referenced message.

``pyuftp.rules.isps`` reads a message's ISP lists once; each rule that used to walk them
keeps its plain walk for ISPs that are not whole numbers in plain dicts, and for
``isps.FAST = False``. The property test draws messages (ordered days of ISPs, unsorted,
overlapping, empty lists, durations of 0 and below, numbers far beyond the day, 10**40, odd
types) and the archived messages they name (a real memory store), and requires every rule's
problems, texts and order, to be the same both ways, in create (``Rules.check``) and on
receipt (``Rules.check_all``), within a hypothesis deadline. Then the store's look-ups are
counted on a real SQLite store: several rules naming the same message cost one call.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import pyuftp
from pyuftp.message.examples import example as payload_of
from pyuftp.rules import BUILT_IN, Context, Rules, isps, stateful
from pyuftp.store import MemoryStore, SQLiteStore, Store
from pyuftp.store.archiving import StoreLookups, entry

RULES = "all"  # every business rule on (see conftest.business_rules)

UTC = dt.timezone.utc
BIG = 2**31 - 1
NOW = dt.datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
AGR, DSO = "agr.example.com", "dso.example.com"
ALL_RULES = Rules()
ALL_RULES.enable(*(rule.id for rule in BUILT_IN))  # the default-off ones too

STARTS = st.one_of(st.integers(1, 100), st.integers(-3, 3),
                   st.sampled_from([BIG, -BIG - 1, 10**40, -(10**40), 97, 100, 101]))
DURATIONS = st.one_of(st.none(), st.integers(1, 4), st.sampled_from([0, -1, -7, BIG, 10**40]))
POWERS = st.one_of(st.integers(-500_000, 500_000), st.sampled_from([0, 1, -1, 10**35, BIG]))
ODD = st.sampled_from([True, 3.0, "5", Decimal(4), None, [1]])
FACTORS = st.sampled_from([None, Decimal("0.80"), Decimal("1"), Decimal("0.333"),
                           Decimal("0.50"), Decimal("1E-40"), Decimal("1E+40"), Decimal("NaN"),
                           Decimal("0.1234567890123456789012345678901234567"), 0.8, 1])


def _isp(start: Any, duration: Any, power: Any) -> dict[str, Any]:
    isp = {"start": start, "power": power}
    if duration is not None:
        isp["duration"] = duration
    return isp


@st.composite
def isp_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    """An ISP list as senders write it (a run of ISPs, perhaps with one fault) or any."""
    shape = draw(st.sampled_from(["day", "day", "any", "odd", "empty", "long"]))
    if shape == "empty":
        return []
    if shape in ("day", "long"):
        first = draw(st.sampled_from([1, 1, 1, 0, 5, 90]))
        count = 10_000 if shape == "long" else draw(st.integers(1, 100))
        step = draw(st.sampled_from([1, 1, 2]))
        duration = draw(st.sampled_from([None, None, 1, 2]))
        made = [_isp(first + k * step, duration, 1000 + k) for k in range(count)]
        fault = draw(st.sampled_from(["none", "none", "swap", "twice", "zero", "big", "back"]))
        at = draw(st.integers(0, count - 1))
        if fault == "swap" and count > 1:
            made[at], made[at - 1] = made[at - 1], made[at]
        elif fault == "twice":
            made.insert(at, dict(made[at]))
        elif fault == "zero":
            made[at]["duration"] = 0
        elif fault == "big":
            made[at]["start"] = draw(st.sampled_from([BIG, 10**40, -(10**40)]))
        elif fault == "back":
            made[at]["duration"] = draw(st.sampled_from([3, 50, -2]))
        return made
    made = [_isp(draw(STARTS), draw(DURATIONS), draw(POWERS))
            for _ in range(draw(st.integers(1, 12)))]
    if shape == "odd":
        key = draw(st.sampled_from(["start", "duration", "power", "drop start", "not a dict"]))
        at = draw(st.integers(0, len(made) - 1))
        if key == "drop start":
            del made[at]["start"]
        elif key == "not a dict":
            made[at] = [("start", 1)]  # type: ignore[call-overload]
        else:
            made[at][key] = draw(ODD)
    return made


@st.composite
def valid_isps(draw: st.DrawFn, requested: bool = False) -> list[dict[str, Any]]:
    """ISPs the schema takes (what an archive holds): 1-100, durations 1-4, maybe gaps."""
    made, start = [], draw(st.integers(1, 5))
    for _ in range(draw(st.integers(1, 30))):
        duration = draw(st.sampled_from([None, 1, 2, 4]))
        isp = _isp(start, duration, draw(st.integers(-500_000, 500_000)))
        if requested:
            power = isp.pop("power")
            isp.update(disposition=draw(st.sampled_from(["Requested", "Available"])),
                       min_power=-abs(power) - 1, max_power=-1)
        made.append(isp)
        start += (duration or 1) + draw(st.sampled_from([0, 0, 1, 3]))
        if start > 100:
            break
    return made


def _archive(store: Store, direction: str, message_type: str, payload: dict[str, Any]) -> None:
    xml = pyuftp.create_message(message_type, payload, rules=False).encode()
    roles = ("DSO", "AGR") if payload["sender_domain"] == DSO else ("AGR", "DSO")
    store.archive(entry(direction, message_type, payload, xml, *roles))


Archived = list[tuple[str, str, dict[str, Any]]]  # (direction, message type, payload)


def _store(archived: Archived) -> MemoryStore:
    store = MemoryStore()
    for direction, message_type, payload in archived:
        _archive(store, direction, message_type, payload)
    return store


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, dict[str, Any], str, Archived]:
    """A message to check (direction, counterparty implied) and what the DSO archived."""
    request = payload_of("FlexRequest") | {"isps": draw(valid_isps(requested=True))}
    offer = payload_of("FlexOffer")
    offer["offer_options"] = [dict(option, isps=draw(valid_isps()))
                              for option in offer["offer_options"]]
    archived = [("out", "FlexRequest", request), ("in", "FlexOffer", offer),
                ("in", "D-Prognosis", payload_of("D-Prognosis"))]
    message_type = draw(st.sampled_from(["FlexOffer", "FlexOrder", "FlexOrder", "FlexRequest",
                                         "D-Prognosis", "Metering", "FlexReservationUpdate"]))
    payload = payload_of(message_type)
    if message_type == "FlexOffer":
        payload["message_id"] = "b1f4e2a0-0000-4000-8000-000000000001"  # not the archived one
        payload["offer_options"] = [dict(option, isps=draw(isp_lists()))
                                    for option in payload["offer_options"][
                                        :draw(st.integers(0, 2))]]
    elif message_type == "FlexOrder":
        option = offer["offer_options"][0]
        factor = draw(FACTORS)
        payload.pop("activation_factor")
        if factor is not None:
            payload["activation_factor"] = factor
        if draw(st.booleans()):  # the option's ISPs, powers scaled and nudged
            scale = Decimal(1 if factor is None else factor) if factor == factor else 1
            # off by at most 1 W (fine), and a later ISP by more (the first such is named)
            count = len(option["isps"])
            nudges = [0] * count
            within = draw(st.integers(0, count - 1))
            nudges[within] = draw(st.sampled_from([1, -1, 0]))
            over = draw(st.integers(-1, count - 1))  # -1: none
            if over > within or (over >= 0 and draw(st.booleans())):
                nudges[over] = draw(st.sampled_from([2, -2, 10**6]))
            made = [dict(isp, power=int(Decimal(isp["power"]) * scale) + nudge)
                    for isp, nudge in zip(option["isps"], nudges)]
            payload["isps"] = made
        else:
            payload["isps"] = draw(isp_lists())
    elif message_type == "Metering":
        payload["profiles"] = [dict(p, isps=draw(isp_lists())) for p in payload["profiles"]]
    elif message_type == "FlexRequest":  # bands of either sign or none, some Requested
        made = draw(isp_lists())
        for isp in made:
            if isinstance(isp, dict) and isinstance(isp.get("power"), int):
                near = st.sampled_from([-2, -1, 0, 1, 2, isp.pop("power"), 10**6, -10**6])
                isp.update(min_power=draw(near), max_power=draw(near),
                           disposition=draw(st.sampled_from(["Requested", "Available"])))
        payload["isps"] = made
    else:
        payload["isps"] = draw(isp_lists())
    if draw(st.booleans()):
        payload["period"] = draw(st.sampled_from([dt.date(2026, 10, 25), dt.date(2026, 3, 29),
                                                  dt.date(9999, 12, 31)]))
    if draw(st.booleans()):
        payload["isp_duration"] = draw(st.sampled_from([dt.timedelta(minutes=5),
                                                        dt.timedelta(0)]))
    direction = "out" if message_type == "FlexOrder" else "in"
    return message_type, payload, direction, archived


def _problems(message_type: str, payload: dict[str, Any], direction: str, store: Store,
              fast: bool) -> tuple[list[str], list[str]]:
    saved, isps.FAST = isps.FAST, fast
    try:
        ctx = Context(message_type, payload, direction, AGR, NOW, lookups=StoreLookups(store))
        return (ALL_RULES.check(message_type, payload, now=NOW, counterparty=AGR),
                ALL_RULES.check_all(ctx))
    finally:
        isps.FAST = saved


@settings(derandomize=True, max_examples=250, deadline=dt.timedelta(seconds=3),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases())
def test_the_one_pass_finds_what_the_plain_paths_find(case):
    message_type, payload, direction, archived = case
    store = _store(archived)
    fast = _problems(message_type, payload, direction, store, fast=True)
    assert fast == _problems(message_type, payload, direction, store, fast=False)


@st.composite
def powers(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
    """An option's ISPs and an order's: the same spans, powers the offered ones times the
    factor, off by at most 1 W here and there and perhaps by more later."""
    count = draw(st.integers(1, 40))
    step = draw(st.sampled_from([1, 1, 2]))
    big = draw(st.sampled_from([10**6, 10**6, 10**29, 10**31, 10**40]))
    offered = [_isp(1 + k * step, draw(st.sampled_from([None, 1, 2])) if step == 2 else None,
                    draw(st.integers(-big, big))) for k in range(count)]
    factor = draw(st.one_of(FACTORS, st.decimals(min_value=0, max_value=2, places=3),
                            st.decimals(allow_nan=True, allow_infinity=True)))
    scale = Decimal(1 if factor is None else factor)
    nudges = draw(st.lists(st.sampled_from([0, 0, 1, -1, 2, -2, 10**6]),
                           min_size=count, max_size=count))
    ordered = []
    for isp, nudge in zip(offered, nudges):
        exact = Decimal(isp["power"]) * scale if scale.is_finite() else Decimal(0)
        ordered.append(dict(isp, power=int(exact) + nudge))
    if draw(st.integers(0, 9)) == 0:  # a power of an odd type somewhere
        draw(st.sampled_from([ordered, offered]))[draw(st.integers(0, count - 1))]["power"] = \
            draw(st.sampled_from([1.5, Decimal("2.5"), True]))
    return offered, ordered, factor


@settings(derandomize=True, max_examples=400, deadline=dt.timedelta(seconds=2))
@given(powers())
def test_order_powers_compare_the_same_in_whole_numbers(case):
    """order.matches_offer's comparison of each ISP's power with the offered one times the
    activation factor: in whole numbers where they are small ints, as decimals otherwise."""
    offered, ordered, factor = case
    scale = Decimal(1 if factor is None else factor)
    found = []
    for fast in (True, False):
        saved, isps.FAST = isps.FAST, fast
        try:
            ctx = Context("FlexOrder", {"isps": ordered}, "out", AGR, NOW)
            try:
                found.append(stateful._powers_match(ctx, offered, scale, stateful.exact()))
            except Exception as exc:  # noqa: BLE001 - the same failure both ways
                found.append([type(exc).__name__])
        finally:
            isps.FAST = saved
    assert found[0] == found[1]


def test_the_fuzz_reaches_both_paths_and_real_problems():
    """The cases above are not all clean, nor all odd: the index is built for ordered and
    for overlapping lists, and refused for odd ones (a test that cannot fail is none)."""
    ordered = isps.index("D-Prognosis", {"isps": [_isp(k, None, 1) for k in range(1, 97)]})
    assert ordered is not None and ordered.lists[0].ordered and ordered.high == 96
    twice = isps.index("D-Prognosis", {"isps": [_isp(1, 2, 1), _isp(2, None, 1)]})
    assert twice is not None and not twice.lists[0].ordered
    empty = isps.index("D-Prognosis", {"isps": [_isp(5, 0, 1), _isp(6, None, 1)]})
    assert empty is not None and not empty.lists[0].ordered  # a span of no ISP: plain walk
    for odd in (True, 3.0, "5", None):
        assert isps.index("D-Prognosis", {"isps": [_isp(odd, None, 1)]}) is None
    assert isps.index("FlexOffer", {"offer_options": [{"isps": ({"start": 1},)}]}) is None


@pytest.mark.parametrize("fast", [True, False])
def test_hostile_lists_are_problems_of_the_message(fast):
    """What the one pass must keep finding, with the texts of before: overlaps in a list out
    of order, ISPs beyond the day, an expiration after the last ISP."""
    offer = payload_of("FlexOffer")
    offer["offer_options"][0]["isps"] = [_isp(72, None, 1), _isp(69, 4, 1), _isp(10**40, 0, 1)]
    offer["offer_options"][1]["isps"] = [_isp(k, None, 1) for k in range(1, 10_001)]
    store = MemoryStore()
    _archive(store, "out", "FlexRequest", payload_of("FlexRequest"))
    create, receipt = _problems("FlexOffer", offer, "in", store, fast)
    assert "offer_options[0].isps[0]: ISP 72 is addressed twice [isp.no_overlap]" in create
    assert ("offer_options[1].isps[96]: ISPs 97-97 lie outside 2026-11-24, which has ISPs "
            "1-96 in Europe/Amsterdam [isp.within_period]") in create
    assert sum("[isp.within_period]" in p for p in create) == 10_000 - 96 + 1
    assert create == [p for p in receipt if p in create]


# --- the archive's look-ups, counted on a real SQLite store -------------------------------------

COUNTED = ("find", "query", "highest_revision")


class Counting:
    """Wraps the real store object's look-ups (no mock: each call goes to SQLite)."""

    def __init__(self, store: Store) -> None:
        self.store, self.calls = store, []  # type: list[tuple[str, tuple[Any, ...]]]
        for name in COUNTED:
            real = getattr(store, name)

            def counted(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
                self.calls.append((_name, args + tuple(sorted(kwargs.items()))))
                return _real(*args, **kwargs)

            setattr(store, name, counted)


@pytest.fixture
def sqlite(tmp_path):
    store = SQLiteStore(tmp_path / "rules.sqlite")
    yield store
    store.close()


def _check(store: Store, message_type: str, payload: dict[str, Any], direction: str,
           counterparty: str) -> list[str]:
    ctx = Context(message_type, payload, direction, counterparty, NOW,
                  lookups=StoreLookups(store))
    return Rules().check_all(ctx)


def test_rules_naming_the_same_message_read_it_once(sqlite):
    """A FlexOffer at the DSO: four rules read its FlexRequest (request_exists,
    same_conversation, covers_request) or its D-Prognosis; the archive is asked once for
    each, and once for each kind of portfolio message."""
    _archive(sqlite, "out", "FlexRequest", payload_of("FlexRequest"))
    _archive(sqlite, "in", "D-Prognosis", payload_of("D-Prognosis"))
    _archive(sqlite, "out", "DSOPortfolioUpdate", payload_of("DSOPortfolioUpdate"))
    counting = Counting(sqlite)
    offer = payload_of("FlexOffer")
    offer["d_prognosis_message_id"] = payload_of("D-Prognosis")["message_id"]
    assert _check(sqlite, "FlexOffer", offer, "in", AGR) == []
    kinds = [name for name, _ in counting.calls]
    assert kinds.count("find") == 2 and kinds.count("query") == 2 and len(kinds) == 4
    assert len(set(counting.calls)) == len(counting.calls)  # nothing asked twice


def test_a_settlement_reads_each_order_once_for_both_rules(sqlite):
    """settlement.orders_exist and settlement.references_known both look each settled order
    up by its reference: one query per distinct order, however many settlements name it."""
    order = payload_of("FlexOrder")
    _archive(sqlite, "out", "FlexOrder", order)
    _archive(sqlite, "in", "D-Prognosis", payload_of("D-Prognosis"))
    counting = Counting(sqlite)
    settlement = payload_of("FlexSettlement")
    one = dict(settlement["flex_order_settlements"][0],
               order_reference=order["order_reference"], period=order["period"],
               d_prognosis_message_id=payload_of("D-Prognosis")["message_id"])
    settlement["flex_order_settlements"] = [one, dict(one), dict(one)]
    settlement["contract_settlements"] = []
    problems = _check(sqlite, "FlexSettlement", settlement, "out", AGR)
    assert not [p for p in problems if "orders_exist" in p or "references_known" in p], problems
    by_reference = [c for c in counting.calls if ("references", order["order_reference"])
                    in c[1]]
    assert len(by_reference) == 1
    finds = [c for c in counting.calls if c[0] == "find"]
    assert len(finds) == 1  # the D-Prognosis, named three times
    assert len(set(counting.calls)) == len(counting.calls)


def test_an_order_reads_its_offer_once(sqlite):
    """A FlexOrder sent by the DSO: order.offer_exists, order.matches_offer and
    reference.same_conversation read one FlexOffer: one find; its revocations one query."""
    _archive(sqlite, "in", "FlexOffer", payload_of("FlexOffer"))
    counting = Counting(sqlite)
    _check(sqlite, "FlexOrder", payload_of("FlexOrder"), "out", AGR)
    offer_id = payload_of("FlexOffer")["message_id"]
    assert len([c for c in counting.calls if c[0] == "find" and offer_id in c[1]]) == 1
    assert len(set(counting.calls)) == len(counting.calls)
    assert len(counting.calls) == 5  # offer, prognosis, revocations, two portfolio kinds


def test_each_check_asks_afresh():
    """The memo lives for one check: a message archived between two checks is found."""
    store = MemoryStore()
    offer = payload_of("FlexOffer")
    first = _check(store, "FlexOffer", offer, "in", AGR)
    assert any("[offer.request_exists]" in p for p in first)
    _archive(store, "out", "FlexRequest", payload_of("FlexRequest"))
    assert not any("[offer.request_exists]" in p
                   for p in _check(store, "FlexOffer", offer, "in", AGR))


def test_the_plan_follows_enable_and_disable():
    """Rules work out once per message type which rules run; enabling, disabling, adding and
    replacing the enabled set (as a fixture restoring it does) take effect at once."""
    rules = Rules()
    payload = payload_of("FlexOffer") | {"expiration_date_time": NOW - dt.timedelta(days=1)}
    assert any("[expiration.in_future]" in p for p in rules.check("FlexOffer", payload, now=NOW))
    rules.disable("expiration.in_future")
    assert not any("[expiration.in_future]" in p
                   for p in rules.check("FlexOffer", payload, now=NOW))
    saved = set(rules._enabled)
    rules.enable("expiration.in_future")
    assert any("[expiration.in_future]" in p for p in rules.check("FlexOffer", payload, now=NOW))
    rules._enabled = saved
    assert not any("[expiration.in_future]" in p
                   for p in rules.check("FlexOffer", payload, now=NOW))

    @rules.rule("offer.mine", ["FlexOffer"], "one of the user's")
    def mine(ctx):
        return ["mine"]

    assert rules.check("FlexOffer", payload, now=NOW)[-1] == "mine [offer.mine]"
