"""The rules that follow a message's references further (issue #18): conversations, the ISPs
a FlexRequest requests, what a FlexSettlement and a D-PrognosisResponse name, and the period
of a portfolio query.

Each rule is a small async function whose only awaits are look-ups through ``ctx`` (an
indexed ``find`` by id, or ``entries`` by reference): its cost follows the message's size,
never the archive's. Where a message names many ids (a settlement of 10,000 orders, say), the
ids are looked up once each, and at most :data:`UNKNOWN_LIMIT` unknown ones are reported:
after that the rule stops looking, so a message full of made-up ids costs a few look-ups.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from .context import Context, Rule
from .isps import meet, merged
from .stateful import portfolio_points, requested_runs

#: Unknown references reported per rule and message before the rule stops looking.
UNKNOWN_LIMIT = 10


def _exists(ctx: Context, message_type: str, message_id: str, same_way: bool) -> Any:
    """The archive entry (unparsed) of the ``message_type`` with this id between the two
    parties, or None: one indexed look-up per check (shared with the other rules), no
    parsing (for rules that need only existence)."""
    found = ctx.find(message_id, same_way)
    return found if found is not None and found.message_type == message_type else None


# --- a reply keeps the conversation of the message it answers ----------------------------------

_NAMED = {"FlexOffer": ("FlexRequest", "flex_request_message_id"),
          "FlexOrder": ("FlexOffer", "flex_offer_message_id")}


def _same_conversation(ctx: Context) -> Iterable[str]:
    named_type, key = _NAMED[ctx.message_type]
    named_id = ctx.payload.get(key)
    if named_id is None:
        return []  # unsolicited: nothing named
    # ``referenced`` remembers what it found: offer.request_exists reads the same entry.
    named = ctx.referenced(named_type, named_id, same_way=False)
    if named is None:
        return []  # offer.request_exists or order.offer_exists says so
    if named["conversation_id"] != ctx.payload.get("conversation_id"):
        return [f"conversation_id {ctx.payload.get('conversation_id')} is not the conversation "
                f"of the {named_type} {named_id} ({named['conversation_id']}): a reply keeps "
                "the conversation of the message it answers"]
    return []


# --- an offer prices every ISP the request requests ---------------------------------------------


def _covers_request(ctx: Context) -> Iterable[str]:
    p = ctx.payload
    request_id = p.get("flex_request_message_id")
    if request_id is None or ctx.settings.partial_offers:
        return []
    request = ctx.referenced("FlexRequest", request_id, same_way=False)
    if request is None:
        return []  # offer.request_exists says so
    # As merged (first, last) intervals, never as sets of ISP numbers: a Duration of
    # 2,147,483,647 is one span. An option may split a requested run differently (69-72 as
    # 69, 70-71, 72), but every requested ISP must have a price in it.
    requested = requested_runs(ctx, request_id, request)
    if not requested:
        return []
    low, high = requested[0][0], requested[-1][1]
    # Each option's spans, as the other ISP rules read them (computed once per message); of
    # them only those near the requested runs are merged (a 96-ISP option, 4 requested):
    # found by binary search in an ordered list.
    read = ctx.isps()
    if read is not None:
        near = [merged(one.near(low, high)) for one in read.lists]
    else:
        near = [merged(span for span in spans if span[1] >= low and span[0] <= high)
                for _, spans in ctx.spans()]
    if not any(meet(priced, requested) for priced in near):
        return []  # none of them at all: offer.request_exists says so
    problems = []
    for index, priced in enumerate(near):
        starts = [first for first, _ in priced]
        missing = []
        for first, last in requested:
            at = bisect.bisect_right(starts, first) - 1  # the priced span starting by ``first``
            if at < 0 or priced[at][1] < first:
                missing.append((first, last))  # from the run's first ISP
            elif priced[at][1] < last:
                missing.append((priced[at][1] + 1, last))  # from the first not priced
        if missing:
            first, last = missing[0]
            rest = len(missing) - 1
            more = f" (and {rest} more run{'s' if rest > 1 else ''})" if rest else ""
            problems.append(f"offer_options[{index}] does not price the requested ISPs "
                            f"{first}-{last}{more}: an offer prices every ISP the FlexRequest "
                            "marks Requested")
    return problems


# --- what a FlexSettlement names -----------------------------------------------------------------


def _declared(ctx: Context, declared: Any, value: str) -> bool:
    return bool(declared(ctx.counterparty, value)) if callable(declared) else value in declared


def _settlement_references(ctx: Context) -> Iterable[str]:
    settings, problems = ctx.settings, []
    points: set[str] | None = None
    if settings.congestion_points is None:
        points = portfolio_points(ctx)
    unknown = 0
    seen: dict[tuple[str, str], Any] = {}  # each id looked up once, however often it is named

    def lookup(kind: str, message_type: str, key: str, same_way: bool) -> Any:
        if (kind, key) not in seen:
            if kind == "order":  # by the reference the order carries (order_reference)
                found = ctx.entries(message_type, same_way, references=key, limit=1)
                seen[kind, key] = found[0] if found else None
            else:
                seen[kind, key] = _exists(ctx, message_type, key, same_way)
        return seen[kind, key]

    for i, s in enumerate(ctx.payload.get("flex_order_settlements", [])):
        if unknown >= UNKNOWN_LIMIT:
            problems.append(f"flex_order_settlements[{i}:]: not looked up after "
                            f"{UNKNOWN_LIMIT} unknown references")
            break
        path, found = f"flex_order_settlements[{i}]", []
        point = s.get("congestion_point")
        if point is not None:
            if settings.congestion_points is not None:
                if not _declared(ctx, settings.congestion_points, point):
                    found.append(f"congestion_point {point} is not one declared known")
            elif points is not None and point not in points:
                found.append(f"congestion_point {point} is not in the latest portfolio")
        for key, declared, what in (("contract_id", settings.contracts, "contract"),
                                    ("baseline_reference", settings.baseline_references,
                                     "baseline")):
            value = s.get(key)
            if value is not None and declared is not None and not _declared(ctx, declared, value):
                found.append(f"{key} {value!r} is not a {what} known for "
                             f"{ctx.counterparty or 'this party'}")
        prognosis = s.get("d_prognosis_message_id")
        # An AGR's D-Prognosis went the other way from the DSO's settlement.
        if prognosis is not None and lookup("prognosis", "D-Prognosis", prognosis,
                                                  False) is None:
            found.append(f"d_prognosis_message_id {prognosis} names no D-Prognosis of "
                         f"{ctx.counterparty if ctx.direction == 'out' else 'this party'}")
        reference = s.get("order_reference")
        # The DSO's orders went the way its settlement goes.
        order = None if reference is None else lookup("order", "FlexOrder", reference,
                                                            True)
        if order is not None and order.period is not None and s.get("period") is not None \
                and order.period != s["period"].isoformat():
            found.append(f"period {s['period']} was never ordered: the FlexOrder with "
                         f"order_reference {reference!r} is for {order.period}")
        elif order is None and reference is not None:
            unknown += 1  # settlement.orders_exist reports it; it counts towards the limit
        unknown += len(found)
        problems += [f"{path}: {text}" for text in found]
    for i, c in enumerate(ctx.payload.get("contract_settlements", [])):
        value = c.get("contract_id")
        if value is not None and settings.contracts is not None \
                and not _declared(ctx, settings.contracts, value):
            problems.append(f"contract_settlements[{i}]: contract_id {value!r} is not a contract "
                            f"known for {ctx.counterparty or 'this party'}")
            if len(problems) >= 2 * UNKNOWN_LIMIT:
                break
    return problems


# --- what a D-PrognosisResponse names ------------------------------------------------------------


def _prognosis_response_orders(ctx: Context) -> Iterable[str]:
    problems: list[str] = []
    seen: dict[str, bool] = {}
    for i, status in enumerate(ctx.payload.get("flex_order_statuses", [])):
        order_id = status.get("flex_order_message_id")
        if order_id is None:
            continue
        if order_id not in seen:
            if len(problems) >= UNKNOWN_LIMIT:
                problems.append(f"flex_order_statuses[{i}:]: not looked up after "
                                f"{UNKNOWN_LIMIT} unknown FlexOrders")
                break
            # The DSO sends both the orders and its answer to the AGR's D-Prognosis.
            seen[order_id] = _exists(ctx, "FlexOrder", order_id, same_way=True) is not None
        if not seen[order_id]:
            problems.append(f"flex_order_statuses[{i}]: flex_order_message_id {order_id} names "
                            f"no FlexOrder between {ctx.counterparty} and this party")
    return problems


# --- a portfolio query's answer is for the period asked ------------------------------------------

_QUERIES = {
    "AGRPortfolioQueryResponse": ("AGRPortfolioQuery", "agr_portfolio_query_message_id"),
    "DSOPortfolioQueryResponse": ("DSOPortfolioQuery", "dso_portfolio_query_message_id"),
}


def _portfolio_period(ctx: Context) -> Iterable[str]:
    query_type, key = _QUERIES[ctx.message_type]
    query = ctx.referenced(query_type, ctx.payload.get(key), same_way=False)
    if query is None:
        return []  # response.answers_our_request says so
    period = ctx.payload.get("period")
    if query.get("period") != period:
        return [f"period {period} is not the period of the {query_type} "
                f"{ctx.payload.get(key)} ({query.get('period')})"]
    return []


REFERENCES: tuple[Rule, ...] = (
    Rule("reference.same_conversation", frozenset(_NAMED),
         "a FlexOffer is in the conversation of the FlexRequest it names, a FlexOrder in that "
         "of the FlexOffer it buys", _same_conversation, stateful=True,
         java=("ReferencedFlexRequestMessageIdValidator",
               "ReferencedFlexOfferMessageIdValidator")),
    Rule("offer.covers_request", frozenset({"FlexOffer"}),
         "every offer option prices every ISP the FlexRequest marks Requested, from the start "
         "of each requested run through its duration (settings.partial_offers allows fewer)",
         _covers_request, stateful=True, java=("FlexOptionRequestMatchValidator",)),
    Rule("settlement.references_known", frozenset({"FlexSettlement"}),
         "each settled order's congestion point, ContractID, BaselineReference and "
         "D-PrognosisMessageID are known, and its period is the period ordered",
         _settlement_references, stateful=True,
         java=("CongestionPointValidator", "ReferencedContractIdValidator",
               "ReferencedBaselineReferenceValidator", "ReferencedDPrognosisMessageIdValidator")),
    Rule("prognosis_response.orders_exist", frozenset({"D-PrognosisResponse"}),
         "every FlexOrderStatus names a FlexOrder that went between the two parties",
         _prognosis_response_orders, stateful=True,
         java=("ReferencedFlexOrderMessageIdValidator",)),
    Rule("portfolio_response.period", frozenset(_QUERIES),
         "a portfolio query's response is for the period of the query it answers",
         _portfolio_period, stateful=True, java=("PeriodReferenceValidator",)),
)
