"""The rules that look referenced messages up in the archive.

A message names others: a FlexOffer its FlexRequest, a FlexOrder its FlexOffer, a response its
request. Each such message went between the same two parties, either the same way as the
message that names it (a FlexOfferRevocation and the FlexOffer it revokes) or the other way
(a FlexOrder and the FlexOffer it buys), and is looked up so: a party cannot name a message
it never got, or one that went to somebody else.
"""
from __future__ import annotations

import decimal
import itertools
import operator
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ..message.catalog import spec
from .context import Context, Rule, _span
from . import isps
from .isps import meet, merged, read
from .stateless import exact

# The catalog pairs requests and responses (Spec.request_type): the one source.
RESPONSES = frozenset(t for t in spec().message_types if spec().request_type(t) is not None)


# Said with a response that names no request of ours: the usual cause is a request sent by a
# standalone client, whose archive the service does not see.
_UNKNOWN_REQUEST = (" (not in this party's archive: send requests with service.client(...) so "
                    "the service knows them)")


def _answers_our_request(ctx: Context) -> Iterable[str]:
    s = spec(ctx.payload.get("version"))
    request_type = s.request_type(ctx.message_type)
    if request_type is None:
        return []
    key = s.reference_key(request_type)
    if key is None:  # TestMessageResponse: its conversation names the TestMessage
        found = ctx.entries(request_type, same_way=False, limit=1,
                            conversation_id=ctx.payload["conversation_id"])
        return [] if found else [f"no {request_type} in conversation "
                                 f"{ctx.payload['conversation_id']} went to {ctx.counterparty}"
                                 f"{_UNKNOWN_REQUEST}"]
    request = ctx.referenced(request_type, ctx.payload.get(key), same_way=False)
    if request is None:
        return [f"{key} {ctx.payload.get(key)} names no {request_type} that went to "
                f"{ctx.counterparty}{_UNKNOWN_REQUEST}"]
    if request["conversation_id"] != ctx.payload["conversation_id"]:
        return [f"{key} {ctx.payload.get(key)} is a {request_type} of another conversation"]
    return []


def _expired(message_type: str, message_id: str, found: dict[str, Any], at: Any) -> list[str]:
    """The problem, if the referenced message had expired when this one was sent."""
    expires = found["expiration_date_time"]
    if expires < at:
        return [f"the {message_type} {message_id} expired at {expires.isoformat()}"]
    return []


