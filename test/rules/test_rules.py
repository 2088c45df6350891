"""The stateless business rules (pyuftp.rules): one passing and one failing message per rule,
the ISP calendar across daylight saving, the registry, create_message, and the rules page.

No sockets and no store here: the rules that need an archive are in test_rules_stateful.py.
Every case starts from ``pyuftp.message.examples.example(type)`` and changes one thing; the failing
message must be reported by exactly the rule under test, the passing one by none.
"""
from __future__ import annotations

import asyncio
import copy
import datetime as dt
import importlib.util
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest

import pyuftp
from pyuftp.message.catalog import spec
from pyuftp.message.examples import MESSAGE_IDS, example
from pyuftp.exceptions import RuleViolation, ValidationError
from pyuftp.rules import (BUILT_IN, DEFAULT_RULES, NOT_RULES, Context, Rules, Settings, day_bounds,
                          isp_count, isp_end)

RULES = "all"  # every business rule on (see conftest.business_rules)

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc
AMS = "Europe/Amsterdam"
Q = dt.timedelta(minutes=15)

STATELESS_IDS = sorted(r.id for r in BUILT_IN if not r.stateful)

#: The validators of the Java reference library (shapeshifter-library-java) named in the issue.
JAVA_VALIDATORS = [name + "Validator" for name in """
    AllowedSender CongestionPoint DuplicateIdentifier ExpirationBeforeIspsListedEnd
    ExpirationInTheFuture FlexOfferRevocationSenderDomain FlexOrderOfferIsNotRevoked
    IspConflicts IspDuration IspPeriodBoundary NotExpired PeriodFutureOrToday PeriodIsInRange
    PeriodReference PeriodStartBeforeOrEqualsToEnd Recipient ReferencedBaselineReference
    ReferencedContractId ReferencedDPrognosisMessageId ReferencedFlexOfferMessageId
    ReferencedFlexOrderMessageId ReferencedFlexOrderOptionReference ReferencedFlexRequestMessageId
    ReferencedFlexSettlementReference ReferencedFlexSettlementResponseOrderReference
    ReferencedRequestMessageIdInResponse SenderMatchesEnvelope SenderRoleMatchesContentType
    TimeZoneSupported UnsolicitedFlexOffer UnsolicitedFlexOrder FlexOfferCurrency FlexOfferPrice
    FlexOptionRequestMatch FlexOrderCurrency FlexOrderFlexibilityMatch FlexOrderIspMatch
    FlexOrderPriceMatch IspPowerDiscrepancy IspRequestedDisposition MinActivationFactor
""".split()]


def ids(problems: list[str]) -> list[str]:
    """The rule ids that end the problem texts (``... [isp.duration]``), in order."""
    found = []
    for text in problems:
        match = re.search(r"\[([^\[\]]+)\]$", text)
        assert match, f"a problem without a rule id at its end: {text!r}"
        found.append(match.group(1))
    return found


def extended(**settings: Any) -> Rules:
    """A fresh registry with every rule on, including those off by default, and ``settings``."""
    rules = Rules(settings=Settings(**settings))
    rules.enable(*(r.id for r in BUILT_IN))
    return rules


# --- one passing and one failing message per rule --------------------------------------------
#
# Each case: (message type, change to the payload, the clock or None for the payload's
# time_stamp, the registry to check with). ``change`` takes the payload and changes it in place.

Change = Callable[[dict[str, Any]], None]


def _set(**fields: Any) -> Change:
    def change(p: dict[str, Any]) -> None:
        p.update(fields)
    return change


def _nothing(p: dict[str, Any]) -> None:
    pass


def _option_isps(isps: list[dict[str, Any]], option: int = 0) -> Change:
    def change(p: dict[str, Any]) -> None:
        p["offer_options"][option]["isps"] = isps
    return change


def _add_isp(isp: dict[str, Any]) -> Change:
    def change(p: dict[str, Any]) -> None:
        p["offer_options"][0]["isps"].append(isp)
    return change


def _offer_unsolicited(p: dict[str, Any]) -> None:
    p["unsolicited"] = True
    del p["flex_request_message_id"]


def _order_unsolicited(p: dict[str, Any]) -> None:
    p["unsolicited"] = True
    del p["flex_offer_message_id"]


def _request_isp(index: int, **fields: Any) -> Change:
    def change(p: dict[str, Any]) -> None:
        p["isps"][index].update(fields)
    return change


def _all_available(p: dict[str, Any]) -> None:
    for isp in p["isps"]:
        isp["disposition"] = "Available"
        isp["min_power"], isp["max_power"] = -300_000, 250_000


def _agr_connection_end(end: dt.date) -> Change:
    def change(p: dict[str, Any]) -> None:
        p["connections"][2]["end_period"] = end
    return change


def _settled_day(day: dt.date) -> Change:
    def change(p: dict[str, Any]) -> None:
        p["flex_order_settlements"][1]["period"] = day
    return change


