"""The responses the exchange core writes: a request's answer filled in from the request, and
the parts a rejection needs (sans-I/O, like the rest of the core)."""
from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from ..exceptions import MessageError, quote
from ..message.catalog import Node, spec
from ..signing.envelope import Received

# The fields a response never copies from its request: they are its own.
_OWN_FIELDS = frozenset({"message_id", "time_stamp", "sender_domain", "recipient_domain",
                         "result", "rejection_reason"})
# Response message ids are derived from the request (see Exchange.response).
_RESPONSE_IDS = uuid.UUID("6f7c1a52-3c55-4d0e-9a43-2f1b0d7e5a10")
#: The longest RejectionReason sent (the schemas set no limit; peers' databases do).
MAX_REASON = 1000


def rejection(problems: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Response fields that reject a message for all these problems at once."""
    return {"result": "Rejected", "rejection_reason": _reason("; ".join(problems))}


def fill(domain: str, version: str, received: Received, answer: str, node: Node,
         payload: dict[str, Any]) -> dict[str, Any]:
    """The response ``payload`` (``answer``, of ``node``) to ``received``, filled in from
    the request by ``domain`` (whose own version is ``version``): see
    :meth:`~pyuftp.core.exchange.Exchange.response`."""
    request = received.payload
    answer_spec = spec(request.get("version", version))
    if answer == "TestMessageResponse":  # it only echoes: no result
        payload.pop("result", None)
        payload.pop("rejection_reason", None)
    else:
        key = answer_spec.reference_key(received.message_type)
        if key is not None:
            payload.setdefault(key, request["message_id"])
        reason = payload.get("rejection_reason")
        if payload.get("result") == "Rejected" and not reason:
            reason = payload["rejection_reason"] = f"rejected by {domain}"
        if reason is not None:
            payload["rejection_reason"] = _reason(reason if isinstance(reason, str)
                                                  else quote(reason, MAX_REASON))
    payload.setdefault("conversation_id", request["conversation_id"])
    payload.setdefault("version", request.get("version", version))
    for key in node.keys():
        if key not in payload and key in request and key not in _OWN_FIELDS:
            payload[key] = request[key]
    payload.setdefault("sender_domain", domain)
    payload.setdefault("recipient_domain", received.sender_domain)
    payload.setdefault("message_id", str(uuid.uuid5(
        _RESPONSE_IDS, f"{received.sender_domain}\n{request['message_id']}\n{received.digest}")))
    if payload.get("result") == "Rejected":
        request_node = answer_spec.received.get(received.message_type)
        payload.update(rejection_parts(node, payload, request_node, request,
                                       str(payload.get("rejection_reason") or "")))
    return payload


# The value of an enumeration that says "no" (a rejected request's part says so, too).
_REFUSING = {"result": "Rejected", "settlement_disposition": "Disputed"}


def rejection_parts(node: Node, value: Mapping[str, Any], request_node: Node | None,
                    request: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """The required children ``value`` (a rejection of ``node``'s type) lacks, built from
    the field table: one item per item of the request's list whose node shares an
    attribute with the child's (a FlexOrderSettlementStatus per FlexOrderSettlement, its
    OrderReference copied), else as few as the table requires; each item "no" in its
    enumerations and its ``..._reason`` text the rejection's. A part that cannot be made
    without inventing data (a domain, an address) stays missing: the check says so."""
    found: dict[str, Any] = {}
    for child in node.children:
        if child.min == 0 or value.get(child.key):
            continue
        keys = {a.key for a in child.node.attrs}
        sources: list[Any] = [{}] * child.min
        for twin in request_node.children if request_node is not None else ():
            items = request.get(twin.key)
            if keys & {a.key for a in twin.node.attrs} and isinstance(items, list) and items:
                sources = items if twin.many else items[:1]
                break
        made = []
        for source in sources:
            item = {a.key: source[a.key] for a in child.node.attrs
                    if isinstance(source, Mapping) and source.get(a.key) is not None}
            for a in child.node.attrs:
                if a.key not in item and (a.required or a.key.endswith("_reason")):
                    item[a.key] = _REFUSING.get(a.type, reason if a.type == "string" else None)
            item = {k: v for k, v in item.items() if v is not None}
            made.append({**item, **rejection_parts(child.node, item, None, {}, reason)})
        found[child.key] = made if child.many else made[0]
    return found


def problem(exc: BaseException) -> str:
    """What went wrong, for a RejectionReason: a check's own words, else the type only."""
    if isinstance(exc, MessageError):
        return str(exc)
    return type(exc).__name__


# What XML 1.0 cannot carry (controls but tab and line breaks, lone surrogates, U+FFFE/F).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _reason(text: str) -> str:
    """A RejectionReason: at most MAX_REASON characters, what XML cannot carry escaped."""
    text = _NOT_XML.sub(lambda m: repr(m.group())[1:-1], text[: MAX_REASON * 2])
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."
