"""The archive part of the store's contract over SQL, for the SQLite and PostgreSQL stores.

Both check the arguments alike (:mod:`pyuftp.store.checks`) and run one function of their
own SQL module (:mod:`~pyuftp.store.sqlite_archive`, :mod:`~pyuftp.store.postgresql_archive`:
``archive``, ``set_outcome``, ``find``, ``query``, ``highest_revision``, ``forget``) in one
transaction; only the SQL and the way to a connection differ.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any, ClassVar

from . import checks
from .base import ArchivedMessage


class SQLArchive:
    """A mixin giving a store the archive methods; the store gives ``_sql`` (its SQL
    module) and ``_transaction`` (a connection for one action, in a transaction when
    ``write``)."""

    _sql: ClassVar[ModuleType]

    def _transaction(self, action: str, write: bool = True) -> AbstractContextManager[Any]:
        raise NotImplementedError  # the store's

    def archive(self, message: ArchivedMessage) -> bool:
        checked = checks.stamped(message)
        with self._transaction("archive") as conn:
            return bool(self._sql.archive(conn, checked))

    def set_outcome(self, direction: str, counterparty: str, message_id: str, outcome: str,
                    reasons: str | None = None) -> None:
        key = checks.archive_key(direction, counterparty, message_id)
        result, why = checks.outcome(outcome, reasons)
        with self._transaction("set_outcome") as conn:
            self._sql.set_outcome(conn, key, result, why)

    def find(self, counterparty: str, message_id: str,
             direction: str | None = None) -> ArchivedMessage | None:
        counterparty, message_id, directions = checks.find_args(counterparty, message_id,
                                                                direction)
        with self._transaction("find", write=False) as conn:
            found: ArchivedMessage | None = self._sql.find(conn, counterparty, message_id,
                                                           directions)
            return found

    def query(self, *, conversation_id: str | None = None, message_type: str | None = None,
              counterparty: str | None = None, direction: str | None = None,
              references: str | None = None, period_from: str | None = None,
              period_to: str | None = None, since: float | None = None,
              until: float | None = None, limit: int | None = None,
              newest_first: bool = False) -> list[ArchivedMessage]:
        criteria = checks.query(conversation_id, message_type, counterparty, direction,
                                references, period_from, period_to, since, until, limit,
                                newest_first)
        with self._transaction("query", write=False) as conn:
            return list(self._sql.query(conn, criteria))

    def highest_revision(self, direction: str, counterparty: str, message_type: str,
                         period: str, congestion_point: str | None, *,
                         excluding: str | None = None) -> int | None:
        args = checks.revision_args(direction, counterparty, message_type, period,
                                    congestion_point, excluding)
        with self._transaction("highest_revision", write=False) as conn:
            highest: int | None = self._sql.highest_revision(conn, *args)
            return highest

    def forget_archived(self, before: float) -> int:
        before = checks.when(before, "before")
        with self._transaction("forget_archived") as conn:
            return int(self._sql.forget(conn, before))
