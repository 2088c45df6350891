"""The argument checks every store shares.

A store checks everything before it writes anything, so that bad input raises TypeError or
ValueError naming the argument, and the stored data stays as it was.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .base import DIRECTIONS, OUTCOMES, STATES, ArchivedMessage, OutboxItem

MAX_ERROR_TEXT = 2000  # an error text is for people; a hostile peer must not fill the disk


def _kind(value: Any) -> str:
    return type(value).__name__


def text(value: Any, name: str) -> str:
    """A non-empty str without NUL (NUL separates keys in the memory store)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {_kind(value)}")
    if not value or "\x00" in value:
        raise ValueError(f"{name} must be a non-empty string without NUL characters")
    return value


def when(value: Any, name: str) -> float:
    """A finite unix time (or a number of seconds) as a float; a bool is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number (unix time), not {_kind(value)}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, not {value}")
    return float(value)


def count(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {_kind(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return value


def data(value: Any, name: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {_kind(value)}")
    return bytes(value)


def state(value: Any, done: bool = False) -> str:
    """One of :data:`STATES`; with ``done``, not "pending" (pending items are never forgotten)."""
    if value not in STATES:
        raise ValueError(f"unknown state {value!r}; one of {', '.join(STATES)}")
    if done and value == "pending":
        raise ValueError("pending items are never forgotten: they are still to be delivered")
    return str(value)


def status(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not 100 <= value <= 999):
        raise ValueError(f"status must be None or an HTTP status (100-999), not {value!r}")
    return value


def error(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"error must be a str, not {_kind(value)}")
    return value[:MAX_ERROR_TEXT]


def item_id(value: Any, name: str = "item_id") -> int:
    return count(value, name, 1)


def item_ids(values: Iterable[Any], name: str) -> set[int]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a collection of item ids, not {_kind(values)}")
    return {count(value, f"{name} entry") for value in values}


def flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {_kind(value)}")
    return value


def claim(value: Any) -> float | None:
    """``add_outgoing``'s ``claim``: None or a positive number of seconds."""
    if value is None:
        return None
    lease = when(value, "claim")
    if lease <= 0:
        raise ValueError(f"claim must be a positive number of seconds, not {lease}")
    return lease


def key(sender_domain: Any, message_id: Any) -> tuple[str, str]:
    """A received message's key, ``(sender_domain, message_id)``."""
    return text(sender_domain, "sender_domain"), text(message_id, "message_id")


def answers(value: Any) -> tuple[str, str] | None:
    if value is None:
        return None
    if not (isinstance(value, tuple) and len(value) == 2):
        raise TypeError(f"answers must be None or a (sender_domain, message_id) tuple, "
                        f"not {_kind(value)}")
    return key(*value)


def peers(values: Iterable[Any]) -> set[tuple[str, str]]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"exclude_peers must be a collection of (domain, role) tuples, "
                        f"not {_kind(values)}")
    out = set()
    for peer in values:
        if not (isinstance(peer, tuple) and len(peer) == 2):
            raise TypeError(f"exclude_peers entries must be (domain, role) tuples, not {peer!r}")
        out.add((text(peer[0], "exclude_peers domain"), text(peer[1], "exclude_peers role")))
    return out


def claim_args(now: Any, limit: Any, lease: Any, exclude_peers: Iterable[Any]
               ) -> tuple[float, int, float, set[tuple[str, str]]]:
    lease = when(lease, "lease")
    if lease <= 0:
        raise ValueError(f"lease must be a positive number of seconds, not {lease}")
    return when(now, "now"), count(limit, "limit", 1), lease, peers(exclude_peers)


def retry_args(attempts: Any, next_attempt_at: Any, err: Any, code: Any
               ) -> tuple[int, float, str, int | None]:
    return (count(attempts, "attempts"), when(next_attempt_at, "next_attempt_at"), error(err),
            status(code))


def received_args(sender_domain: Any, message_id: Any, digest: Any, body: Any,
                  received_at: Any) -> tuple[str, str, str, bytes, float]:
    return (*key(sender_domain, message_id), text(digest, "digest"), data(body, "data"),
            when(received_at, "received_at"))


