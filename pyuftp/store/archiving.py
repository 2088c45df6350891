"""Putting messages in the store's archive, and the archive as the rules read it.

Every message a party sends (:class:`~pyuftp.sending.delivery.Courier`) and receives
(:class:`~pyuftp.receiving.inbox.Inbox`) goes into the archive with the ids it names, so
that audits can query it and stateful rules can look up what a message refers to, through
:class:`StoreLookups` (the rules' sync :class:`~pyuftp.rules.Lookups`).
"""
from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any

from ..message.codec import parse_message
from . import ArchivedMessage, Store

#: How long archived messages are kept by default: long enough for monthly settlement.
RETENTION = 62 * 24 * 3600.0
# The fields, besides ``*_message_id``, by which one message names another.
_NAMING_FIELDS = ("order_reference",)
# The messages whose revision the archive indexes (Archive.highest_revision).
_REVISED = ("D-Prognosis", "FlexRequest")


def entry(direction: str, message_type: str, payload: Mapping[str, Any], payload_xml: bytes,
          sender_role: str, recipient_role: str) -> ArchivedMessage:
    """The archive entry of a message (its references: every ``*_message_id`` it names, and
    a FlexOrder's ``order_reference``)."""
    references = {key: str(value) for key, value in payload.items()
                  if key.endswith("_message_id") and key != "message_id" and value is not None}
    if message_type == "FlexOrder":
        references.update({k: str(payload[k]) for k in _NAMING_FIELDS if payload.get(k)})
    period = payload.get("period")
    stamp = payload.get("time_stamp")
    revised = message_type in _REVISED and isinstance(payload.get("revision"), int)
    point = payload.get("congestion_point") if revised else None
    return ArchivedMessage(
        direction=direction, message_type=message_type, message_id=str(payload["message_id"]),
        conversation_id=str(payload["conversation_id"]),
        sender_domain=str(payload["sender_domain"]), sender_role=sender_role,
        recipient_domain=str(payload["recipient_domain"]), recipient_role=recipient_role,
        time_stamp=stamp.timestamp() if isinstance(stamp, dt.datetime) else 0.0,
        payload_xml=payload_xml, references=references,
        period=period.isoformat() if isinstance(period, dt.date) else None,
        congestion_point=point if isinstance(point, str) and point else None,
        revision=payload["revision"] if revised else None)


@functools.lru_cache(maxsize=256)  # the rules read the same FlexRequest for each offer
def _parsed(xml: bytes) -> dict[str, Any]:
    return parse_message(xml)[1]


class StoreLookups:
    """A store's archive as the rules read it (:class:`pyuftp.rules.Lookups`): the store's
    own sync ``find``, ``query`` and ``highest_revision``, and ``payload`` parsing an entry.

    Sync like the store's API: async code runs the rules that use it through
    ``store.call`` (on a worker thread when the store is threaded), never on the loop."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def find(self, counterparty: str, message_id: str,
             direction: str | None = None) -> ArchivedMessage | None:
        return self.store.find(counterparty, message_id, direction)

    def query(self, **criteria: Any) -> list[ArchivedMessage]:
        return self.store.query(**criteria)

    def highest_revision(self, direction: str, counterparty: str, message_type: str,
                         period: str, congestion_point: str | None, *,
                         excluding: str | None = None) -> int | None:
        return self.store.highest_revision(direction, counterparty, message_type, period,
                                           congestion_point, excluding=excluding)

    def payload(self, message: ArchivedMessage) -> dict[str, Any]:
        """The payload dict of an archived message (parsed once per distinct XML)."""
        return _parsed(message.payload_xml)


def note_outcome(store: Store, direction: str, counterparty: str, message_id: str,
                 outcome: str, reasons: str | None = None) -> None:
    """Note the outcome (``Accepted``/``Rejected`` and why) of an archived message; nothing
    for one not archived (sent before the archive existed, or forgotten). Sync: run it
    through ``store.call``."""
    try:
        store.set_outcome(direction, counterparty, message_id, outcome, reasons)
    except KeyError:
        pass
