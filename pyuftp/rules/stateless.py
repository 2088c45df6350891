"""The rules that look at the message itself and the clock."""
from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from .context import (FLEX, Context, Declared, OutOfRange, Rule, _zone, day_bounds, isp_count,
                      isp_end, local_date, shifted)
from ..message.catalog import SPECS
from .currencies import MINOR_UNITS

# The responses that carry a Result: the catalog pairs requests and responses (the one
# source), in every version it knows.
RESULTS = frozenset(t for s in SPECS.values() for t in s.message_types
                    if s.request_type(t) is not None and "result" in s.messages[t].keys())



def _isp_duration(ctx: Context) -> Iterable[str]:
    allowed = ctx.settings.isp_durations
    value = ctx.payload.get("isp_duration")
    if value is not None and value not in allowed:
        yield (f"isp_duration {_minutes(value)} is not an ISP length this party trades in "
               f"({', '.join(_minutes(d) for d in sorted(allowed))})")


def _minutes(value: dt.timedelta) -> str:
    return f"PT{int(value.total_seconds() // 60)}M"


def _time_zone(ctx: Context) -> Iterable[str]:
    name = ctx.payload.get("time_zone")
    if name is None:
        return
    if _zone(name) is None:
        yield f"time_zone {name!r} is not a time zone of the IANA database"
    elif ctx.settings.time_zones is not None and name not in ctx.settings.time_zones:
        yield f"time_zone {name!r} is not one this party trades in"