def _no_dispute_reason(p: dict[str, Any]) -> None:
    del p["flex_order_settlement_statuses"][1]["dispute_reason"]


def _net(value: str) -> Change:
    def change(p: dict[str, Any]) -> None:
        p["flex_order_settlements"][1]["net_settlement"] = Decimal(value)
    return change


def _unit(unit: str) -> Change:
    def change(p: dict[str, Any]) -> None:
        p["profiles"][0]["unit"] = unit
    return change


def _option_price(price: str) -> Change:
    def change(p: dict[str, Any]) -> None:
        p["offer_options"][0]["price"] = Decimal(price)
    return change


OFFER_SENT = example("FlexOffer")["time_stamp"]
REQUEST_SENT = example("FlexRequest")["time_stamp"]
REQUEST_ISPS_END = isp_end(dt.date(2026, 11, 24), Q, AMS, 96)  # 2026-11-24 23:00 UTC

CASES: dict[str, list[tuple[str, Change, Change, dt.datetime | None, Callable[[], Rules]]]] = {
    # rule id: [(type, passing change, failing change, now, registry), ...]
    "isp.duration": [
        ("FlexOffer", _nothing, _set(isp_duration=dt.timedelta(minutes=5)), None, lambda: DEFAULT_RULES),
        ("Metering", _nothing, _set(isp_duration=dt.timedelta(minutes=5)), None, lambda: DEFAULT_RULES),
    ],
    "timezone.supported": [
        ("FlexOffer", _set(time_zone="Europe/Brussels"), _set(time_zone="Mars/Olympus_Mons"), None,
         lambda: DEFAULT_RULES),
        ("AGRPortfolioQuery", _set(time_zone="UTC"), _set(time_zone="Europe/Amsterdm"), None,
         lambda: DEFAULT_RULES),
    ],
    "isp.within_period": [
        ("FlexOffer", _option_isps([{"start": 96, "power": -1000}]),
         _option_isps([{"start": 97, "power": -1000}]), None, lambda: DEFAULT_RULES),
        ("FlexOffer", _option_isps([{"start": 90, "duration": 7, "power": -1000}]),  # 90-96
         _option_isps([{"start": 90, "duration": 8, "power": -1000}]), None,  # 90-97
         lambda: DEFAULT_RULES),
        ("FlexOffer", _option_isps([{"start": 1, "power": -1000}]),
         _option_isps([{"start": 0, "power": -1000}]), None, lambda: DEFAULT_RULES),
    ],
    "isp.no_overlap": [
        ("FlexOffer", _add_isp({"start": 73, "power": -1000}),
         _add_isp({"start": 72, "power": -1000}), None, lambda: DEFAULT_RULES),
        # ISP 70 has duration 2: it covers 71 too, so adding 71 addresses it twice
        ("FlexOffer", _add_isp({"start": 73, "duration": 3, "power": -1000}),
         _add_isp({"start": 71, "power": -1000}), None, lambda: DEFAULT_RULES),
        ("FlexReservationUpdate", _nothing,
         _set(isps=[{"start": 1, "duration": 70, "power": 0}, {"start": 69, "duration": 28, "power": 0}]),
         None, lambda: DEFAULT_RULES),
    ],
    "expiration.in_future": [
        # expired 299 s before the time stamp passes (300 s of clock skew), 301 s fails
        ("FlexOffer", _set(expiration_date_time=OFFER_SENT - dt.timedelta(seconds=299)),
         _set(expiration_date_time=OFFER_SENT - dt.timedelta(seconds=301)), None,
         lambda: DEFAULT_RULES),
        ("FlexRequest", _set(expiration_date_time=REQUEST_SENT + dt.timedelta(seconds=1)),
         _set(expiration_date_time=REQUEST_SENT - dt.timedelta(hours=1)), None,
         lambda: DEFAULT_RULES),
    ],
    "expiration.before_isps_end": [
        ("FlexRequest", _set(expiration_date_time=REQUEST_ISPS_END),
         _set(expiration_date_time=REQUEST_ISPS_END + dt.timedelta(seconds=1)), None,
         lambda: DEFAULT_RULES),
        # the offer's last ISP listed is 72 (17:45-18:00 in Amsterdam, 17:00 UTC)
        ("FlexOffer", _set(expiration_date_time=dt.datetime(2026, 11, 24, 17, 0, tzinfo=UTC)),
         _set(expiration_date_time=dt.datetime(2026, 11, 24, 17, 0, 1, tzinfo=UTC)), None,
         lambda: DEFAULT_RULES),
    ],
    "period.today_or_later": [
        ("D-Prognosis", _set(period=dt.date(2026, 11, 23)), _set(period=dt.date(2026, 11, 22)), None,
         lambda: DEFAULT_RULES),
        ("FlexOrder", _set(period=dt.date(2026, 11, 23)), _set(period=dt.date(2026, 11, 22)), None,
         lambda: DEFAULT_RULES),
    ],
    "period.on_calendar": [
        ("D-Prognosis", _set(period=dt.date(9999, 12, 30)), _set(period=dt.date(9999, 12, 31)), None,
         lambda: DEFAULT_RULES),
        ("FlexOffer", _nothing, _set(period=dt.date(9999, 12, 31)), None, lambda: DEFAULT_RULES),
    ],
    "period.start_before_end": [
        ("AGRPortfolioUpdate", _agr_connection_end(dt.date(2026, 11, 1)),
         _agr_connection_end(dt.date(2026, 10, 31)), None, lambda: DEFAULT_RULES),
        ("FlexSettlement", _nothing,
         _set(period_start=dt.date(2026, 12, 1), period_end=dt.date(2026, 11, 1),
              flex_order_settlements=[], contract_settlements=[]), None, lambda: DEFAULT_RULES),
    ],
    "period.in_range": [
        ("FlexSettlement", _settled_day(dt.date(2026, 11, 1)), _settled_day(dt.date(2026, 10, 31)),
         None, lambda: DEFAULT_RULES),
        ("FlexSettlement", _settled_day(dt.date(2026, 11, 30)), _settled_day(dt.date(2026, 12, 1)),
         None, lambda: DEFAULT_RULES),
    ],
    "offer.unsolicited": [
        ("FlexOffer", _offer_unsolicited, _set(unsolicited=True), None, lambda: DEFAULT_RULES),
        ("FlexOffer", _nothing, lambda p: p.pop("flex_request_message_id"), None, lambda: DEFAULT_RULES),
    ],
    "order.unsolicited": [
        ("FlexOrder", _order_unsolicited, _set(unsolicited=True), None, lambda: DEFAULT_RULES),
        ("FlexOrder", _nothing, lambda p: p.pop("flex_offer_message_id"), None, lambda: DEFAULT_RULES),
    ],
    "request.requested": [
        ("FlexRequest", _request_isp(1, disposition="Available"), _all_available, None,
         lambda: DEFAULT_RULES),
    ],
    "request.power_band": [
        ("FlexRequest", _request_isp(1, min_power=-150_000, max_power=-150_000),
         _request_isp(1, min_power=-100_000, max_power=-150_000), None, lambda: DEFAULT_RULES),
        # a Requested ISP must ask for one direction: not less and more at once
        ("FlexRequest", _request_isp(1, min_power=0, max_power=150_000),
         _request_isp(1, min_power=-1, max_power=150_000), None, lambda: DEFAULT_RULES),
    ],
    "currency.iso4217": [
        ("FlexOffer", _set(currency="JPY"), _set(currency="XYZ"), None, extended),
        ("FlexOrder", _set(currency="USD"), _set(currency="EURO"), None, extended),
        ("FlexSettlement", _set(currency="GBP"), _set(currency="ABC"), None, extended),
    ],
    "price.minor_unit": [
        ("FlexOffer", _option_price("180.01"), _option_price("180.001"), None, extended),
        ("FlexOffer", _option_price("180.000"), _option_price("180.005"), None, extended),
        ("FlexOrder", _set(currency="JPY", price=Decimal("144")),
         _set(currency="JPY", price=Decimal("144.5")), None, extended),
        ("FlexOrder", _set(currency="KWD", price=Decimal("144.125")),
         _set(currency="KWD", price=Decimal("144.1255")), None, extended),
    ],
    "result.rejection_reason": [
        ("FlexOfferResponse", _set(result="Rejected", rejection_reason="sold out"),
         _set(result="Rejected"), None, lambda: DEFAULT_RULES),
        ("MeteringResponse", _set(result="Rejected", rejection_reason="unknown EAN"),
         _set(result="Rejected", rejection_reason=""), None, lambda: DEFAULT_RULES),
    ],
    "settlement.dispute_reason": [
        ("FlexSettlementResponse", _nothing, _no_dispute_reason, None, lambda: DEFAULT_RULES),
    ],
    "settlement.net": [
        ("FlexSettlement", _net("82.50"), _net("95.00"), None, lambda: DEFAULT_RULES),
    ],
    "metering.unit": [
        ("Metering", _unit("kW"), _unit("kWh"), None, lambda: DEFAULT_RULES),
    ],
    "contract.known": [
        ("FlexRequest", _nothing, _set(contract_id="BC-2026-9999"), None,
         lambda: Rules(settings=Settings(contracts={"BC-2026-0042"}))),
        ("FlexOrder", _nothing, _set(contract_id="BC-2026-9999"), None,
         lambda: Rules(settings=Settings(
             contracts=lambda party, contract: (party, contract) == ("", "BC-2026-0042")))),
    ],
    "baseline.known": [
        ("FlexOffer", _set(baseline_reference="BL-1"), _set(baseline_reference="BL-2"), None,
         lambda: Rules(settings=Settings(baseline_references={"BL-1"}))),
    ],
}