def check_item(item: OutboxItem) -> OutboxItem:
    """A checked copy of a new outbox item (TypeError/ValueError saying what is wrong)."""
    if not isinstance(item, OutboxItem):
        raise TypeError(f"expected an OutboxItem, not {_kind(item)}")
    if item.id is not None:
        raise ValueError(f"item {item.id} is stored already; submit a new OutboxItem")

    # The type, domains and role repeat from item to item: interned, a store in memory keeps
    # one copy of each rather than one per item (a quarter of a delivered item's bytes).
    def shared(name: str) -> str:
        return sys.intern(str(text(getattr(item, name), name)))

    checked = dataclasses.replace(
        item, message_id=text(item.message_id, "message_id"),
        message_type=shared("message_type"), sender_domain=shared("sender_domain"),
        recipient_domain=shared("recipient_domain"), recipient_role=shared("recipient_role"),
        body=data(item.body, "body"), created_at=when(item.created_at, "created_at"),
        expires_at=when(item.expires_at, "expires_at"), attempts=count(item.attempts, "attempts"),
        next_attempt_at=when(item.next_attempt_at, "next_attempt_at"), state=state(item.state),
        last_error=None if item.last_error is None else error(item.last_error),
        last_status=status(item.last_status))
    if not checked.body:
        raise ValueError("body is empty: there is nothing to deliver")
    return checked


# --- the archive -------------------------------------------------------------------------------

def _shared(value: Any, name: str) -> str:
    """A :func:`text` that repeats from message to message (a type, a domain, a role, a key):
    interned, so that a store in memory keeps one copy of it."""
    return sys.intern(str(text(value, name)))


def direction(value: Any, name: str = "direction") -> str:
    if value not in DIRECTIONS:
        raise ValueError(f"{name} must be 'in' or 'out', not {value!r}")
    return sys.intern(str(value))


def optional(value: Any, name: str) -> str | None:
    return None if value is None else text(value, name)


def iso_date(value: Any, name: str) -> str | None:
    """None, or an ISO date (``datetime.date.fromisoformat``) normalised to YYYY-MM-DD, so
    that dates compare as strings."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be None or an ISO date str, not {_kind(value)}")
    try:  # interned: a day's messages share one
        return sys.intern(datetime.date.fromisoformat(value).isoformat())
    except ValueError:
        raise ValueError(f"{name} must be an ISO date such as '2026-11-24', not "
                         f"{value[:40]!r}") from None


def outcome(value: Any, reasons: Any) -> tuple[str, str | None]:
    if value not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {value!r}")
    if reasons is not None and not isinstance(reasons, str):
        raise TypeError(f"reasons must be None or a str, not {_kind(reasons)}")
    return str(value), None if reasons is None else reasons[:MAX_ERROR_TEXT]


def references(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"references must be a dict of key -> message id, not {_kind(value)}")
    return {_shared(k, "references key"): text(v, f"references[{k!r}]")
            for k, v in value.items()}


def archive_key(direction_: Any, counterparty: Any, message_id: Any) -> tuple[str, str, str]:
    """An archived message's key, ``(direction, counterparty, message_id)``."""
    return (direction(direction_), text(counterparty, "counterparty"),
            text(message_id, "message_id"))


def find_args(counterparty: Any, message_id: Any,
              direction_: Any) -> tuple[str, str, tuple[str, ...]]:
    """The checked arguments of :meth:`Archive.find`: the directions to look in, in order."""
    directions = DIRECTIONS if direction_ is None else (direction(direction_),)
    return text(counterparty, "counterparty"), text(message_id, "message_id"), directions


def stamped(message: ArchivedMessage) -> ArchivedMessage:
    """A checked copy of a message to archive now (``archived_at`` set)."""
    checked = check_archived(message)
    checked.archived_at = time.time()
    return checked


def to_archive(message: ArchivedMessage | None) -> ArchivedMessage | None:
    """:func:`stamped` for an optional message (None stays None)."""
    return None if message is None else stamped(message)


def check_archived(message: ArchivedMessage) -> ArchivedMessage:
    """A checked copy of a message to archive (``archived_at`` still to be set)."""
    if not isinstance(message, ArchivedMessage):
        raise TypeError(f"expected an ArchivedMessage, not {_kind(message)}")
    payload = data(message.payload_xml, "payload_xml")
    if not payload:
        raise ValueError("payload_xml is empty: there is nothing to archive")
    result, reasons = (None, None) if message.outcome is None and message.reasons is None \
        else outcome(message.outcome, message.reasons)
    return ArchivedMessage(
        direction=direction(message.direction), message_type=_shared(message.message_type,
                                                                     "message_type"),
        message_id=text(message.message_id, "message_id"),
        conversation_id=text(message.conversation_id, "conversation_id"),
        sender_domain=_shared(message.sender_domain, "sender_domain"),
        sender_role=_shared(message.sender_role, "sender_role"),
        recipient_domain=_shared(message.recipient_domain, "recipient_domain"),
        recipient_role=_shared(message.recipient_role, "recipient_role"),
        time_stamp=when(message.time_stamp, "time_stamp"), payload_xml=payload,
        references=references(message.references), period=iso_date(message.period, "period"),
        congestion_point=optional(message.congestion_point, "congestion_point"),
        revision=revision(message.revision), outcome=result, reasons=reasons,
        envelope=None if message.envelope is None else data(message.envelope, "envelope"))