def _offer_request(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    request_id = p.get("flex_request_message_id")
    if request_id is None:
        return []
    request = ctx.referenced("FlexRequest", request_id, same_way=False)
    if request is None:
        return [f"flex_request_message_id {request_id} names no FlexRequest from "
                f"{ctx.counterparty}"]
    problems = _expired("FlexRequest", request_id, request, p.get("time_stamp", ctx.now))
    for key in ("period", "congestion_point"):
        if request.get(key) != p.get(key):
            problems.append(f"{key} {p.get(key)} is not the FlexRequest's ({request.get(key)})")
    # As intervals, never as sets of ISP numbers: a Duration of 2,147,483,647 is one span.
    request["isps"]  # noqa: B018 - a FlexRequest without ISPs is a fault of the archive
    requested = requested_runs(ctx, request_id, request)
    if requested:
        index = ctx.isps()
        if index is not None:  # per option, a binary search per requested run
            covered = any(one.meets(requested) for one in index.lists)
        else:
            covered = meet((_span(i) for o in p.get("offer_options", [])
                            for i in o.get("isps", [])), requested)
        if not covered:
            problems.append("the offer covers none of the ISPs the FlexRequest requests")
    return problems


def requested_runs(ctx: Context, request_id: str,
                   request: dict[str, Any]) -> list[tuple[int, int]]:
    """The ISPs the FlexRequest ``request_id`` marks Requested, as :func:`merged` spans:
    computed once per check for the rules that compare an offer with its request."""
    return ctx.once(("requested", request_id), lambda: merged(  # type: ignore[no-any-return]
        _span(i) for i in request.get("isps", [])
        if i.get("disposition", "Requested") == "Requested"))


def _prognosis(ctx: Context) -> Iterable[str]:
    prognosis_id = ctx.payload.get("d_prognosis_message_id")
    if prognosis_id is None:
        return []
    # An AGR's FlexOffer names a D-Prognosis it sent; a DSO's FlexOrder one it received.
    same_way = ctx.message_type == "FlexOffer"
    if ctx.referenced("D-Prognosis", prognosis_id, same_way) is None:
        return [f"d_prognosis_message_id {prognosis_id} names no D-Prognosis of {ctx.counterparty}"
                if not same_way else f"d_prognosis_message_id {prognosis_id} names no "
                f"D-Prognosis sent to {ctx.counterparty}"]
    return []


def _order_offer(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    offer_id = p.get("flex_offer_message_id")
    if offer_id is None:
        return []
    offer = ctx.referenced("FlexOffer", offer_id, same_way=False)
    if offer is None:
        return [f"flex_offer_message_id {offer_id} names no FlexOffer of {ctx.counterparty}"]
    # As of the receiver's clock (ctx.now), not the order's own TimeStamp: an order stamped
    # before the offer expired but received after it comes too late.
    problems = _expired("FlexOffer", offer_id, offer, ctx.now)
    revocations = ctx.entries("FlexOfferRevocation", same_way=False, references=offer_id)
    if any(r.outcome != "Rejected" for r in revocations):
        problems.append(f"the FlexOffer {offer_id} was revoked")
    return problems


def _order_match(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    offer = ctx.referenced("FlexOffer", p.get("flex_offer_message_id"), same_way=False)
    if offer is None:
        return []  # order.offer_exists says so
    options = offer.get("offer_options", [])
    if p.get("option_reference") is not None:
        options = [o for o in options if o["option_reference"] == p["option_reference"]]
        if len(options) != 1:
            return [f"option_reference {p['option_reference']!r} names no single option of "
                    "the offer"]
    elif len(options) != 1:
        return ["option_reference is needed: the offer has several options"]
    option, problems = options[0], []
    wide = exact()  # products of the message's numbers: no overflow trap
    factor = Decimal(p.get("activation_factor", 1))
    if factor < Decimal(option.get("min_activation_factor", 1)):
        problems.append(f"activation_factor {factor} is below the option's min_activation_factor "
                        f"{option.get('min_activation_factor', 1)}")
    problems += _powers_match(ctx, option["isps"], factor, wide)
    scaled = wide.multiply(Decimal(option["price"]), factor)
    if abs(wide.subtract(Decimal(p["price"]), scaled)) > Decimal("0.01"):
        problems.append(f"price {p['price']} is not the option's {option['price']} times {factor}")
    for key in ("currency", "period", "congestion_point"):
        if offer.get(key) != p.get(key):
            problems.append(f"{key} {p.get(key)} is not the offer's ({offer.get(key)})")
    return problems


def _powers_match(ctx: Context, offered_isps: list[dict[str, Any]], factor: Decimal,
                  wide: decimal.Context) -> list[str]:
    """That the order's ISPs are the option's, each power the offered one times ``factor``
    (within 1 W): the first ISP that is not, if any."""
    order_isps = ctx.payload.get("isps", [])
    index = ctx.isps()
    theirs = None if index is None else read("", offered_isps)
    if index is not None and theirs is not None and theirs.ordered and index.lists[0].ordered:
        # Both in order, no span twice: the same spans are the same lists, side by side.
        offered_powers = [i["power"] for i in offered_isps]
        ordered_powers = [i["power"] for i in order_isps]
        mine = index.lists[0]
        if mine.firsts != theirs.firsts or mine.lasts != theirs.lasts:
            return ["the ISPs are not the offer option's ISPs"]
        spans: Iterable[tuple[int, int]] = zip(mine.firsts, mine.lasts)  # read if need be
    else:
        offered = {_span(i): i["power"] for i in offered_isps}
        ordered = {_span(i): i["power"] for i in order_isps}
        if set(offered) != set(ordered):
            return ["the ISPs are not the offer option's ISPs"]
        spans, ordered_powers = list(ordered), list(ordered.values())
        offered_powers = [offered[span] for span in spans]
    ratio = _ratio(factor, offered_powers, ordered_powers)
    if ratio is not None:  # the same comparison in whole numbers (exact, as wide is)
        numerator, denominator = ratio
        scaled = map(operator.mul, offered_powers, itertools.repeat(numerator))
        asked = map(operator.mul, ordered_powers, itertools.repeat(denominator))
        if max(map(abs, map(operator.sub, asked, scaled)), default=0) <= denominator:
            return []  # every ISP within 1 W, in C
    for span, power, offer in zip(spans, ordered_powers, offered_powers):
        if ratio is not None:
            off = abs(power * ratio[1] - offer * ratio[0]) > ratio[1]
        else:
            off = abs(wide.subtract(Decimal(power), wide.multiply(Decimal(offer), factor))) > 1
        if off:
            return [f"the power of ISPs {span[0]}-{span[1]} is not the offered {offer} W "
                    f"times {factor}"]
    return []


# Powers and activation factors within these bounds multiply and subtract exactly in the
# rules' 100-digit decimal context, and so in whole numbers (a numerator and denominator).
_SMALL = 10**30


def _ratio(factor: Decimal, *powers: list[Any]) -> tuple[int, int] | None:
    """``factor`` as (numerator, denominator) when every power is an ``int`` and all are
    small enough for the comparison in whole numbers to be the decimal one; else None (and
    with :data:`pyuftp.rules.isps.FAST` off)."""
    if not isps.FAST or not factor.is_finite():
        return None
    _, digits, exponent = factor.as_tuple()
    if len(digits) > 30 or not isinstance(exponent, int) or not -30 <= exponent <= 30:
        return None
    values = [value for group in powers for value in group]
    if not set(map(type, values)) <= {int} or (values and max(map(abs, values)) >= _SMALL):
        return None
    return factor.as_integer_ratio()


def _revocation(ctx: Context) -> Iterable[str]:
    offer_id = ctx.payload["flex_offer_message_id"]
    if ctx.referenced("FlexOffer", offer_id, same_way=True) is None:
        return [f"flex_offer_message_id {offer_id} names no FlexOffer of {ctx.counterparty}"]
    orders = ctx.entries("FlexOrder", same_way=False, references=offer_id)
    if any(o.outcome != "Rejected" for o in orders):
        return [f"the FlexOffer {offer_id} has an order already: it cannot be revoked"]
    return []


def _settled_orders(ctx: Context) -> Iterable[str]:
    problems = []
    for i, s in enumerate(ctx.payload.get("flex_order_settlements", [])):
        reference = s.get("order_reference")
        if reference and not ctx.entries("FlexOrder", same_way=True, references=reference,
                                               limit=1):
            problems.append(f"flex_order_settlements[{i}]: order_reference {reference!r} names "
                            f"no FlexOrder sent to {ctx.counterparty}")
    return problems


def _settlement_statuses(ctx: Context) -> Iterable[str]:
    settlement = ctx.referenced("FlexSettlement", ctx.payload.get("flex_settlement_message_id"),
                                      same_way=False)
    if settlement is None:
        return []  # response.answers_our_request says so
    known = {s.get("order_reference") for s in settlement.get("flex_order_settlements", [])}
    return [f"flex_order_settlement_statuses[{i}]: order_reference {s.get('order_reference')!r} "
            "is not in the settlement" for i, s in
            enumerate(ctx.payload.get("flex_order_settlement_statuses", []))
            if s.get("order_reference") is not None and s["order_reference"] not in known]


def _revision(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    if ctx.lookups is None or "period" not in p or not isinstance(p.get("revision"), int):
        return []
    day = p["period"].isoformat()
    # One indexed look-up (kept when archiving), never a re-read of the day's messages.
    highest = ctx.lookups.highest_revision(
        ctx.direction, ctx.counterparty, ctx.message_type, day, p.get("congestion_point"),
        excluding=p.get("message_id"))
    if highest is not None and p["revision"] <= highest:
        return [f"revision {p['revision']} is not above the {highest} already sent for "
                f"{p.get('congestion_point')} on {day}"]
    return []


def _congestion_point(ctx: Context) -> Iterable[str]:
    point = ctx.payload.get("congestion_point")
    declared = ctx.settings.congestion_points
    if point is None:
        return []
    if declared is not None:
        known = declared(ctx.counterparty, point) if callable(declared) else point in declared
        return [] if known else [f"congestion_point {point} is not one declared known"]
    points = portfolio_points(ctx)
    if points is None:
        return []
    return [] if point in points else [f"congestion_point {point} is not in the latest portfolio"]


def portfolio_points(ctx: Context) -> set[str] | None:
    """The congestion points of the newest portfolio message (a DSO's own update to the CRO,
    or what the CRO told an AGR in answer to its query, the latest of either); None when
    there is none to judge by, or no archive. Read once per check: two indexed reads of the
    newest row of each kind, never every one archived."""
    lookups = ctx.lookups
    if lookups is None:
        return None

    def read() -> set[str] | None:
        assert lookups is not None
        found: list[Any] = lookups.query(message_type="DSOPortfolioUpdate", direction="out",
                                         newest_first=True, limit=1)
        found += lookups.query(message_type="AGRPortfolioQueryResponse", direction="in",
                               newest_first=True, limit=1)
        if not found:
            return None
        payload = lookups.payload(max(found, key=lambda entry: entry.time_stamp))
        points = {cp["entity_address"] for cp in payload.get("congestion_points", [])}
        points |= {cp["entity_address"] for view in payload.get("dso_views", [])
                   for portfolio in view.get("dso_portfolios", [])
                   for cp in portfolio.get("congestion_points", [])}
        return points

    return ctx.once(("portfolio_points",), read)  # type: ignore[no-any-return]


STATEFUL: tuple[Rule, ...] = (
    Rule("response.answers_our_request", RESPONSES,
         "a response names a request that went to the responder, in the same conversation",
         _answers_our_request, stateful=True,
         java=("ReferencedRequestMessageIdInResponseValidator",
               "ReferencedFlexSettlementReferenceValidator")),
    Rule("offer.request_exists", frozenset({"FlexOffer"}),
         "the FlexRequest an offer answers exists, came from the DSO, has not expired, has its "
         "period and congestion point, and the offer covers a requested ISP",
         _offer_request, stateful=True,
         java=("ReferencedFlexRequestMessageIdValidator", "FlexOptionRequestMatchValidator",
               "PeriodReferenceValidator", "NotExpiredValidator")),
    Rule("prognosis.exists", frozenset({"FlexOffer", "FlexOrder"}),
         "the D-Prognosis named exists (sent by the AGR)", _prognosis, stateful=True,
         java=("ReferencedDPrognosisMessageIdValidator",)),
    Rule("order.offer_exists", frozenset({"FlexOrder"}),
         "the FlexOffer an order buys exists, came from that AGR, had not expired when the "
         "order was received and is not revoked",
         _order_offer, stateful=True,
         java=("ReferencedFlexOfferMessageIdValidator", "FlexOrderOfferIsNotRevokedValidator",
               "NotExpiredValidator")),
    Rule("order.matches_offer", frozenset({"FlexOrder"}),
         "an order's option, ISPs, power, price (scaled by the activation factor, not below the "
         "option's minimum), currency, period and congestion point match the offer",
         _order_match, stateful=True,
         java=("ReferencedFlexOrderOptionReferenceValidator", "FlexOrderIspMatchValidator",
               "FlexOrderFlexibilityMatchValidator", "FlexOrderPriceMatchValidator",
               "PeriodReferenceValidator")),
    Rule("revocation.offer_open", frozenset({"FlexOfferRevocation"}),
         "the revoked offer exists, came from the revoking AGR, and has no order", _revocation,
         stateful=True, java=("FlexOfferRevocationSenderDomainValidator",
                              "ReferencedFlexOfferMessageIdValidator")),
    Rule("settlement.orders_exist", frozenset({"FlexSettlement"}),
         "every order settled was ordered from that AGR", _settled_orders, stateful=True),
    Rule("settlement.statuses_known", frozenset({"FlexSettlementResponse"}),
         "every order a settlement response judges is in the settlement", _settlement_statuses,
         stateful=True, java=("ReferencedFlexSettlementResponseOrderReferenceValidator",)),
    Rule("revision.increases", frozenset({"FlexRequest", "D-Prognosis"}),
         "revisions for a congestion point and day only increase", _revision, stateful=True),
    Rule("congestion_point.known",
         frozenset({"FlexRequest", "FlexOffer", "FlexOrder", "D-Prognosis",
                    "FlexReservationUpdate"}),
         "the congestion point is declared known, or in the latest portfolio message",
         _congestion_point, stateful=True, java=("CongestionPointValidator",)),
)
