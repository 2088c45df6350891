"""The store in one SQLite file, for one process at a time."""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, ClassVar

from ..exceptions import StoreError
from . import checks, sqlite_archive
from .base import ArchivedMessage, OutboxItem, Store
from .sqlite_file import SYNCHRONOUS_MODES, describe, open_file
from .sqlite_checkpoint import Checkpointer
from .sqlite_group import GroupCommit, groupable, undo
from .sqlite_lock import FileLock
from .sql_outbox import ITEM_COLUMNS, SQLOutbox, row_item
from .sql_archive import SQLArchive

logger = logging.getLogger(__name__)

_READY = "state = 'pending' AND max(next_attempt_at, claimed_until)"  # as indexed
_MARK_HANDLED = ("UPDATE received SET handled_at = COALESCE(handled_at, ?), data = NULL "
                 "WHERE sender_domain = ? AND message_id = ?")


def _deliver(conn: sqlite3.Connection, ids: Collection[int], now: float) -> None:
    """Mark these items delivered (as mark_delivered does; unknown ids are ignored)."""
    conn.executemany("UPDATE outbox SET state = 'delivered', body = x'', claimed_until = 0, "
                     "updated_at = ? WHERE id = ?", [(now, i) for i in sorted(ids)])


class SQLiteStore(SQLArchive, SQLOutbox, Store):
    """A :class:`Store` in one SQLite file, used by one process at a time (a restarted
    process opens the same file again).

    Durability: the file is in WAL journal mode. With ``synchronous="NORMAL"`` (the default)
    a committed transaction survives the process being killed at any moment (SIGKILL, OOM, a
    crash): the commit is in the operating system's hands once it returns. A power loss or
    kernel crash may lose the last transactions committed before it (never corrupting the
    file). ``synchronous="FULL"`` syncs the WAL to disk on every commit, so commits survive
    a power loss too, at the cost of one disk flush per commit (milliseconds each).

    Threads: by default (``threaded=False``) :meth:`call` runs each method inline, on the
    event loop (20-150 µs a call; a worker thread cost 54-166 µs of CPU per call). The WAL
    checkpoints, which sync the disk, run on a thread of their own
    (:mod:`~pyuftp.store.sqlite_checkpoint`): with NORMAL no commit waits for the disk. With
    FULL every commit does, and the loop with it: pass ``threaded=True`` then (or on a slow
    disk) to run the calls on one worker thread. Either way the store may be used from
    several threads: one connection, one operation at a time.

    One process per file, enforced: the store holds an exclusive lock on the file itself (on
    its inode, whatever name, hard link or symlink it is opened by; ``<path>.lock`` only
    notes the holder's pid) while open, and opening a file that another process (or another
    store object in this one) has open raises :class:`StoreError`. For several instances,
    use a PostgreSQL store.
    So claims found in the file when it is opened were made by a process now gone: they are
    dropped, and their items are due at once.
    A store file deleted, renamed away or replaced while open is noticed (a ``stat`` of the
    path after every :meth:`record_received`, after other writes once a second at most):
    from then on every call raises :class:`StoreError` saying so (logged once, at ERROR),
    so a message committed into the lost file is never acknowledged.
    ``busy_timeout`` (seconds) is how long an operation waits while something else (e.g. an
    ``sqlite3`` shell) holds SQLite's write lock; with ``threaded=False`` the loop waits too.

    New files (and their -wal and -shm files) are made readable by their owner only (0600):
    they hold every signed message body. An existing file's mode is left alone.

    ``check_integrity`` runs ``PRAGMA quick_check`` when an existing file is opened, so a
    corrupt store is refused at once rather than failing call after call; it reads the whole
    file (0.2 s for 200 MB in the page cache; a cold disk's read speed otherwise).

    Every SQLite error becomes a :class:`StoreError` naming the file; the failed
    transaction is rolled back.

    The archive keeps every message until :meth:`forget_archived` deletes it (no cap by
    count; SQL in :mod:`~pyuftp.store.sqlite_archive`), its XML once (see docs/store.rst).
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL",
                 busy_timeout: float = 10.0, threaded: bool = False,
                 check_integrity: bool = True) -> None:
        sync = str(synchronous).upper()
        if sync not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, "
                             f"not {synchronous!r}")
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, (int, float)) \
                or not 0 <= busy_timeout < 1e6:
            raise ValueError(f"busy_timeout must be seconds (0 or more), not {busy_timeout!r}")
        for name, flag in (("threaded", threaded), ("check_integrity", check_integrity)):
            checks.flag(flag, name)
        path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise TypeError(f"path must be a non-empty str or os.PathLike[str], not {path!r}")
        self.path, self.synchronous, self.blocking = path, sync, threaded
        self._lock = threading.RLock()  # a group commit's entries take it again
        self._grouped, self._group = False, GroupCommit(self)
        self._conn: sqlite3.Connection | None = None
        self._file_lock = None if path == ":memory:" else FileLock(path)
        self._checkpointer: Checkpointer | None = None
        try:
            self._conn = open_file(path, sync, busy_timeout, check_integrity,
                                   sole_user=self._file_lock is not None)
            if self._file_lock is not None:
                self._file_lock.check(always=True)  # SQLite opened the file we locked
                self._checkpointer = Checkpointer(path, self._conn, busy_timeout=busy_timeout)
        except BaseException as exc:
            self._release()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot use {path}: {describe(exc)}") from exc
            if isinstance(exc, OSError):
                raise StoreError(f"cannot use {path}: {exc.strerror or exc}") from exc
            raise

    _sql: ClassVar[ModuleType] = sqlite_archive  # the archive's SQL (SQLArchive runs it)
    _P: ClassVar[str] = "?"  # a parameter in SQLite's SQL (SQLOutbox)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    async def call(self, method: Callable[..., Any], *args: Any) -> Any:
        """As :meth:`Store.call`; on the loop, the message path's writes share commits
        (:mod:`~pyuftp.store.sqlite_group`)."""
        if self.blocking or self._closed or not groupable(self, method):
            return await super().call(method, *args)
        return await self._group.add(method, args)

    # --- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def _session(self, action: str, write: bool = True) -> Iterator[sqlite3.Connection]:
        """The connection, alone; with ``write``, in one transaction: committed when the
        block ends, rolled back if it raises. SQLite errors become StoreError."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError(f"{self!r} is closed")
            if self._file_lock is not None and self._file_lock.gone is not None:
                raise StoreError(self._file_lock.gone)
            grouped = self._grouped  # in a group's transaction: a savepoint (sqlite_group)
            try:
                if write:
                    conn.execute("SAVEPOINT one" if grouped else "BEGIN IMMEDIATE")
                yield conn
                if write:
                    conn.execute("RELEASE one" if grouped else "COMMIT")
                    if self._file_lock is not None and not grouped:
                        # after the commit: what a 200 follows was written where a restart
                        # finds it (record_received looks every time, the rest once a second)
                        self._file_lock.check(always=action == "record_received")
            except BaseException as exc:
                if conn.in_transaction and (write or not grouped):  # (SQLite rolls back
                    try:  # by itself after some errors)
                        undo(conn, grouped)
                    except sqlite3.Error:
                        logger.exception("%s: cannot roll back", self.path)
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"{self.path}: {action} failed: {describe(exc)}") from exc
                raise

    _transaction = _session  # SQLArchive's way to a connection
    def _release(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            lock, self._file_lock = self._file_lock, None
            checkpointer, self._checkpointer = self._checkpointer, None
            try:
                if checkpointer is not None:
                    checkpointer.close()  # first: the last connection checkpoints it all
                if conn is not None:
                    conn.close()
            except sqlite3.Error as exc:
                logger.warning("%s: closing: %s", self.path, describe(exc))
            finally:
                if lock is not None:
                    lock.close()  # drops the flock

    # --- outbox ------------------------------------------------------------------------------

    def add_outgoing(self, item: OutboxItem, *, answers: tuple[str, str] | None = None,
                     archive: ArchivedMessage | None = None,
                     outcome: tuple[str, str | None] | None = None,
                     claim: float | None = None, delivered: Collection[int] = ()) -> int:
        checked, answered = checks.check_item(item), checks.answers(answers)
        kept = checks.with_envelope(checks.to_archive(archive), checked.body)
        result = None if outcome is None or answered is None else checks.outcome(*outcome)
        lease, done = checks.claim(claim), checks.item_ids(delivered, "delivered")
        now = time.time()
        with self._session("add_outgoing") as conn:
            if answered is not None and conn.execute(
                    _MARK_HANDLED, (now, *answered)).rowcount == 0:
                raise KeyError(f"no received message {answered[1]} from {answered[0]}")
            cursor = conn.execute(
                "INSERT INTO outbox (message_id, message_type, sender_domain, recipient_domain, "
                "recipient_role, body, created_at, expires_at, attempts, next_attempt_at, state, "
                "last_error, last_status, updated_at, claimed_until) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (checked.message_id, checked.message_type, checked.sender_domain,
                 checked.recipient_domain, checked.recipient_role, checked.body,
                 checked.created_at, checked.expires_at, checked.attempts,
                 checked.next_attempt_at, checked.state, checked.last_error,
                 checked.last_status, now, 0.0 if lease is None else now + lease))
            item_id = cursor.lastrowid
            if done:
                _deliver(conn, done, now)
            if kept is not None:
                sqlite_archive.archive(conn, kept)
            if result is not None and answered is not None:
                try:
                    sqlite_archive.set_outcome(conn, ("in", *answered), *result)
                except KeyError:
                    pass  # the answered message is not archived: nothing to note
        assert item_id is not None
        item.id = item_id
        return item_id

    def claim_due(self, now: float, limit: int = 100, lease: float = 300.0,
                  exclude_peers: Collection[tuple[str, str]] = ()) -> list[OutboxItem]:
        now, limit, lease, peers = checks.claim_args(now, limit, lease, exclude_peers)
        sql = f"SELECT id FROM outbox WHERE {_READY} <= ?"
        args: list[Any] = [now]
        for domain, role in sorted(peers):  # a few peers at most: one condition each
            sql += " AND NOT (recipient_domain = ? AND recipient_role = ?)"
            args += [domain, role]
        sql = (f"SELECT {ITEM_COLUMNS} FROM outbox WHERE id IN ({sql} ORDER BY id LIMIT ?) "
               "ORDER BY id")
        with self._session("claim_due") as conn:
            rows = conn.execute(sql, (*args, limit)).fetchall()
            conn.executemany("UPDATE outbox SET claimed_until = ? WHERE id = ?",
                             [(now + lease, row[0]) for row in rows])
        return [row_item(row) for row in rows]

    def release(self, item_ids: Iterable[int]) -> None:
        ids = checks.item_ids(item_ids, "item_ids")
        with self._session("release") as conn:
            conn.executemany("UPDATE outbox SET claimed_until = 0 WHERE id = ? AND "
                             "state = 'pending'", [(i,) for i in sorted(ids)])

    def next_due_time(self) -> float | None:
        with self._session("next_due_time", write=False) as conn:
            row = conn.execute("SELECT MIN(max(next_attempt_at, claimed_until)) FROM outbox "
                               "WHERE state = 'pending'").fetchone()
        return None if row[0] is None else float(row[0])

    def _change(self, action: str, item_id: int, sql: str, args: tuple[Any, ...]) -> None:
        with self._session(action) as conn:
            state = conn.execute("SELECT state FROM outbox WHERE id = ?", (item_id,)).fetchone()
            if state is None:
                raise KeyError(f"no outbox item {item_id}")
            if state[0] != "pending":
                # e.g. a second process delivered it meanwhile: its verdict stands
                logger.warning("outbox item %d is %s already; left as it is", item_id, state[0])
                return
            conn.execute(f"UPDATE outbox SET {sql}, claimed_until = 0, updated_at = ? "
                         "WHERE id = ?", (*args, time.time(), item_id))

    def mark_delivered(self, item_id: int) -> None:
        item_id = checks.item_id(item_id)
        with self._session("mark_delivered") as conn:
            cursor = conn.execute(
                "UPDATE outbox SET state = 'delivered', body = x'', claimed_until = 0, "
                "updated_at = ? WHERE id = ?", (time.time(), item_id))
            if cursor.rowcount == 0:
                raise KeyError(f"no outbox item {item_id}")

    def mark_delivered_many(self, item_ids: Iterable[int]) -> None:
        ids = checks.item_ids(item_ids, "item_ids")
        if ids:
            with self._session("mark_delivered_many") as conn:
                _deliver(conn, ids, time.time())

    def retry_outgoing(self, item_id: int, next_attempt_at: float, expires_at: float) -> None:
        item_id = checks.item_id(item_id)
        due, expires = checks.when(next_attempt_at, "next_attempt_at"), checks.when(
            expires_at, "expires_at")
        with self._session("retry_outgoing") as conn:
            state = conn.execute("SELECT state FROM outbox WHERE id = ?", (item_id,)).fetchone()
            if state is None:
                raise KeyError(f"no outbox item {item_id}")
            if state[0] == "delivered":
                raise ValueError(f"outbox item {item_id} was delivered: nothing to retry")
            conn.execute("UPDATE outbox SET state = 'pending', next_attempt_at = ?, "
                         "expires_at = ?, claimed_until = 0, updated_at = ? WHERE id = ?",
                         (due, expires, time.time(), item_id))

    # --- received ----------------------------------------------------------------------------

    def record_received(self, sender_domain: str, message_id: str, digest: str, data: bytes,
                        received_at: float, *, archive: ArchivedMessage | None = None) -> str:
        args = checks.received_args(sender_domain, message_id, digest, data, received_at)
        kept = checks.with_envelope(checks.to_archive(archive), args[3])
        with self._session("record_received") as conn:
            # insert-or-keep and the digest comparison in one transaction: two requests with
            # one id (retries crossing) cannot both be "new". Archived, the data is kept
            # there only (as the entry's envelope): the journal's data is NULL, which
            # unhandled() reads as "in the archive"
            cursor = conn.execute(
                "INSERT INTO received (sender_domain, message_id, digest, data, received_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (sender_domain, message_id) DO NOTHING",
                args if kept is None else (*args[:3], None, args[4]))
            if cursor.rowcount == 1:
                if kept is not None and not sqlite_archive.archive(conn, kept):
                    # archived before (a forgotten record sent again): its data stays here
                    conn.execute("UPDATE received SET data = ? WHERE sender_domain = ? AND "
                                 "message_id = ?", (args[3], *args[:2]))
                return "new"
            stored = conn.execute(
                "SELECT digest FROM received WHERE sender_domain = ? AND message_id = ?",
                args[:2]).fetchone()[0]
        return "duplicate" if stored == args[2] else "conflict"

    def mark_handled(self, sender_domain: str, message_id: str) -> None:
        key = checks.key(sender_domain, message_id)
        with self._session("mark_handled") as conn:
            if conn.execute(_MARK_HANDLED, (time.time(), *key)).rowcount == 0:
                raise KeyError(f"no received message {key[1]} from {key[0]}")

    def unhandled(self) -> list[tuple[str, str, bytes]]:
        with self._session("unhandled", write=False) as conn:
            rows = conn.execute(
                f"SELECT sender_domain, message_id, data, ({sqlite_archive.ENVELOPE}) FROM "
                "received WHERE handled_at IS NULL ORDER BY received_at, rowid").fetchall()
        return [(sender, message_id, sqlite_archive.unhandled_data(data, blob))
                for sender, message_id, data, blob in rows]

    def forget_received(self, before: float) -> int:
        before = checks.when(before, "before")
        with self._session("forget_received") as conn:
            cursor = conn.execute(
                "DELETE FROM received WHERE handled_at IS NOT NULL AND received_at < ?", (before,))
        return cursor.rowcount