def _cases() -> list[Any]:
    params = []
    for rule_id, cases in CASES.items():
        for n, (message_type, good, bad, now, registry) in enumerate(cases):
            params.append(pytest.param(rule_id, message_type, good, bad, now, registry,
                                       id=f"{rule_id}-{message_type}-{n}"))
    return params


def test_every_stateless_rule_has_cases():
    assert sorted(CASES) == STATELESS_IDS


@pytest.mark.parametrize("rule_id,message_type,good,bad,now,registry", _cases())
def test_rule_passes_and_fails(rule_id, message_type, good, bad, now, registry):
    rules = registry()
    assert rules.enabled(rule_id)
    assert message_type in rules[rule_id].applies_to
    passing, failing = example(message_type), example(message_type)
    good(passing)
    bad(failing)
    assert rules.check(message_type, passing, now=now) == []
    problems = rules.check(message_type, failing, now=now)
    assert ids(problems) and set(ids(problems)) == {rule_id}, problems


@pytest.mark.parametrize("rule_id,currency,price", [("currency.iso4217", "XYZ", "180.00"),
                                                     ("price.minor_unit", "EUR", "180.001")])
def test_rules_off_by_default_are_off(rule_id, currency, price):
    assert not DEFAULT_RULES[rule_id].default
    assert not DEFAULT_RULES.enabled(rule_id)
    payload = example("FlexOffer")
    payload["currency"] = currency
    payload["offer_options"][0]["price"] = Decimal(price)
    assert DEFAULT_RULES.check("FlexOffer", payload) == []
    assert pyuftp.create_message("FlexOffer", payload)
    rules = Rules()
    rules.enable(rule_id)
    assert ids(rules.check("FlexOffer", payload)) == [rule_id]
    with pytest.raises(RuleViolation):
        pyuftp.create_message("FlexOffer", payload, rules=rules)


