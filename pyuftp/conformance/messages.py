"""The message checks, per role pair and version, from the catalog
(:mod:`pyuftp.message.catalog`): every request type we may send them is sent once, valid,
and must be answered by its response type, naming it, in its conversation, valid against the
schema of its version; and once per business rule that applies, broken, and must be answered
Rejected with a reason.

A valid message may still be Rejected by a rule that needs history the runner cannot build
from its side (an offer names a FlexRequest only the DSO can send): the check asks for an
answer of the right shape, and shows its result.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from ..exceptions import excerpt
from ..message.catalog import spec
from ..message.codec import parse_xml
from ..message.examples import example
from ..message.read import schema
from ..rules.context import FLEX
from .checks import FAIL, PASS, Check, Outcome
from .runner import Arrival, Link, new_id

__all__ = ["checks", "BREAKERS", "order_for"]

CATALOG = "message-descriptions/message-catalog/"


def page(message_type: str) -> str:
    """The spec's page of a message type: FlexOffer -> .../flex-offer.md."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z]+", message_type)
    return CATALOG + "-".join(w.lower() for w in words) + ".md"

Mutate = Callable[[dict[str, Any]], None]


def _isp_lists(payload: dict[str, Any]) -> list[list[dict[str, Any]]]:
    if "isps" in payload:
        return [payload["isps"]]
    return [option["isps"] for option in payload.get("offer_options", [])]


def _overlap(payload: dict[str, Any]) -> None:
    isps = _isp_lists(payload)[0]
    isps.append(dict(isps[0]))


def _past_period(payload: dict[str, Any]) -> None:
    payload["period"] = dt.date.today() - dt.timedelta(days=3)


def _expired(payload: dict[str, Any]) -> None:
    payload["expiration_date_time"] = (dt.datetime.now(dt.timezone.utc)
                                       - dt.timedelta(hours=2)).replace(microsecond=0)


def _beyond_day(payload: dict[str, Any]) -> None:
    _isp_lists(payload)[0][0].update(start=200, duration=1)


def _nothing_requested(payload: dict[str, Any]) -> None:
    for isp in payload["isps"]:
        isp["disposition"] = "Available"


def _end_before_start(payload: dict[str, Any]) -> None:
    first = (payload.get("connections") or payload["congestion_points"])[0]
    first["end_period"] = first["start_period"] - dt.timedelta(days=1)


def _wrong_unit(payload: dict[str, Any]) -> None:
    payload["profiles"][0].update(profile_type="Power", unit="kWh")


#: rule id -> (the message types, how to break it once)
BREAKERS: dict[str, tuple[tuple[str, ...], Mutate]] = {
    "isp.no_overlap": (("D-Prognosis", "FlexRequest", "FlexOffer", "FlexOrder",
                        "FlexReservationUpdate"), _overlap),
    "isp.within_period": (("D-Prognosis", "FlexRequest", "FlexOffer", "FlexOrder"), _beyond_day),
    "period.today_or_later": (FLEX, _past_period),
    "expiration.in_future": (("FlexRequest", "FlexOffer"), _expired),
    "request.requested": (("FlexRequest",), _nothing_requested),
    "period.start_before_end": (("AGRPortfolioUpdate", "DSOPortfolioUpdate"), _end_before_start),
    "metering.unit": (("Metering",), _wrong_unit),
}


def order_for(offer: dict[str, Any], option: dict[str, Any], version: str) -> dict[str, Any]:
    """A FlexOrder for all of ``option`` of ``offer``, in the offer's conversation."""
    order: dict[str, Any] = {
        "version": version, "recipient_domain": offer["sender_domain"], "message_id": new_id(),
        "conversation_id": offer["conversation_id"],
        "isp_duration": offer["isp_duration"], "time_zone": offer["time_zone"],
        "period": offer["period"], "congestion_point": offer["congestion_point"],
        "flex_offer_message_id": offer["message_id"], "price": option["price"],
        "currency": offer["currency"], "order_reference": f"SIM-{new_id()[9:18]}",
        "option_reference": option["option_reference"], "activation_factor": Decimal("1.00"),
        "isps": [dict(isp) for isp in option["isps"]]}
    for key in ("contract_id", "d_prognosis_message_id", "baseline_reference"):
        if key in offer:
            order[key] = offer[key]
    if version != "3.0.0":
        order["unsolicited"] = False
    return order