def _within_period(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    if not {"period", "isp_duration", "time_zone"} <= set(p) or _zone(p["time_zone"]) is None:
        return
    try:
        count = isp_count(p["period"], p["isp_duration"], p["time_zone"])
    except OutOfRange:
        return  # period.on_calendar or isp.duration says so
    index = ctx.isps()
    lists = ctx.spans() if index is None else [
        (one.path, one.spans) for one in index.lists if not one.within(1, count)]
    for path, spans in lists:  # with the index: only a list with ISPs outside the day
        if index is None and spans and (min(spans)[0] >= 1
                                        and max(last for _, last in spans) <= count):
            continue  # the common case, in C: every ISP inside the day
        for at, (first, last) in enumerate(spans):
            if first < 1 or last > count:
                yield (f"{path}[{at}]: ISPs {first}-{last} lie outside {p['period']}, "
                       f"which has ISPs 1-{count} in {p['time_zone']}")


def _on_calendar(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    period = p.get("period")
    if isinstance(period, dt.date):
        try:
            day_bounds(period, p.get("time_zone") or "UTC")
        except OutOfRange:
            yield (f"period {period} cannot be placed in time: its day in "
                   f"{p.get('time_zone') or 'UTC'} begins or ends outside the years 1-9999")


def _no_overlap(ctx: Context) -> Iterable[str]:
    index = ctx.isps()
    lists = ctx.spans() if index is None else [
        (one.path, one.spans) for one in index.lists if not one.ordered]
    for path, spans in lists:  # with the index: only a list not in order already
        ordered = sorted((first, last, at) for at, (first, last) in enumerate(spans))
        reach = None  # the last ISP covered by the spans before
        for first, last, at in ordered:
            if reach is not None and first <= reach:
                yield f"{path}[{at}]: ISP {first} is addressed twice"
            reach = last if reach is None else max(reach, last)


def _expiration_future(ctx: Context) -> Iterable[str]:
    expires = ctx.payload.get("expiration_date_time")
    if expires is not None and expires <= shifted(ctx.now, -ctx.settings.clock_skew):
        yield f"expiration_date_time {expires.isoformat()} has passed"


def _expiration_before_end(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    expires = p.get("expiration_date_time")
    if expires is None or not {"period", "isp_duration", "time_zone"} <= set(p):
        return
    index = ctx.isps()
    last = index.high if index is not None else max(
        (last for _, spans in ctx.spans() for _, last in spans), default=None)
    if last is not None:
        try:
            end = isp_end(p["period"], p["isp_duration"], p["time_zone"], last)
        except OutOfRange:
            return  # off the calendar: period.on_calendar or isp.within_period says so
        if expires > end:
            yield (f"expiration_date_time {expires.isoformat()} is after the end of the last ISP "
                   f"listed ({last}, {end.isoformat()})")


def _period_today_or_later(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    zone = _zone(p.get("time_zone", "")) if "period" in p else None
    if zone is not None:
        today = local_date(ctx.now, zone)
        if p["period"] < today:
            yield f"period {p['period']} is before today ({today} in {p['time_zone']})"


def _start_before_end(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    if ctx.message_type == "FlexSettlement" and p.get("period_start") and p.get("period_end"):
        if p["period_start"] > p["period_end"]:
            yield f"period_start {p['period_start']} is after period_end {p['period_end']}"
    for path, item in _ranges(ctx.message_type, p):
        if item.get("end_period") is not None and item["start_period"] > item["end_period"]:
            yield (f"{path}: start_period {item['start_period']} is after end_period "
                   f"{item['end_period']}")


def _ranges(message_type: str, p: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    if message_type == "DSOPortfolioUpdate":
        for i, cp in enumerate(p.get("congestion_points", [])):
            yield f"congestion_points[{i}]", cp
            for j, c in enumerate(cp.get("connections", [])):
                yield f"congestion_points[{i}].connections[{j}]", c
    elif message_type == "AGRPortfolioUpdate":
        for i, c in enumerate(p.get("connections", [])):
            yield f"connections[{i}]", c


def _in_range(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    if ctx.message_type == "FlexSettlement":
        start, end = p.get("period_start"), p.get("period_end")
        days = [(f"flex_order_settlements[{i}]", s.get("period"))
                for i, s in enumerate(p.get("flex_order_settlements", []))]
        days += [(f"contract_settlements[{i}].periods[{j}]", q.get("period"))
                 for i, c in enumerate(p.get("contract_settlements", []))
                 for j, q in enumerate(c.get("periods", []))]
        for path, day in days:
            if day is not None and start and end and not start <= day <= end:
                yield f"{path}: period {day} lies outside {start} to {end}"
    elif ctx.message_type == "DSOPortfolioUpdate":
        for i, cp in enumerate(p.get("congestion_points", [])):
            for j, c in enumerate(cp.get("connections", [])):
                cp_end = cp.get("end_period") or dt.date.max
                c_end = c.get("end_period") or dt.date.max
                if c["start_period"] < cp["start_period"] or c_end > cp_end:
                    yield (f"congestion_points[{i}].connections[{j}]: its periods lie outside "
                           "the congestion point's")


def _unsolicited_offer(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    if "unsolicited" in p and p["unsolicited"] == ("flex_request_message_id" in p):
        yield ("flex_request_message_id must be given exactly when the offer is not unsolicited "
               f"(unsolicited is {p['unsolicited']})")


def _unsolicited_order(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    if "unsolicited" in p or p.get("version", "").startswith("3.1"):
        if bool(p.get("unsolicited")) == ("flex_offer_message_id" in p):
            yield ("flex_offer_message_id must be given exactly when the order is not "
                   f"unsolicited (unsolicited is {bool(p.get('unsolicited'))})")


def _requested(ctx: Context) -> Iterable[str]:
    isps = ctx.payload.get("isps", [])
    if not any(isp.get("disposition", "Requested") == "Requested" for isp in isps):
        yield "no ISP has disposition Requested: the request asks for nothing"


def _power_band(ctx: Context) -> Iterable[str]:
    for i, isp in enumerate(ctx.payload.get("isps", [])):
        if isp["min_power"] > isp["max_power"]:
            yield f"isps[{i}]: min_power {isp['min_power']} is above max_power {isp['max_power']}"
        elif (isp.get("disposition", "Requested") == "Requested"
              and isp["min_power"] < 0 < isp["max_power"]):
            yield (f"isps[{i}]: a Requested ISP needs a direction, not min_power "
                   f"{isp['min_power']} "
                   f"below 0 and max_power {isp['max_power']} above 0 at once")


def _currency(ctx: Context) -> Iterable[str]:
    code = ctx.payload.get("currency")
    if code is None:
        return
    if code not in MINOR_UNITS:
        yield f"currency {code!r} is not an ISO 4217 code"
    elif ctx.settings.currencies is not None and code not in ctx.settings.currencies:
        yield f"currency {code} is not one this party trades in"


def _price_decimals(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    digits = MINOR_UNITS.get(p.get("currency", ""))
    if digits is None:
        return
    prices = [("price", p.get("price"))] + [(f"offer_options[{i}].price", o.get("price"))
                                            for i, o in enumerate(p.get("offer_options", []))]
    for path, price in prices:
        if price is not None and _decimals(Decimal(price)) > digits:
            yield f"{path} {price} has more decimals than {p['currency']} has ({digits})"


def _decimals(value: Decimal) -> int:
    """Digits after the point, trailing zeros aside (no rounding, no context: normalize()
    would overflow on a price of a million digits)."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0 or not any(digits):
        return 0  # a whole number, zero (or NaN, infinity: no decimals to count)
    trailing = 0
    for digit in reversed(digits):
        if digit or trailing >= -exponent:
            break
        trailing += 1
    return -exponent - trailing


def exact() -> decimal.Context:
    """A decimal context for sums and products of the message's numbers: no trap (an
    overflow is a result, not an exception) and the widest exponents."""
    return decimal.Context(prec=100, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[])


def _rejection_reason(ctx: Context) -> Iterable[str]:
    if ctx.payload.get("result") == "Rejected" and not ctx.payload.get("rejection_reason"):
        yield "a Rejected result needs a rejection_reason"


def _dispute_reason(ctx: Context) -> Iterable[str]:
    for i, status in enumerate(ctx.payload.get("flex_order_settlement_statuses", [])):
        if status.get("disposition") == "Disputed" and not status.get("dispute_reason"):
            yield (f"flex_order_settlement_statuses[{i}]: a Disputed settlement needs a "
                   "dispute_reason")


def _net_settlement(ctx: Context) -> Iterable[str]:
    for i, s in enumerate(ctx.payload.get("flex_order_settlements", [])):
        expected = exact().subtract(Decimal(s["price"]), Decimal(s.get("penalty", 0)))
        if Decimal(s["net_settlement"]) != expected:
            yield (f"flex_order_settlements[{i}]: net_settlement {s['net_settlement']} is not "
                   f"price - penalty ({expected})")


_UNITS = {"Power": "kW", "ImportEnergy": "kWh", "ExportEnergy": "kWh",
          "ImportMeterReading": "kWh", "ExportMeterReading": "kWh"}


def _unit(ctx: Context) -> Iterable[str]:
    for i, profile in enumerate(ctx.payload.get("profiles", [])):
        wanted = _UNITS.get(profile.get("profile_type", ""))
        if wanted and profile.get("unit") != wanted:
            yield (f"profiles[{i}]: a {profile['profile_type']} profile is in {wanted}, not "
                   f"{profile.get('unit')}")


def _declared(ctx: Context, key: str, declared: Declared, what: str) -> Iterable[str]:
    value = ctx.payload.get(key)
    if value is None or declared is None:
        return
    known = declared(ctx.counterparty, value) if callable(declared) else value in declared
    if not known:
        yield f"{key} {value!r} is not a {what} known for {ctx.counterparty or 'this party'}"


def _contract(ctx: Context) -> Iterable[str]:
    return _declared(ctx, "contract_id", ctx.settings.contracts, "contract")


def _baseline(ctx: Context) -> Iterable[str]:
    return _declared(ctx, "baseline_reference", ctx.settings.baseline_references, "baseline")




STATELESS: tuple[Rule, ...] = (
    Rule("isp.duration", frozenset(FLEX + ("Metering",)),
         "ISP-Duration is one of the allowed ISP lengths (settings.isp_durations)", _isp_duration,
         java=("IspDurationValidator",)),
    Rule("timezone.supported",
         frozenset(FLEX + ("Metering", "AGRPortfolioQuery", "AGRPortfolioQueryResponse",
                           "AGRPortfolioUpdate", "DSOPortfolioQuery",
                           "DSOPortfolioQueryResponse", "DSOPortfolioUpdate")),
         "TimeZone is a real IANA zone (and an allowed one, settings.time_zones)", _time_zone,
         java=("TimeZoneSupportedValidator",)),
    Rule("isp.within_period", frozenset(FLEX + ("Metering",)),
         "every ISP lies within the day, whose ISP count follows the time zone's daylight saving",
         _within_period, java=("IspPeriodBoundaryValidator",)),
    Rule("period.on_calendar", frozenset(FLEX + ("Metering",)),
         "the Period's day lies within the years 1-9999 in its time zone (a day no clock "
         "reaches cannot be traded)",
         _on_calendar),
    Rule("isp.no_overlap", frozenset(FLEX + ("Metering",)),
         "no ISP is addressed twice (duration included)", _no_overlap,
         java=("IspConflictsValidator",)),
    Rule("expiration.in_future", frozenset({"FlexRequest", "FlexOffer"}),
         "ExpirationDateTime has not passed (within the clock skew)", _expiration_future,
         java=("ExpirationInTheFutureValidator",)),
    Rule("expiration.before_isps_end", frozenset({"FlexRequest", "FlexOffer"}),
         "ExpirationDateTime is not after the end of the last ISP listed", _expiration_before_end,
         java=("ExpirationBeforeIspsListedEndValidator",)),
    Rule("period.today_or_later", frozenset(FLEX),
         "the Period is today or later in the message's time zone", _period_today_or_later,
         java=("PeriodFutureOrTodayValidator",)),
    Rule("period.start_before_end",
         frozenset({"FlexSettlement", "DSOPortfolioUpdate", "AGRPortfolioUpdate"}),
         "start periods are not after end periods", _start_before_end,
         java=("PeriodStartBeforeOrEqualsToEndValidator",)),
    Rule("period.in_range", frozenset({"FlexSettlement", "DSOPortfolioUpdate"}),
         "settled days lie within the settlement's period; connections within their congestion "
         "point's",
         _in_range, java=("PeriodIsInRangeValidator",)),
    Rule("offer.unsolicited", frozenset({"FlexOffer"}),
         "a FlexRequestMessageID is given exactly when the offer is not Unsolicited",
         _unsolicited_offer, java=("UnsolicitedFlexOfferValidator",)),
    Rule("order.unsolicited", frozenset({"FlexOrder"}),
         "a FlexOfferMessageID is given exactly when the order is not Unsolicited (3.1.0)",
         _unsolicited_order, java=("UnsolicitedFlexOrderValidator",)),
    Rule("request.requested", frozenset({"FlexRequest"}),
         "at least one ISP has disposition Requested", _requested,
         java=("IspRequestedDispositionValidator",)),
    Rule("request.power_band", frozenset({"FlexRequest"}),
         "MinPower is not above MaxPower, and a Requested ISP has a direction", _power_band,
         java=("IspPowerDiscrepancyValidator",)),
    Rule("currency.iso4217", frozenset({"FlexOffer", "FlexOrder", "FlexSettlement"}),
         "Currency is an ISO 4217 code (and an allowed one, settings.currencies)", _currency,
         default=False, java=("FlexOfferCurrencyValidator", "FlexOrderCurrencyValidator")),
    Rule("price.minor_unit", frozenset({"FlexOffer", "FlexOrder"}),
         "prices have no more decimals than the currency's minor unit", _price_decimals,
         default=False, java=("FlexOfferPriceValidator",)),
    Rule("result.rejection_reason", RESULTS, "a Rejected result carries a RejectionReason",
         _rejection_reason),
    Rule("settlement.dispute_reason", frozenset({"FlexSettlementResponse"}),
         "a Disputed order settlement carries a DisputeReason", _dispute_reason),
    Rule("settlement.net", frozenset({"FlexSettlement"}), "NetSettlement is Price minus Penalty",
         _net_settlement),
    Rule("metering.unit", frozenset({"Metering"}),
         "the unit fits the profile type (kW for Power, kWh for energy and readings)", _unit),
    Rule("contract.known",
         frozenset({"FlexRequest", "FlexOffer", "FlexOrder", "FlexReservationUpdate"}),
         "ContractID is one the user declared (settings.contracts)", _contract,
         java=("ReferencedContractIdValidator",)),
    Rule("baseline.known", frozenset({"FlexOffer", "FlexOrder"}),
         "BaselineReference is one the user declared (settings.baseline_references)", _baseline,
         java=("ReferencedBaselineReferenceValidator",)),
)