def test_expiration_clock_skew_boundary():
    offer = example("FlexOffer")
    expires = offer["expiration_date_time"]
    for seconds, broken in ((0, False), (299, False), (301, True), (3600, True)):
        problems = DEFAULT_RULES.check("FlexOffer", offer, now=expires + dt.timedelta(seconds=seconds))
        assert ids(problems) == (["expiration.in_future"] if broken else []), seconds
    rules = Rules(settings=Settings(clock_skew=0.0))
    assert ids(rules.check("FlexOffer", offer, now=expires + dt.timedelta(seconds=1))) == [
        "expiration.in_future"]
    assert rules.check("FlexOffer", offer, now=expires - dt.timedelta(seconds=1)) == []


# --- the ISP calendar and daylight saving ------------------------------------------------------


@pytest.mark.parametrize("day,count", [
    (dt.date(2026, 3, 29), 92), (dt.date(2026, 10, 25), 100), (dt.date(2026, 3, 28), 96),
    (dt.date(2026, 3, 30), 96), (dt.date(2026, 10, 24), 96), (dt.date(2026, 10, 26), 96),
    (dt.date(2026, 11, 24), 96), (dt.date(2026, 6, 21), 96),
])
def test_isp_count_follows_daylight_saving(day, count):
    assert isp_count(day, Q, AMS) == count
    assert isp_count(day, Q, "UTC") == 96
    assert isp_count(day, dt.timedelta(minutes=5), AMS) == count * 3


def test_day_bounds_and_isp_end():
    start, end = day_bounds(dt.date(2026, 3, 29), AMS)
    assert start == dt.datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    assert end == dt.datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    assert isp_end(dt.date(2026, 3, 29), Q, AMS, 92) == end
    assert isp_end(dt.date(2026, 11, 24), Q, AMS, 72) == dt.datetime(2026, 11, 24, 17, 0, tzinfo=UTC)


def on_day(message_type: str, day: dt.date) -> tuple[dict[str, Any], dt.datetime]:
    """The example of ``message_type`` moved so that its period is ``day``; and its clock."""
    now = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(9, 0), UTC)
    payload = example(message_type, now=now)
    assert payload["period"] == day
    return payload, payload["time_stamp"]


@pytest.mark.parametrize("day,isp,broken", [
    (dt.date(2026, 3, 29), 92, False), (dt.date(2026, 3, 29), 93, True),
    (dt.date(2026, 3, 30), 93, False), (dt.date(2026, 3, 30), 96, False),
    (dt.date(2026, 10, 25), 100, False), (dt.date(2026, 10, 25), 101, True),
    (dt.date(2026, 10, 26), 97, True),
])
def test_within_period_on_daylight_saving_days(day, isp, broken):
    offer, now = on_day("FlexOffer", day)
    offer["offer_options"] = [{"option_reference": "A", "price": Decimal("10.00"),
                               "isps": [{"start": isp, "power": -1000}]}]
    problems = DEFAULT_RULES.check("FlexOffer", offer, now=now)
    assert ids(problems) == (["isp.within_period"] if broken else []), problems
    if broken:
        assert f"ISPs 1-{isp_count(day, Q, AMS)} in {AMS}" in problems[0]


