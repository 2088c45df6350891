"""The outbox's rows in :class:`pyuftp.store.sqlite.SQLiteStore`: their columns, an item
from a row, and marking items delivered (in the transaction the store opened on ``conn``)."""
from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import Any

from .records import OutboxItem

ITEM_COLUMNS = ("id, message_id, message_type, sender_domain, recipient_domain, recipient_role, "
                "body, created_at, expires_at, attempts, next_attempt_at, state, last_error, "
                "last_status")


def row_item(row: tuple[Any, ...]) -> OutboxItem:
    (id_, message_id, message_type, sender_domain, recipient_domain, recipient_role, body,
     created_at, expires_at, attempts, next_attempt_at, state, last_error, last_status) = row
    return OutboxItem(message_id, message_type, sender_domain, recipient_domain, recipient_role,
                      bytes(body), created_at, expires_at, id_, attempts, next_attempt_at, state,
                      last_error, last_status)


def deliver(conn: sqlite3.Connection, ids: Collection[int], now: float) -> None:
    """Mark these items delivered (as mark_delivered does; unknown ids are ignored)."""
    conn.executemany("UPDATE outbox SET state = 'delivered', body = x'', claimed_until = 0, "
                     "updated_at = ? WHERE id = ?", [(now, i) for i in sorted(ids)])
