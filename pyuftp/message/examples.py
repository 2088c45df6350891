"""Example payloads: one realistic, complete dict for each of the 26 UFTP message types.

    from pyuftp.message.examples import example, flex_offer_96
    payload = example("FlexOffer")                  # a fresh dict, safe to change
    xml = pyuftp.create_message("FlexOffer", payload)

The examples serve the reference page ``docs/representations.rst`` (generated from them by
``tools/make_docs.py``), the tests (every example must validate and survive a round trip
through XML unchanged, in every supported version), the ``pyuftp example`` command, and the
benchmarks (:func:`flex_offer_96` is a full day of ISPs in one offer).

Everything is fixed, so the output is the same on every run: message and conversation ids are
constant UUIDs, time stamps are constant. Together the examples tell one story between
``dso.example.com``, ``agr.example.com`` and ``cro.example.com``:

* October 2026: the DSO registers congestion point ``cp-utrecht-0042`` and its connections with
  the CRO, the AGR registers the connections of its prosumers.
* 23 November 2026: both look up the portfolio for the next day, the AGR tests the line, the
  DSO updates its bilateral reservation, then expects congestion in the evening peak of
  24 November (ISPs 69-72, 17:00-18:00 in Europe/Amsterdam) and sends a FlexRequest. The AGR
  offers two mutually exclusive options; the DSO orders 80 % of option A. A revocation of the
  offer, sent by the AGR at the same moment, is rejected because the offer was already
  ordered. The AGR then sends a new D-Prognosis that includes the order.
* 25 November: the AGR sends the meter data of one connection for the 24th.
* December: the DSO settles November; the AGR accepts one order and disputes another.

ISP lists are kept short (``duration`` covers runs of ISPs) so the docs stay readable.
Optional attributes are used wherever the protocol allows them, except where using them would
contradict the protocol text: a FlexOffer or FlexOrder names its baseline either by
``d_prognosis_message_id`` or by ``baseline_reference`` (these examples use D-prognoses; the
settlement shows an order with a ``baseline_reference``), Metering ``currency`` is "no longer
used", and FlexSettlement, although the schema gives it the response attributes, is never
rejected, so it has no ``rejection_reason``.

For version 3.0.0 the fields that 3.0.0 lacks (FlexOffer and FlexOrder ``unsolicited``,
FlexOrder ``service_type``) are left out.
"""
from __future__ import annotations

import copy
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from .catalog import DEFAULT_VERSION, MESSAGES, reference_key, spec
from ..exceptions import UnknownMessageType
from .codec import supported_version
# The story's data; EARLIER_ORDER_REFERENCE, MESSAGE_IDS and ENVELOPES are the tests' too.
from .example_story import (CONTENT, CONVERSATION_IDS, DOMAINS, EARLIER_ORDER_REFERENCE,
                            ENVELOPES, MESSAGE_IDS, UTC)

__all__ = ["example", "flex_offer_96", "DOMAINS", "EARLIER_ORDER_REFERENCE", "ENVELOPES",
           "MESSAGE_IDS"]


def _request_of(response_type: str) -> str | None:
    # The catalog pairs requests and responses (Spec.request_type): the one source.
    request = spec().request_type(response_type)
    return request if request in CONTENT else None


#: The moment the story is told from: the examples' dates are 23 November 2026 and after.
STORY_NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def example(message_type: str, version: str = DEFAULT_VERSION, *,
            now: datetime | None = None) -> dict[str, Any]:
    """A complete, valid payload dict for ``message_type`` in ``version`` (a fresh copy).

    ``pyuftp.parse_message(pyuftp.create_message(message_type, payload, version=version))``
    gives back ``(message_type, payload)``. With ``now``, the story is moved to that moment:
    every date-time moves by ``now - STORY_NOW`` and every date by as many whole days, so the
    example passes the business rules (expirations ahead, periods today or later) when sent
    now (``now=datetime.now(timezone.utc)``).
    """
    payload = _example(message_type, version)
    if now is None:
        return payload
    moved: dict[str, Any] = _moved(payload, now - STORY_NOW)
    return moved


def _moved(value: Any, by: timedelta) -> Any:
    if isinstance(value, datetime):
        return value + by
    if isinstance(value, date):
        return value + timedelta(days=by.days)
    if isinstance(value, dict):
        return {key: _moved(item, by) for key, item in value.items()}
    if isinstance(value, list):
        return [_moved(item, by) for item in value]
    return value


def _example(message_type: str, version: str) -> dict[str, Any]:
    if message_type not in CONTENT:
        raise UnknownMessageType(
            f"no example for {message_type!r}; the message types are " + ", ".join(sorted(CONTENT))
        )
    node = MESSAGES[supported_version(version)][message_type]
    sender, recipient, conversation, stamp = ENVELOPES[message_type]
    payload: dict[str, Any] = {
        "version": version,
        "sender_domain": DOMAINS[sender],
        "recipient_domain": DOMAINS[recipient],
        "time_stamp": datetime(*stamp, tzinfo=UTC),
        "message_id": MESSAGE_IDS[message_type],
        "conversation_id": CONVERSATION_IDS[conversation],
    }
    request = _request_of(message_type)
    key = reference_key(request) if request is not None else None
    if request is not None and key is not None and key in node.keys():
        payload[key] = MESSAGE_IDS[request]
    payload.update(copy.deepcopy(CONTENT[message_type]))
    # Leave out what this version of the message lacks (3.0.0: no `unsolicited` ...); any
    # other key stays, so that a slip in the table above fails loudly in the checker.
    lacking = set(MESSAGES[DEFAULT_VERSION][message_type].keys()) - set(node.keys())
    return {key: value for key, value in payload.items() if key not in lacking}


def flex_offer_96(version: str = DEFAULT_VERSION) -> dict[str, Any]:
    """A FlexOffer with one option covering all 96 ISPs of the day, one ISP element each
    (``power`` is 1000 W + the ISP's index), for benchmarks and tests of long ISP lists."""
    payload = example("FlexOffer", version)
    payload["message_id"] = MESSAGE_IDS["FlexOffer 96"]
    payload["offer_options"] = [{
        "option_reference": "A",
        "price": Decimal("1250.00"),
        "min_activation_factor": Decimal("0.50"),
        "isps": [{"power": 1000 + index, "start": index + 1} for index in range(96)],
    }]
    return payload