def test_within_period_counts_the_duration_on_the_short_day():
    prognosis, now = on_day("D-Prognosis", dt.date(2026, 3, 29))
    prognosis["isps"] = [{"start": 1, "duration": 92, "power": 1000}]
    assert DEFAULT_RULES.check("D-Prognosis", prognosis, now=now) == []
    prognosis["isps"] = [{"start": 1, "duration": 96, "power": 1000}]  # a normal day's ISPs
    assert ids(DEFAULT_RULES.check("D-Prognosis", prognosis, now=now)) == ["isp.within_period"]


def test_overlap_through_duration():
    reservation = example("FlexReservationUpdate")  # 1-68, 69-72, 73-96
    assert DEFAULT_RULES.check("FlexReservationUpdate", reservation) == []
    reservation["isps"][1]["duration"] = 5  # 69-73 now runs into 73
    problems = DEFAULT_RULES.check("FlexReservationUpdate", reservation)
    assert ids(problems) == ["isp.no_overlap"]
    assert "ISP 73 is addressed twice" in problems[0]
    reservation["isps"][1]["duration"] = 4
    reservation["isps"][2]["start"] = 74  # a gap is fine
    reservation["isps"][2]["duration"] = 23
    assert DEFAULT_RULES.check("FlexReservationUpdate", reservation) == []


def test_overlap_is_per_offer_option():
    offer = example("FlexOffer")  # options A and B both cover 69-72: they are alternatives
    assert DEFAULT_RULES.check("FlexOffer", offer) == []


# --- period today or later, in the message's time zone -----------------------------------------


@pytest.mark.parametrize("now,zone,period,broken", [
    # 23:30 UTC on the 23rd is 00:30 on the 24th in Amsterdam: the 23rd is yesterday there,
    # although it is still the 23rd in UTC
    (dt.datetime(2026, 11, 23, 23, 30, tzinfo=UTC), AMS, dt.date(2026, 11, 23), True),
    (dt.datetime(2026, 11, 23, 23, 30, tzinfo=UTC), AMS, dt.date(2026, 11, 24), False),
    (dt.datetime(2026, 11, 23, 22, 59, tzinfo=UTC), AMS, dt.date(2026, 11, 23), False),
    (dt.datetime(2026, 11, 23, 23, 0, tzinfo=UTC), AMS, dt.date(2026, 11, 23), True),
    # in summer Amsterdam is UTC+2: 22:30 UTC on 30 June is already 1 July there
    (dt.datetime(2026, 6, 30, 22, 30, tzinfo=UTC), AMS, dt.date(2026, 6, 30), True),
    # 03:00 UTC on the 24th is still the 23rd in New York: the 23rd is today there
    (dt.datetime(2026, 11, 24, 3, 0, tzinfo=UTC), "America/New_York", dt.date(2026, 11, 23), False),
    (dt.datetime(2026, 11, 24, 3, 0, tzinfo=UTC), "America/New_York", dt.date(2026, 11, 22), True),
])
def test_period_today_or_later_in_the_message_time_zone(now, zone, period, broken):
    prognosis = example("D-Prognosis")
    prognosis.update(time_zone=zone, period=period, isps=[{"start": 1, "power": 1000}])
    problems = DEFAULT_RULES.check("D-Prognosis", prognosis, now=now)
    assert ids(problems) == (["period.today_or_later"] if broken else []), problems


def test_the_clock_defaults_to_the_payload_time_stamp():
    prognosis = example("D-Prognosis")  # sent 2026-11-23 10:20 UTC for the 24th
    prognosis["period"] = dt.date(2026, 11, 23)
    assert DEFAULT_RULES.check("D-Prognosis", prognosis) == []
    prognosis["time_stamp"] = dt.datetime(2026, 11, 23, 23, 30, tzinfo=UTC)  # the 24th in Amsterdam
    assert ids(DEFAULT_RULES.check("D-Prognosis", prognosis)) == ["period.today_or_later"]


# --- all problems together ---------------------------------------------------------------------


def test_all_problems_are_reported_together():
    offer = example("FlexOffer")
    offer["isp_duration"] = dt.timedelta(minutes=5)                         # isp.duration
    offer["offer_options"][0]["isps"].append({"start": 70, "power": -1})  # isp.no_overlap
    offer["unsolicited"] = True                                           # offer.unsolicited
    problems = DEFAULT_RULES.check("FlexOffer", offer)
    assert sorted(ids(problems)) == ["isp.duration", "isp.no_overlap", "offer.unsolicited"]
    assert len(problems) == 3


def test_one_rule_reports_every_place():
    offer = example("FlexOffer")
    offer["offer_options"][0]["isps"].append({"start": 97, "power": -1})
    offer["offer_options"][1]["isps"].append({"start": 98, "power": -1})
    problems = DEFAULT_RULES.check("FlexOffer", offer)
    assert ids(problems) == ["isp.within_period"] * 2
    assert problems[0].startswith("offer_options[0].isps[3]: ISPs 97-97")
    assert problems[1].startswith("offer_options[1].isps[1]: ISPs 98-98")


