"""The argument checks every store shares.

A store checks everything before it writes anything, so that bad input raises TypeError or
ValueError naming the argument, and the stored data stays as it was.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Iterable
from typing import Any

from .base import STATES, OutboxItem

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