def with_envelope(message: ArchivedMessage | None, envelope: bytes) -> ArchivedMessage | None:
    """A checked message to archive, its envelope ``envelope`` unless it has one."""
    if message is not None and message.envelope is None:
        message.envelope = envelope
    return message


def revision(value: Any) -> int | None:
    """None or an int that SQLite can keep (64 bits; the schema allows 32)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"revision must be None or an int, not {_kind(value)}")
    if not -2**63 <= value < 2**63:
        raise ValueError(f"revision {value} is out of the 64-bit range")
    return value


def revision_args(direction_: Any, counterparty: Any, message_type: Any, period: Any,
                  congestion_point: Any, excluding: Any
                  ) -> tuple[str, str, str, str, str | None, str | None]:
    """The checked arguments of :meth:`Archive.highest_revision`."""
    day = iso_date(period, "period")
    if day is None:
        raise TypeError("period must be an ISO date str, not None")
    return (direction(direction_), text(counterparty, "counterparty"),
            text(message_type, "message_type"), day,
            optional(congestion_point, "congestion_point"), optional(excluding, "excluding"))


@dataclasses.dataclass(frozen=True, slots=True)
class Query:
    """The checked criteria of :meth:`Archive.query` (None: any)."""

    conversation_id: str | None
    message_type: str | None
    counterparty: str | None
    direction: str | None
    references: str | None
    period_from: str | None
    period_to: str | None
    since: float | None
    until: float | None
    limit: int | None
    newest_first: bool = False

    def sql(self, columns: str, mark: str) -> tuple[str, list[Any]]:
        """The SELECT of these criteria over the SQL stores' ``archive`` table (and its
        ``archive_refs`` index), with ``mark`` as the driver's placeholder (``?``, ``%s``):
        the statement and its arguments."""
        where: list[str] = []
        args: list[Any] = []
        for condition, value in (("conversation_id = ", self.conversation_id),
                                 ("message_type = ", self.message_type),
                                 ("counterparty = ", self.counterparty),
                                 ("direction = ", self.direction),
                                 ("period >= ", self.period_from),
                                 ("period <= ", self.period_to),
                                 ("time_stamp >= ", self.since),
                                 ("time_stamp <= ", self.until),
                                 ("id IN (SELECT message FROM archive_refs WHERE ref_id = ",
                                  self.references)):
            if value is not None:
                where.append(condition + mark + (")" if condition.startswith("id IN") else ""))
                args.append(value)
        sql = f"SELECT {columns} FROM archive"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += (" ORDER BY time_stamp DESC, id DESC" if self.newest_first
                else " ORDER BY time_stamp, id")
        if self.limit is not None:
            sql += f" LIMIT {mark}"
            args.append(self.limit)
        return sql, args

    def matches(self, message: ArchivedMessage) -> bool:
        """Whether ``message`` meets every criterion (``references`` aside: the memory store
        looks those up in its index)."""
        period = message.period
        return ((self.conversation_id is None or message.conversation_id == self.conversation_id)
                and (self.message_type is None or message.message_type == self.message_type)
                and (self.counterparty is None or message.counterparty == self.counterparty)
                and (self.direction is None or message.direction == self.direction)
                and (self.period_from is None or (period is not None
                                                  and period >= self.period_from))
                and (self.period_to is None or (period is not None and period <= self.period_to))
                and (self.since is None or message.time_stamp >= self.since)
                and (self.until is None or message.time_stamp <= self.until))


def query(conversation_id: Any, message_type: Any, counterparty: Any, direction_: Any,
          references_: Any, period_from: Any, period_to: Any, since: Any, until: Any,
          limit: Any, newest_first: Any = False) -> Query:
    checked = Query(
        optional(conversation_id, "conversation_id"), optional(message_type, "message_type"),
        optional(counterparty, "counterparty"),
        None if direction_ is None else direction(direction_),
        optional(references_, "references"), iso_date(period_from, "period_from"),
        iso_date(period_to, "period_to"), None if since is None else when(since, "since"),
        None if until is None else when(until, "until"),
        None if limit is None else count(limit, "limit", 1), newest_first=bool(newest_first))
    if checked.period_from and checked.period_to and checked.period_from > checked.period_to:
        raise ValueError(f"period_from {checked.period_from} is after period_to "
                         f"{checked.period_to}")
    if checked.since is not None and checked.until is not None and checked.since > checked.until:
        raise ValueError(f"since {checked.since} is after until {checked.until}")
    return checked