# --- create_message ----------------------------------------------------------------------------


def test_create_message_raises_one_violation_naming_each_rule_and_field():
    offer = example("FlexOffer")
    offer["offer_options"][1]["isps"] = [{"start": 97, "power": -150_000}]
    offer["unsolicited"] = True
    with pytest.raises(RuleViolation) as caught:
        pyuftp.create_message("FlexOffer", offer)
    error = caught.value
    assert isinstance(error, ValidationError)
    assert sorted(ids(error.problems)) == ["isp.within_period", "offer.unsolicited"]
    text = str(error)
    assert "2 rules" in text
    for name in ("[isp.within_period]", "[offer.unsolicited]", "offer_options[1].isps[0]",
                 "flex_request_message_id"):
        assert name in text


def test_create_message_judges_as_of_the_time_stamp():
    offer = example("FlexOffer")  # expired long ago by the wall clock: fine as of its time_stamp
    assert "FlexOffer" in pyuftp.create_message("FlexOffer", offer)
    offer["time_stamp"] = offer["expiration_date_time"] + dt.timedelta(hours=1)
    with pytest.raises(RuleViolation) as caught:
        pyuftp.create_message("FlexOffer", offer)
    assert ids(caught.value.problems) == ["expiration.in_future"]


def test_create_message_rules_false_skips_them():
    offer = example("FlexOffer")
    offer["unsolicited"] = True
    with pytest.raises(RuleViolation):
        pyuftp.create_message("FlexOffer", offer)
    xml = pyuftp.create_message("FlexOffer", offer, rules=False)
    assert pyuftp.parse_message(xml)[1]["unsolicited"] is True


def test_create_message_with_a_rule_set_of_its_own():
    offer = example("FlexOffer")
    offer["unsolicited"] = True
    rules = Rules()
    rules.disable("offer.unsolicited")
    assert "FlexOffer" in pyuftp.create_message("FlexOffer", offer, rules=rules)
    offer["currency"] = "JPY"
    offer["offer_options"][0]["price"] = Decimal("180.50")  # yen have no minor unit
    assert "FlexOffer" in pyuftp.create_message("FlexOffer", offer, rules=rules)
    rules.enable("price.minor_unit")
    with pytest.raises(RuleViolation) as caught:
        pyuftp.create_message("FlexOffer", offer, rules=rules)
    assert set(ids(caught.value.problems)) == {"price.minor_unit"}


# --- rules of one's own, switching rules, settings ---------------------------------------------


def test_a_sync_rule_of_ones_own_runs():
    rules = Rules()

    @rules.rule("offer.eur_only", ["FlexOffer"], "offers are in EUR")
    def eur_only(ctx):
        if ctx.payload.get("currency") != "EUR":
            yield f"currency {ctx.payload.get('currency')} is not EUR"

    assert not rules["offer.eur_only"].stateful and rules.enabled("offer.eur_only")
    offer = example("FlexOffer")
    assert rules.check("FlexOffer", offer) == []
    offer["currency"] = "USD"
    assert rules.check("FlexOffer", offer) == ["currency USD is not EUR [offer.eur_only]"]
    assert rules.check("FlexOrder", example("FlexOrder") | {"currency": "USD"}) == []  # not its type
    with pytest.raises(RuleViolation) as caught:
        pyuftp.create_message("FlexOffer", offer, rules=rules)
    assert caught.value.problems == ["currency USD is not EUR [offer.eur_only]"]
    assert pyuftp.create_message("FlexOffer", offer)  # DEFAULT_RULES does not have it
    assert "offer.eur_only" not in {r.id for r in DEFAULT_RULES}
    rules.disable("offer.eur_only")
    assert rules.check("FlexOffer", offer) == []


def test_an_async_rule_of_ones_own_runs_in_check_all_with_the_archive():
    rules = Rules()
    seen: list[Any] = []

    class Archive:  # the sync look-ups (pyuftp.rules.Lookups)
        def find(self, counterparty, message_id, direction=None):
            seen.append((counterparty, message_id, direction))
            return None

        def query(self, **criteria):
            return []

    @rules.rule("order.offer_in_house", ["FlexOrder"], "the offer is in our own archive")
    async def in_house(ctx):
        found = ctx.lookups.find(ctx.counterparty, ctx.payload["flex_offer_message_id"], "in")
        return [] if found else ["no such offer in the archive"]

    assert rules["order.offer_in_house"].stateful
    order = example("FlexOrder")
    # check() runs the stateless rules only: the async rule waits for check_all
    assert rules.check("FlexOrder", order) == []
    only_mine = Rules(rules=[rules["order.offer_in_house"]])
    ctx = Context("FlexOrder", order, "out", "agr.example.com", order["time_stamp"], lookups=Archive())
    problems = only_mine.check_all(ctx) + asyncio.run(only_mine.check_async(ctx))
    assert problems == ["no such offer in the archive [order.offer_in_house]"]
    assert seen == [("agr.example.com", MESSAGE_IDS["FlexOffer"], "in")]


