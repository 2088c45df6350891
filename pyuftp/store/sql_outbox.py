"""The outbox part of the store's contract that reads the same over SQLite and PostgreSQL.

What differs between the two (claiming, changing an item's state, the placeholder of a
parameter) stays with each store; :class:`SQLOutbox` holds the statements that are the same
but for that placeholder, and the columns of an item with their way back to an
:class:`~pyuftp.store.OutboxItem`.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, ClassVar

from . import checks
from .records import OutboxItem
from .summary import OutboxSummary, summary_of

ITEM_COLUMNS = ("id, message_id, message_type, sender_domain, recipient_domain, recipient_role, "
                "body, created_at, expires_at, attempts, next_attempt_at, state, last_error, "
                "last_status")


def row_item(row: tuple[Any, ...]) -> OutboxItem:
    """The item of a row of :data:`ITEM_COLUMNS`."""
    (id_, message_id, message_type, sender_domain, recipient_domain, recipient_role, body,
     created_at, expires_at, attempts, next_attempt_at, state, last_error, last_status) = row
    return OutboxItem(message_id, message_type, sender_domain, recipient_domain, recipient_role,
                      bytes(body), created_at, expires_at, id_, attempts, next_attempt_at, state,
                      last_error, last_status)


class SQLOutbox:
    """A mixin giving a store the outbox methods above; the store gives ``_P`` (its
    parameter placeholder), ``_transaction`` (as :class:`~pyuftp.store.sql_archive.SQLArchive`
    has it) and ``_change(action, item_id, assignments, args)`` (a pending item's update)."""

    _P: ClassVar[str]

    def _transaction(self, action: str, write: bool = True) -> AbstractContextManager[Any]:
        raise NotImplementedError  # the store's

    def _change(self, action: str, item_id: int, sql: str, args: tuple[Any, ...]) -> None:
        raise NotImplementedError  # the store's

    def mark_retry(self, item_id: int, attempts: int, next_attempt_at: float, error: str,
                   status: int | None) -> None:
        args = checks.retry_args(attempts, next_attempt_at, error, status)
        p = self._P
        self._change("mark_retry", checks.item_id(item_id), f"attempts = {p}, next_attempt_at = "
                     f"{p}, last_error = {p}, last_status = {p}", args)

    def mark_failed(self, item_id: int, error: str, status: int | None) -> None:
        args = (checks.error(error), checks.status(status))
        self._change("mark_failed", checks.item_id(item_id),
                     f"state = 'failed', last_error = {self._P}, last_status = {self._P}", args)

    def outgoing(self, state: str | None = None) -> list[OutboxItem]:
        sql = f"SELECT {ITEM_COLUMNS} FROM outbox"
        args: tuple[Any, ...] = ()
        if state is not None:
            sql += f" WHERE state = {self._P}"
            args = (checks.state(state),)
        with self._transaction("outgoing", write=False) as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        return [row_item(row) for row in rows]

    def pending_counts(self) -> dict[tuple[str, str], int]:
        """Undelivered (pending) items per ``(recipient_domain, recipient_role)``."""
        with self._transaction("pending_counts", write=False) as conn:
            rows = conn.execute("SELECT recipient_domain, recipient_role, COUNT(*) FROM outbox "
                                "WHERE state = 'pending' GROUP BY 1, 2").fetchall()
        return {(str(domain), str(role)): int(count) for domain, role, count in rows}

    def outbox_summary(self) -> OutboxSummary:
        with self._transaction("outbox_summary", write=False) as conn:
            rows = conn.execute("SELECT state, COUNT(*), MIN(created_at) FROM outbox WHERE "
                                "state IN ('pending', 'failed') GROUP BY state").fetchall()
        return summary_of(rows)

    def forget_outgoing(self, before: float, state: str = "delivered") -> int:
        before, state = checks.when(before, "before"), checks.state(state, done=True)
        with self._transaction("forget_outgoing") as conn:
            return int(conn.execute(f"DELETE FROM outbox WHERE state = {self._P} AND "
                                    f"updated_at < {self._P}", (state, before)).rowcount)