def settlement_for(orders: list[dict[str, Any]], version: str,
                   now: dt.datetime) -> dict[str, Any]:
    """A FlexSettlement of ``orders`` (FlexOrders sent to one AGR and Accepted), each as
    delivered in full: baseline 0, the ordered power measured and delivered, no penalty. The
    settlement period is the months of the orders' periods; the contract settlement the
    schema requires is the example's, moved to the first ordered day."""
    days = sorted({order["period"] for order in orders})
    first, last = days[0].replace(day=1), days[-1]
    end = (last.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    settlement = example("FlexSettlement", version, now=now)
    for contract in settlement.get("contract_settlements", []):
        for period in contract.get("periods", []):
            period["period"] = days[0]
    settlement.update(
        version=version, recipient_domain=orders[0]["recipient_domain"], message_id=new_id(),
        conversation_id=new_id(), time_stamp=now, period_start=first, period_end=end,
        currency=orders[0]["currency"], flex_order_settlements=[_settled(o) for o in orders])
    return settlement


def _settled(order: dict[str, Any]) -> dict[str, Any]:
    settled: dict[str, Any] = {
        "order_reference": order["order_reference"], "period": order["period"],
        "congestion_point": order["congestion_point"], "price": order["price"],
        "net_settlement": order["price"],
        "isps": [{"start": isp["start"], **({"duration": isp["duration"]}
                                            if "duration" in isp else {}),
                  "baseline_power": 0, "ordered_flex_power": isp["power"],
                  "actual_power": isp["power"], "delivered_flex_power": isp["power"]}
                 for isp in order["isps"]]}
    for key in ("contract_id", "d_prognosis_message_id", "baseline_reference"):
        if key in order:
            settled[key] = order[key]
    return settled


def schema_problem(message_type: str, version: str, xml: bytes) -> str | None:
    """Why ``xml`` breaks the strict schema of ``version`` (None when valid)."""
    try:
        root = parse_xml(xml)
    except Exception as exc:  # noqa: BLE001 - what it arrived as was checked already
        return excerpt(exc, 160)
    xsd = schema(version)
    if xsd.validate(root):
        return None
    error = xsd.error_log.last_error
    return excerpt(f"{message_type}: line {error.line}: {error.message}", 200)


def _shape(link: Link, arrival: Arrival, request_type: str, sent: dict[str, Any],
           version: str) -> list[str]:
    """What is wrong with an answer, in words (empty: nothing)."""
    problems: list[str] = []
    key = spec(version).reference_key(request_type)
    if key is not None and arrival.payload.get(key) != sent["message_id"]:
        problems.append(f"{key} is {arrival.payload.get(key)!r}, not {sent['message_id']!r}")
    invalid = schema_problem(arrival.message_type, version, arrival.payload_xml)
    if invalid is not None:
        problems.append(f"not valid against the {version} schema: {invalid}")
    return problems


def _summary(arrival: Arrival) -> str:
    result = arrival.payload.get("result")
    reason = arrival.payload.get("rejection_reason")
    text = arrival.message_type + (f" {result}" if result else "")
    return text + (f": {excerpt(reason, 100)}" if reason else "")


async def _exchange(link: Link, message_type: str, payload: dict[str, Any],
                    version: str) -> tuple[Outcome | None, Arrival | None, dict[str, Any]]:
    """Send one message and wait for its answer: (a failed outcome or None, the answer)."""
    answer_type = spec(version).response_type(message_type) or ""
    data, sent = link.seal(message_type, payload)
    reply = await link.post(data)
    expected = f"HTTP 200, then a {answer_type} in the conversation"
    if reply.status != 200:
        return (Outcome(FAIL, expected, f"HTTP {reply.status}", excerpt(reply.text, 160)),
                None, sent)
    arrival = await link.answer(sent["conversation_id"], answer_type)
    if arrival is None:
        others = [a.message_type for a in link.arrived(sent["conversation_id"])]
        return (Outcome(FAIL, expected, "HTTP 200, no answer",
                        f"none within {link.settings.answer_timeout:g} s"
                        + (f"; got {', '.join(others)}" if others else "")), None, sent)
    return None, arrival, sent


async def _prepared(link: Link, message_type: str, version: str) -> tuple[dict[str, Any], str]:
    """The payload of a valid ``message_type``, and a note on how it was built. A FlexOrder
    buys an offer: the runner first sends a FlexRequest and orders the cheapest option of
    the first FlexOffer that answers it (the example order when none comes in time)."""
    payload = link.payload(message_type, version)
    if message_type != "FlexOrder":
        return payload, ""
    request = link.payload("FlexRequest", version)
    data, sent = link.seal("FlexRequest", request)
    reply = await link.post(data)
    offer = None
    if reply.status == 200:
        offer = await link.answer(sent["conversation_id"], "FlexOffer",
                                  link.settings.offer_timeout)
    if offer is None:
        return payload, (f"no FlexOffer came within {link.settings.offer_timeout:g} s for our "
                         "FlexRequest: the example order was sent")
    option = min(offer.payload.get("offer_options", []), key=lambda o: o["price"])
    order = order_for(offer.payload, option, version)
    order.update(sender_domain=link.us.domain, time_stamp=payload["time_stamp"])
    return order, f"ordered option {option['option_reference']} of their FlexOffer"


def _valid_check(message_type: str, version: str) -> Check:
    answer_type = spec(version).response_type(message_type)
    key = spec(version).reference_key(message_type)

    async def run(link: Link) -> Outcome:
        payload, note = await _prepared(link, message_type, version)
        failed, arrival, sent = await _exchange(link, message_type, payload, version)
        if failed is not None or arrival is None:
            return failed or Outcome(FAIL, "an answer", "none")
        problems = _shape(link, arrival, message_type, sent, version)
        expected = f"a {answer_type} naming it, schema-valid ({version})"
        return Outcome(FAIL if problems else PASS, expected, _summary(arrival),
                       "; ".join(problems + ([note] if note else [])))

    names = f", naming it by {key}" if key else ""
    prior = " after a FlexRequest, to order their offer" if message_type == "FlexOrder" else ""
    return Check(f"message.{message_type}@{version}", page(message_type),
                 f"a valid {message_type} is answered by a {answer_type}{names}, in its "
                 f"conversation, valid against the {version} schema", run,
                 f"one valid {message_type} ({version}){prior}",
                 cost=2 if prior else 1)


def _rule_check(rule_id: str, message_type: str, version: str, mutate: Mutate) -> Check:
    answer_type = spec(version).response_type(message_type)

    async def run(link: Link) -> Outcome:
        payload = link.payload(message_type, version)
        mutate(payload)
        failed, arrival, sent = await _exchange(link, message_type, payload, version)
        if failed is not None or arrival is None:
            return failed or Outcome(FAIL, "an answer", "none")
        expected = f"{answer_type} Rejected, with a reason"
        rejected = (arrival.payload.get("result") == "Rejected"
                    and bool(str(arrival.payload.get("rejection_reason") or "").strip()))
        problems = _shape(link, arrival, message_type, sent, version)
        return Outcome(PASS if rejected and not problems else FAIL, expected, _summary(arrival),
                       "; ".join(problems))

    return Check(f"rule.{rule_id}.{message_type}@{version}",
                 f"{page(message_type)} (rule {rule_id})",
                 f"a {message_type} that breaks {rule_id} is answered Rejected with a reason",
                 run, f"one {message_type} that breaks {rule_id} ({version})")


def checks(us: str, them: str, versions: Sequence[str]) -> list[Check]:
    """The message checks for our role ``us`` against ``them``: per version, every request
    type we send them; the rule checks once, in the first version."""
    found: list[Check] = []
    for index, version in enumerate(versions):
        served = spec(version)
        requests = [t for t in served.sent_by(us, them)
                    if served.request_type(t) is None and served.response_type(t)]
        for message_type in requests:
            found.append(_valid_check(message_type, served.version))
        if index:
            continue
        for rule_id, (types, mutate) in BREAKERS.items():
            for message_type in requests:
                if message_type in types:
                    found.append(_rule_check(rule_id, message_type, served.version, mutate))
    pair = frozenset({(us, them)})
    return [Check(c.id, c.section, c.explanation, c.run, c.sends, c.level, pair, c.cost)
            for c in found]