def test_a_rule_of_ones_own_may_be_off_by_default():
    rules = Rules()

    @rules.rule("offer.never", ["FlexOffer"], "no offers at all", default=False)
    def never(ctx):
        return ["no offers, please"]

    assert rules.check("FlexOffer", example("FlexOffer")) == []
    rules.enable("offer.never")
    assert ids(rules.check("FlexOffer", example("FlexOffer"))) == ["offer.never"]


@pytest.fixture
def default_rules_restored():
    """DEFAULT_RULES as it was, after the test (its on/off states and settings)."""
    states = {r.id: DEFAULT_RULES.enabled(r.id) for r in DEFAULT_RULES}
    settings = copy.copy(DEFAULT_RULES.settings)
    yield DEFAULT_RULES
    for rule_id, on in states.items():
        (DEFAULT_RULES.enable if on else DEFAULT_RULES.disable)(rule_id)
    DEFAULT_RULES.settings = settings


def test_disabling_a_default_rule_by_id(default_rules_restored):
    offer = example("FlexOffer")
    offer["isp_duration"] = dt.timedelta(minutes=5)
    with pytest.raises(RuleViolation):
        pyuftp.create_message("FlexOffer", offer)
    DEFAULT_RULES.disable("isp.duration")
    assert not DEFAULT_RULES.enabled("isp.duration")
    assert DEFAULT_RULES.check("FlexOffer", offer) == []
    assert "FlexOffer" in pyuftp.create_message("FlexOffer", offer)
    DEFAULT_RULES.enable("isp.duration")
    assert ids(DEFAULT_RULES.check("FlexOffer", offer)) == ["isp.duration"]


def test_unknown_rule_ids_raise_key_error():
    rules = Rules()
    for use in (rules.disable, rules.enable, rules.enabled, rules.__getitem__):
        with pytest.raises(KeyError, match="isp.durration"):
            use("isp.durration")
    with pytest.raises(KeyError):
        rules.disable("isp.duration", "no.such.rule")


def test_stateless_copy_leaves_out_the_stateful_rules():
    rules = Rules()
    copy_ = rules.stateless()
    assert {r.id for r in BUILT_IN if copy_.enabled(r.id)} == {
        r.id for r in BUILT_IN if r.default and not r.stateful}
    assert copy_.settings is rules.settings


def test_settings_allowed_isp_durations(default_rules_restored):
    offer = example("FlexOffer")
    offer["isp_duration"] = dt.timedelta(minutes=5)
    assert ids(DEFAULT_RULES.check("FlexOffer", offer)) == ["isp.duration"]
    DEFAULT_RULES.settings.isp_durations = {dt.timedelta(minutes=5), dt.timedelta(minutes=15)}
    assert DEFAULT_RULES.check("FlexOffer", offer) == []
    assert "FlexOffer" in pyuftp.create_message("FlexOffer", offer)
    rules = Rules(settings=Settings(isp_durations=[dt.timedelta(minutes=5)]))
    problems = rules.check("FlexOffer", example("FlexOffer"))
    assert problems == ["isp_duration PT15M is not an ISP length this party trades in (PT5M) "
                        "[isp.duration]"]


def test_settings_time_zones():
    offer = example("FlexOffer")
    offer["time_zone"] = "Europe/Brussels"
    assert DEFAULT_RULES.check("FlexOffer", offer) == []
    rules = Rules(settings=Settings(time_zones={AMS}))
    problems = rules.check("FlexOffer", offer)
    assert ids(problems) == ["timezone.supported"]
    assert "not one this party trades in" in problems[0]
    assert rules.check("FlexOffer", example("FlexOffer")) == []
    rules.settings.time_zones = {AMS, "Europe/Brussels"}
    assert rules.check("FlexOffer", offer) == []


def test_settings_currencies():
    rules = extended(currencies={"EUR"})
    assert rules.check("FlexOffer", example("FlexOffer")) == []
    offer = example("FlexOffer")
    offer["currency"] = "USD"
    problems = rules.check("FlexOffer", offer)
    assert ids(problems) == ["currency.iso4217"]
    assert "not one this party trades in" in problems[0]


def test_settings_contracts_may_be_a_function_of_the_counterparty():
    def known(party: str, contract: str) -> bool:
        return (party, contract) == ("agr.example.com", "BC-2026-0042")
    rules = Rules(settings=Settings(contracts=known))
    request = example("FlexRequest")
    assert rules.check("FlexRequest", request, counterparty="agr.example.com") == []
    problems = rules.check("FlexRequest", request, counterparty="agr2.example.com")
    assert ids(problems) == ["contract.known"]
    assert "agr2.example.com" in problems[0]


# --- the registry ------------------------------------------------------------------------------


