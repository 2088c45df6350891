"""The rules that look referenced messages up in the archive.

A message names others: a FlexOffer its FlexRequest, a FlexOrder its FlexOffer, a response its
request. Each such message went between the same two parties, either the same way as the
message that names it (a FlexOfferRevocation and the FlexOffer it revokes) or the other way
(a FlexOrder and the FlexOffer it buys), and is looked up so: a party cannot name a message
it never got, or one that went to somebody else.
"""
from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ..message.catalog import spec
from .context import Context, Rule, _span, meet, merged
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
    requested = merged(_span(i) for i in request["isps"]
                       if i.get("disposition", "Requested") == "Requested")
    offered = (_span(i) for o in p.get("offer_options", []) for i in o.get("isps", []))
    if requested and not meet(offered, requested):
        problems.append("the offer covers none of the ISPs the FlexRequest requests")
    return problems


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
    offered = {_span(i): i["power"] for i in option["isps"]}
    ordered = {_span(i): i["power"] for i in p.get("isps", [])}
    if set(offered) != set(ordered):
        problems.append("the ISPs are not the offer option's ISPs")
    else:
        for span, power in ordered.items():
            if abs(wide.subtract(Decimal(power), wide.multiply(Decimal(offered[span]),
                                                               factor))) > 1:
                problems.append(f"the power of ISPs {span[0]}-{span[1]} is not the offered "
                                f"{offered[span]} W times {factor}")
                break
    scaled = wide.multiply(Decimal(option["price"]), factor)
    if abs(wide.subtract(Decimal(p["price"]), scaled)) > Decimal("0.01"):
        problems.append(f"price {p['price']} is not the option's {option['price']} times {factor}")
    for key in ("currency", "period", "congestion_point"):
        if offer.get(key) != p.get(key):
            problems.append(f"{key} {p.get(key)} is not the offer's ({offer.get(key)})")
    return problems


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
    if ctx.lookups is None:
        return []
    # What the portfolio messages say: a DSO's own update to the CRO, or what the CRO told
    # an AGR in answer to its query (the latest of either).
    # The newest of each kind only (an indexed read of one row each), not every one archived.
    found: list[Any] = ctx.lookups.query(message_type="DSOPortfolioUpdate", direction="out",
                                               newest_first=True, limit=1)
    found += ctx.lookups.query(message_type="AGRPortfolioQueryResponse", direction="in",
                                     newest_first=True, limit=1)
    if not found:
        return []
    latest = max(found, key=lambda entry: entry.time_stamp)
    payload = ctx.lookups.payload(latest)
    points = {cp["entity_address"] for cp in payload.get("congestion_points", [])}
    points |= {cp["entity_address"] for view in payload.get("dso_views", [])
               for portfolio in view.get("dso_portfolios", [])
               for cp in portfolio.get("congestion_points", [])}
    return [] if point in points else [f"congestion_point {point} is not in the latest portfolio"]


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