def test_every_rule_has_an_id_a_description_and_known_types():
    types = set(spec().message_types)
    seen = set()
    for rule in BUILT_IN:
        assert re.fullmatch(r"[a-z_0-9]+\.[a-z_0-9]+", rule.id), rule.id
        assert rule.id not in seen
        seen.add(rule.id)
        assert rule.description and rule.description == rule.description.strip()
        assert rule.applies_to and rule.applies_to <= types, (rule.id, rule.applies_to - types)
        assert callable(rule.check)
        assert all(name.endswith("Validator") for name in rule.java), rule.java
    assert [r.id for r in DEFAULT_RULES] == [r.id for r in BUILT_IN]
    assert {r.id for r in BUILT_IN if not r.default} == {"currency.iso4217", "price.minor_unit"}
    assert all(DEFAULT_RULES.enabled(r.id) == r.default for r in BUILT_IN)
    assert all(name.endswith("Validator") and why for name, why in NOT_RULES.items())


def test_every_example_passes_every_rule_that_needs_no_archive():
    rules = extended()
    for message_type in spec().message_types:
        assert rules.check(message_type, example(message_type)) == [], message_type


def test_every_example_moved_to_now_passes():
    now = dt.datetime.now(UTC)
    for message_type in spec().message_types:
        assert DEFAULT_RULES.check(message_type, example(message_type, now=now)) == [], message_type


# --- the rules page ----------------------------------------------------------------------------


def _load_make_rules_doc():
    module_spec = importlib.util.spec_from_file_location(
        "make_rules_doc", ROOT / "tools" / "make_rules_doc.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module






def test_every_java_validator_is_covered():
    covered = {name for rule in BUILT_IN for name in rule.java} | set(NOT_RULES)
    assert len(JAVA_VALIDATORS) == 41
    assert sorted(set(JAVA_VALIDATORS) - covered) == []
    page = (ROOT / "docs" / "rules.rst").read_text(encoding="utf-8")
    for name in JAVA_VALIDATORS:
        assert name in page, name
    for rule in BUILT_IN:
        assert f"``{rule.id}``" in page, rule.id
    make = _load_make_rules_doc()
    assert list(make.JAVA_VALIDATORS) == JAVA_VALIDATORS


#: What each Java validator applies to, from the Java library's source (#18: the map of
#: validators to rules must name a rule only for a validator of the same message types).
FLEX_TYPES = ("D-Prognosis", "FlexRequest", "FlexOffer", "FlexOrder", "FlexReservationUpdate")
JAVA_TYPES = {
    "CongestionPointValidator": FLEX_TYPES + ("FlexSettlement",),
    "ReferencedFlexOrderMessageIdValidator": ("D-PrognosisResponse",),
    "ReferencedDPrognosisMessageIdValidator": ("FlexOffer", "FlexOrder", "FlexSettlement"),
    "PeriodReferenceValidator": ("AGRPortfolioQueryResponse", "DSOPortfolioQueryResponse",
                                 "FlexOffer", "FlexOrder"),
    "MinActivationFactorValidator": ("FlexOffer",),
    "NotExpiredValidator": ("FlexOffer", "FlexOrder"),
    "ReferencedFlexOfferMessageIdValidator": ("FlexOfferRevocation", "FlexOrder"),
    "ReferencedFlexSettlementReferenceValidator": ("FlexSettlementResponse",),
}


def test_the_java_map_names_rules_of_the_validators_message_types():
    make = _load_make_rules_doc()
    applies = make.JAVA_APPLIES_TO
    assert sorted(applies) == sorted(JAVA_VALIDATORS)
    for name, types in JAVA_TYPES.items():  # spot checks against the Java source
        assert sorted(applies[name]) == sorted(types), name
    every = set(spec().message_types)
    responses = {t for t in every if t.endswith("Response")}

    def types_of(name: str) -> set[str]:
        listed = applies[name]
        if listed == ("every message type",):
            return every
        if listed == ("every response that names its request",):
            return responses
        assert set(listed) <= every, (name, set(listed) - every)
        return set(listed)

    by_validator: dict[str, set[str]] = {}
    for rule in BUILT_IN:
        for name in rule.java:
            # a rule that names a validator checks messages the validator checks
            assert rule.applies_to & types_of(name), (rule.id, name)
            by_validator.setdefault(name, set()).update(rule.applies_to)
    for name, covered in by_validator.items():
        if name not in NOT_RULES:  # and together the rules cover every type it checks
            assert types_of(name) <= covered, (name, types_of(name) - covered)
    # the validator of the issue: it checks D-PrognosisResponses, not settlements
    named = {r.id for r in BUILT_IN if "ReferencedFlexOrderMessageIdValidator" in r.java}
    assert named == {"prognosis_response.orders_exist"}
    page = (ROOT / "docs" / "rules.rst").read_text(encoding="utf-8")
    assert "Where pyuftp decides differently from the Java library" in page
    for case, *_ in make.DIFFERENCES:
        assert case in page
