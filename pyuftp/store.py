"""What pyuftp keeps durably: the outbox of messages to deliver, and the ids of messages received.

UFTP messages are orders for money and grid capacity, so a message accepted by ``send_*`` is
first committed here and only then delivered (by :class:`pyuftp.outbox.Outbox`); a message
received is recorded here before the sender gets its HTTP 200, so a repeat is recognised and
a message answered 200 but not yet handled when the process died is handled after a restart.

    store = SQLiteStore("agr.sqlite")          # one file per party; survives a SIGKILL
    store = MemoryStore()                      # tests, or when losing messages on exit is fine

:class:`Store` is narrow on purpose, so that another backend (PostgreSQL for several service
instances) can implement it without knowing pyuftp's internals.
"""
from __future__ import annotations

import abc
import asyncio
import dataclasses
import hashlib
import json
import logging
import math
import os
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Collection, Iterator, TypeVar

from .exceptions import StoreError

if TYPE_CHECKING:  # imported where SQLiteStore needs it: a memory-only service is ~1 MiB smaller
    import sqlite3

logger = logging.getLogger("pyuftp")
T = TypeVar("T")

STATES = ("pending", "delivered", "failed")
RECEIVED_RESULTS = ("new", "duplicate", "conflict")
MAX_ERROR_TEXT = 2000  # an error text is for people; a hostile peer must not fill the disk with it
SCHEMA_VERSION = 1
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


@dataclass(slots=True)  # a store in memory keeps one per message: no __dict__ each
class OutboxItem:
    """One message to deliver, as the outbox keeps it."""

    message_id: str
    message_type: str
    sender_domain: str
    recipient_domain: str
    recipient_role: str
    body: bytes            # the SignedMessage envelope, exactly as it will be POSTed
    created_at: float      # unix time
    expires_at: float      # give up (final failure) after this
    id: int | None = None  # assigned by the store
    attempts: int = 0
    next_attempt_at: float = 0.0
    state: str = "pending"   # "pending" | "delivered" | "failed"
    last_error: str | None = None
    last_status: int | None = None


class Store(abc.ABC):
    """What pyuftp keeps durably: the outbox, and the ids of messages received. Narrow on
    purpose so a PostgreSQL store (several service instances) can implement it too.

    Every method that changes state does so in one committed transaction: when it returns,
    the change survives what the implementation promises to survive (see its docstring).
    Methods are synchronous; asyncio code calls them through :meth:`call`, which runs them on
    a worker thread when :attr:`blocking` is true, so implementations must be safe to call
    from another thread than the one that made them (and from several, for direct use).
    """

    #: True when calls may wait for a disk or a network (then keep them off the event loop).
    blocking: ClassVar[bool] = True
    _worker: ThreadPoolExecutor | None = None

    async def call(self, method: Callable[..., T], *args: Any) -> T:
        """Run ``method`` (one of this store's) from asyncio code without blocking the loop.

        A blocking store's calls all go to one worker thread of its own: the store does one
        thing at a time anyway, and a single thread keeps the memory that its calls churn
        through in one malloc arena, where a pool of threads grew the process by tens of MiB
        under load.
        """
        if not self.blocking:
            return method(*args)
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyuftp-store")
        return await asyncio.get_running_loop().run_in_executor(self._worker, method, *args)

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=False)
            self._worker = None

    # --- outbox ------------------------------------------------------------------------------

    @abc.abstractmethod
    def add_outgoing(self, item: OutboxItem) -> int:
        """Store a new message to deliver (one committed transaction); return its id, which
        is also set on ``item.id``."""

    @abc.abstractmethod
    def due_outgoing(self, now: float, limit: int = 100, exclude_ids: Collection[int] = (),
                     exclude_peers: Collection[tuple[str, str]] = ()) -> list[OutboxItem]:
        """Pending items with ``next_attempt_at <= now``, oldest (first stored) first, at
        most ``limit``, leaving out ``exclude_ids`` (those being delivered already) and the
        items for ``exclude_peers``, ``(recipient_domain, recipient_role)`` pairs that have
        enough waiting in memory already."""

    @abc.abstractmethod
    def next_due_time(self) -> float | None:
        """The earliest ``next_attempt_at`` of the pending items; None when there are none."""

    @abc.abstractmethod
    def mark_delivered(self, item_id: int) -> None:
        """The recipient accepted the item (KeyError for an unknown id). Its ``body`` is
        dropped: the bulk of an item, no longer needed; the rest is kept for inspection."""

    @abc.abstractmethod
    def mark_retry(self, item_id: int, attempts: int, next_attempt_at: float, error: str,
                   status: int | None) -> None:
        """An attempt failed temporarily: try again at ``next_attempt_at``. Only a pending
        item changes; a delivered or failed one stays as it is (another process decided)."""

    @abc.abstractmethod
    def mark_failed(self, item_id: int, error: str, status: int | None) -> None:
        """Give up on a pending item: it stays in the store as ``failed`` for inspection."""

    @abc.abstractmethod
    def outgoing(self, state: str | None = None) -> list[OutboxItem]:
        """All items (or those in ``state``), oldest first, for inspection."""

    @abc.abstractmethod
    def forget_outgoing(self, before: float, state: str = "delivered") -> int:
        """Delete items in ``state`` (delivered or failed, never pending) last changed before
        ``before`` (unix time); return how many. Without this the outbox only grows."""

    # --- received messages (duplicate defence) -----------------------------------------------

    @abc.abstractmethod
    def record_received(self, sender_domain: str, message_id: str, digest: str, data: bytes,
                        received_at: float) -> str:
        """Atomically: ``"new"`` (recorded now, not yet handled), ``"duplicate"`` (this id
        with this digest was seen before) or ``"conflict"`` (this id with another digest;
        the stored record is left alone)."""

    @abc.abstractmethod
    def mark_handled(self, sender_domain: str, message_id: str) -> None:
        """The message was handled: it is no longer returned by :meth:`unhandled`, and its
        data is dropped (the digest stays for the duplicate check). KeyError if unknown."""

    @abc.abstractmethod
    def unhandled(self) -> list[tuple[str, str, bytes]]:
        """``(sender_domain, message_id, data)`` of messages recorded but not marked handled,
        oldest first: to handle after a restart."""

    @abc.abstractmethod
    def forget_received(self, before: float) -> int:
        """Delete handled records received before ``before`` (unix time); return how many.
        Unhandled ones are kept whatever their age."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store; using it afterwards raises :class:`StoreError`."""


# --- input checks ---------------------------------------------------------------------------
# Everything is checked before anything is written, so bad input raises and the stored data
# stays as it was.

def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value or "\x00" in value:
        raise ValueError(f"{name} must be a non-empty string without NUL characters")
    return value


def _time(value: Any, name: str) -> float:
    # bool is an int subclass; True as a time stamp is a bug, not 1970-01-01T00:00:01
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number (unix time), not {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, not {value}")
    return value


def _count(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return value


def _bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return bytes(value)


def _state(value: Any, name: str = "state") -> str:
    if value not in STATES:
        raise ValueError(f"unknown {name} {value!r}; one of {', '.join(STATES)}")
    return value


def _done_state(value: Any) -> str:
    if _state(value) == "pending":
        raise ValueError("pending items are never forgotten: they are still to be delivered")
    return value


def _status(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 999:
        raise ValueError(f"status must be None or an HTTP status (100-999), not {value!r}")
    return value


def _error(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"error must be a str, not {type(value).__name__}")
    return value[:MAX_ERROR_TEXT]


def _item_id(value: Any) -> int:
    return _count(value, "item_id", 1)


def _exclude(ids: Collection[int]) -> set[int]:
    return {_count(i, "exclude_ids entry", 0) for i in ids}


def _due_args(now: Any, limit: Any, exclude_ids: Collection[int],
              exclude_peers: Collection[tuple[str, str]]
              ) -> tuple[float, int, set[int], set[tuple[str, str]]]:
    return _time(now, "now"), _count(limit, "limit", 1), _exclude(exclude_ids), _peers(exclude_peers)


def _peers(peers: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
    out = set()
    for peer in peers:
        if not (isinstance(peer, tuple) and len(peer) == 2):
            raise TypeError(f"exclude_peers entries must be (domain, role) tuples, not {peer!r}")
        out.add((_text(peer[0], "exclude_peers domain"), _text(peer[1], "exclude_peers role")))
    return out


def check_item(item: OutboxItem) -> OutboxItem:
    """A checked copy of a new outbox item (TypeError/ValueError saying what is wrong)."""
    if not isinstance(item, OutboxItem):
        raise TypeError(f"expected an OutboxItem, not {type(item).__name__}")
    if item.id is not None:
        raise ValueError(f"item {item.id} is stored already; submit a new OutboxItem")
    # The type, domains and role repeat from item to item: interned, a store in memory keeps
    # one copy of each rather than one per item (a quarter of a delivered item's bytes).
    checked = dataclasses.replace(
        item,
        message_id=_text(item.message_id, "message_id"),
        message_type=sys.intern(str(_text(item.message_type, "message_type"))),
        sender_domain=sys.intern(str(_text(item.sender_domain, "sender_domain"))),
        recipient_domain=sys.intern(str(_text(item.recipient_domain, "recipient_domain"))),
        recipient_role=sys.intern(str(_text(item.recipient_role, "recipient_role"))),
        body=_bytes(item.body, "body"),
        created_at=_time(item.created_at, "created_at"),
        expires_at=_time(item.expires_at, "expires_at"),
        attempts=_count(item.attempts, "attempts"),
        next_attempt_at=_time(item.next_attempt_at, "next_attempt_at"),
        state=_state(item.state),
        last_error=None if item.last_error is None else _error(item.last_error),
        last_status=_status(item.last_status),
    )
    if not checked.body:
        raise ValueError("body is empty: there is nothing to deliver")
    return checked


def _received_args(sender_domain: Any, message_id: Any, digest: Any, data: Any,
                   received_at: Any) -> tuple[str, str, str, bytes, float]:
    return (_text(sender_domain, "sender_domain"), _text(message_id, "message_id"),
            _text(digest, "digest"), _bytes(data, "data"), _time(received_at, "received_at"))


# --- SQLite ---------------------------------------------------------------------------------

_SCHEMA = (
    # AUTOINCREMENT: an id is never reused after pruning, so an id in a log names one message.
    """CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        message_type TEXT NOT NULL,
        sender_domain TEXT NOT NULL,
        recipient_domain TEXT NOT NULL,
        recipient_role TEXT NOT NULL,
        body BLOB NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        last_error TEXT,
        last_status INTEGER,
        updated_at REAL NOT NULL
    )""",
    # due_outgoing and next_due_time: state = 'pending' AND next_attempt_at <= now
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at)",
    # forget_outgoing
    "CREATE INDEX IF NOT EXISTS outbox_age ON outbox (state, updated_at)",
    """CREATE TABLE IF NOT EXISTS received (
        sender_domain TEXT NOT NULL,
        message_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        data BLOB,
        received_at REAL NOT NULL,
        handled_at REAL,
        PRIMARY KEY (sender_domain, message_id)
    )""",
    # unhandled() after a restart; partial, so handled records cost it nothing
    "CREATE INDEX IF NOT EXISTS received_unhandled ON received (received_at) WHERE handled_at IS NULL",
    # forget_received
    "CREATE INDEX IF NOT EXISTS received_age ON received (received_at)",
)

_ITEM_COLUMNS = ("id, message_id, message_type, sender_domain, recipient_domain, recipient_role, "
                 "body, created_at, expires_at, attempts, next_attempt_at, state, last_error, "
                 "last_status")


def _row_item(row: tuple[Any, ...]) -> OutboxItem:
    (id_, message_id, message_type, sender_domain, recipient_domain, recipient_role, body,
     created_at, expires_at, attempts, next_attempt_at, state, last_error, last_status) = row
    return OutboxItem(message_id, message_type, sender_domain, recipient_domain, recipient_role,
                      bytes(body), created_at, expires_at, id_, attempts, next_attempt_at, state,
                      last_error, last_status)


class SQLiteStore(Store):
    """A :class:`Store` in one SQLite file, for one process at a time (a restarted process
    opens the same file again).

    Durability: the file is in WAL journal mode. With ``synchronous="NORMAL"`` (the default)
    a committed transaction survives the process being killed at any moment (SIGKILL, OOM,
    a crash): the commit is in the operating system's hands once it returns. A power loss or
    kernel crash may lose the last transactions committed before it (never corrupting the
    file). ``synchronous="FULL"`` syncs the WAL to disk on every commit, so commits survive a
    power loss too, at the cost of one disk flush per commit (milliseconds each).

    Every state change is one transaction. The connection is shared by threads (the outbox
    calls the store through ``asyncio.to_thread``) and each operation holds a lock.
    ``busy_timeout`` (seconds) is how long an operation waits while another process holds
    the write lock, e.g. a new instance starting while the old one is still exiting.

    Two processes may use one file at the same time without corrupting it, but both would
    deliver the same pending items (the recipient drops the repeat as a duplicate); for
    several service instances at once, use a store with row locks (PostgreSQL).
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL",
                 busy_timeout: float = 10.0) -> None:
        sync = str(synchronous).upper()
        if sync not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, "
                             f"not {synchronous!r}")
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, (int, float)) \
                or not 0 <= busy_timeout < 1e6:
            raise ValueError(f"busy_timeout must be seconds (0 or more), not {busy_timeout!r}")
        self.path = os.fspath(path)
        self.synchronous = sync
        self._lock = threading.Lock()
        import sqlite3

        # isolation_level=None: no implicit transactions; each write opens its own with
        # BEGIN IMMEDIATE, so it takes the write lock at once and cannot deadlock on upgrade.
        conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal" and self.path != ":memory:":
                logger.warning("%s: journal mode is %s, not WAL", self.path, mode)
            conn.execute(f"PRAGMA synchronous = {sync}")
            conn.execute("PRAGMA foreign_keys = ON")
            self._conn: sqlite3.Connection | None = conn
            self._create_schema()
            self._json_ok = self._has_json()
        except sqlite3.DatabaseError as exc:
            conn.close()
            self._conn = None
            raise StoreError(f"cannot use {self.path} as a pyuftp store: {exc}") from exc
        except BaseException:
            conn.close()
            self._conn = None
            raise

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, synchronous={self.synchronous!r})"

    # --- plumbing ----------------------------------------------------------------------------

    def _create_schema(self) -> None:
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} was written by a newer pyuftp (schema {version}, "
                                 f"this one knows {SCHEMA_VERSION})")
            for statement in _SCHEMA:
                conn.execute(statement)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _has_json(self) -> bool:
        import sqlite3

        # json_each passes any number of excluded ids as one parameter (no variable limit)
        try:
            with self._read() as conn:
                conn.execute("SELECT value FROM json_each('[1]')").fetchall()
            return True
        except sqlite3.OperationalError:
            return False

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"the store {self.path} is closed")
            yield self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError(f"the store {self.path} is closed")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # --- outbox ------------------------------------------------------------------------------

    def add_outgoing(self, item: OutboxItem) -> int:
        checked = check_item(item)
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO outbox (message_id, message_type, sender_domain, recipient_domain, "
                "recipient_role, body, created_at, expires_at, attempts, next_attempt_at, state, "
                "last_error, last_status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (checked.message_id, checked.message_type, checked.sender_domain,
                 checked.recipient_domain, checked.recipient_role, checked.body,
                 checked.created_at, checked.expires_at, checked.attempts,
                 checked.next_attempt_at, checked.state, checked.last_error,
                 checked.last_status, time.time()),
            )
            item_id = cursor.lastrowid
        assert item_id is not None
        item.id = item_id
        return item_id

    def due_outgoing(self, now: float, limit: int = 100, exclude_ids: Collection[int] = (),
                     exclude_peers: Collection[tuple[str, str]] = ()) -> list[OutboxItem]:
        now, limit, excluded, peers = _due_args(now, limit, exclude_ids, exclude_peers)
        sql = f"SELECT {_ITEM_COLUMNS} FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?"
        args: list[Any] = [now]
        for domain, role in sorted(peers):  # a few peers at most: one condition each
            sql += " AND NOT (recipient_domain = ? AND recipient_role = ?)"
            args += [domain, role]
        if excluded and self._json_ok:
            sql += " AND id NOT IN (SELECT value FROM json_each(?))"
            args.append(json.dumps(sorted(excluded)))
            fetch = limit
        else:
            fetch = limit + len(excluded)  # filtered below
        sql += " ORDER BY id LIMIT ?"
        args.append(fetch)
        with self._read() as conn:
            rows = conn.execute(sql, args).fetchall()
        items = [_row_item(row) for row in rows if row[0] not in excluded]
        return items[:limit]

    def next_due_time(self) -> float | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'").fetchone()
        return row[0]

    def _change(self, conn: sqlite3.Connection, item_id: int, sql: str,
                args: tuple[Any, ...]) -> None:
        state = conn.execute("SELECT state FROM outbox WHERE id = ?", (item_id,)).fetchone()
        if state is None:
            raise KeyError(f"no outbox item {item_id}")
        if state[0] != "pending":
            # e.g. a second process delivered it meanwhile: its verdict stands
            logger.warning("outbox item %d is %s already; left as it is", item_id, state[0])
            return
        conn.execute(sql, args + (time.time(), item_id))

    def mark_delivered(self, item_id: int) -> None:
        item_id = _item_id(item_id)
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE outbox SET state = 'delivered', body = x'', updated_at = ? WHERE id = ?",
                (time.time(), item_id))
            if cursor.rowcount == 0:
                raise KeyError(f"no outbox item {item_id}")

    def mark_retry(self, item_id: int, attempts: int, next_attempt_at: float, error: str,
                   status: int | None) -> None:
        args = (_count(attempts, "attempts"), _time(next_attempt_at, "next_attempt_at"),
                _error(error), _status(status))
        item_id = _item_id(item_id)
        with self._write() as conn:
            self._change(conn, item_id,
                         "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?, "
                         "last_status = ?, updated_at = ? WHERE id = ?", args)

    def mark_failed(self, item_id: int, error: str, status: int | None) -> None:
        args = (_error(error), _status(status))
        item_id = _item_id(item_id)
        with self._write() as conn:
            self._change(conn, item_id,
                         "UPDATE outbox SET state = 'failed', last_error = ?, last_status = ?, "
                         "updated_at = ? WHERE id = ?", args)

    def outgoing(self, state: str | None = None) -> list[OutboxItem]:
        sql = f"SELECT {_ITEM_COLUMNS} FROM outbox"
        args: tuple[Any, ...] = ()
        if state is not None:
            sql += " WHERE state = ?"
            args = (_state(state),)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        return [_row_item(row) for row in rows]

    def forget_outgoing(self, before: float, state: str = "delivered") -> int:
        before, state = _time(before, "before"), _done_state(state)
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM outbox WHERE state = ? AND updated_at < ?",
                                  (state, before))
        return cursor.rowcount

    # --- received ----------------------------------------------------------------------------

    def record_received(self, sender_domain: str, message_id: str, digest: str, data: bytes,
                        received_at: float) -> str:
        args = _received_args(sender_domain, message_id, digest, data, received_at)
        with self._write() as conn:
            # insert-or-keep and the digest comparison in one transaction: two requests with
            # one id (retries crossing) cannot both be "new"
            cursor = conn.execute(
                "INSERT INTO received (sender_domain, message_id, digest, data, received_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (sender_domain, message_id) DO NOTHING", args)
            if cursor.rowcount == 1:
                return "new"
            stored = conn.execute(
                "SELECT digest FROM received WHERE sender_domain = ? AND message_id = ?",
                args[:2]).fetchone()[0]
        return "duplicate" if stored == args[2] else "conflict"

    def mark_handled(self, sender_domain: str, message_id: str) -> None:
        key = (_text(sender_domain, "sender_domain"), _text(message_id, "message_id"))
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE received SET handled_at = COALESCE(handled_at, ?), data = NULL "
                "WHERE sender_domain = ? AND message_id = ?", (time.time(),) + key)
            if cursor.rowcount == 0:
                raise KeyError(f"no received message {key[1]} from {key[0]}")

    def unhandled(self) -> list[tuple[str, str, bytes]]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT sender_domain, message_id, data FROM received WHERE handled_at IS NULL "
                "ORDER BY received_at, rowid").fetchall()
        return [(sender, message_id, bytes(data or b"")) for sender, message_id, data in rows]

    def forget_received(self, before: float) -> int:
        before = _time(before, "before")
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM received WHERE handled_at IS NOT NULL AND received_at < ?", (before,))
        return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self._stop_worker()


# --- in memory ------------------------------------------------------------------------------

# A received message's record, kept for the whole duplicate window (a day by default): a
# 16-byte fingerprint of its digest and when it came, packed into one bytes object. With the
# message id as its key that is about 190 B a message; a record object with its strings and
# floats took about 590 B, which under a steady flood adds up over a day.
_RECORD = struct.Struct("<16sd")


def _fingerprint(digest: str) -> bytes:
    return hashlib.blake2b(digest.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class MemoryStore(Store):
    """A :class:`Store` in memory, with the same rules as :class:`SQLiteStore`: for tests,
    and for services that accept losing undelivered messages and the duplicate record when
    the process ends. Calls are quick, so asyncio code may call it directly."""

    blocking: ClassVar[bool] = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, OutboxItem] = {}
        self._pending_items: dict[int, OutboxItem] = {}  # the hot path scans only these
        self._updated: dict[int, float] = {}
        # sender domain -> message id -> _RECORD; the bodies of the unhandled ones aside.
        self._received: dict[str, dict[str, bytes]] = {}
        self._unhandled: dict[tuple[str, str], bytes] = {}
        self._next_id = 1
        self._closed = False

    @contextmanager
    def _use(self) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise StoreError("the memory store is closed")
            yield

    def add_outgoing(self, item: OutboxItem) -> int:
        checked = check_item(item)
        with self._use():
            checked.id = item_id = self._next_id
            self._next_id += 1
            self._items[item_id] = checked  # a copy: the caller's object may change later
            if checked.state == "pending":
                self._pending_items[item_id] = checked
            self._updated[item_id] = time.time()
        item.id = item_id
        return item_id

    def due_outgoing(self, now: float, limit: int = 100, exclude_ids: Collection[int] = (),
                     exclude_peers: Collection[tuple[str, str]] = ()) -> list[OutboxItem]:
        now, limit, excluded, peers = _due_args(now, limit, exclude_ids, exclude_peers)
        due = []
        with self._use():
            for item_id, item in self._pending_items.items():  # ids ascend: oldest first
                if item.next_attempt_at <= now and item_id not in excluded and (
                        not peers or (item.recipient_domain, item.recipient_role) not in peers):
                    due.append(dataclasses.replace(item))
                    if len(due) == limit:
                        break
        return due

    def next_due_time(self) -> float | None:
        with self._use():
            return min((item.next_attempt_at for item in self._pending_items.values()),
                       default=None)

    def _pending(self, item_id: int) -> OutboxItem | None:
        item = self._items.get(item_id)
        if item is None:
            raise KeyError(f"no outbox item {item_id}")
        if item.state != "pending":
            logger.warning("outbox item %d is %s already; left as it is", item_id, item.state)
            return None
        return item

    def mark_delivered(self, item_id: int) -> None:
        item_id = _item_id(item_id)
        with self._use():
            item = self._items.get(item_id)
            if item is None:
                raise KeyError(f"no outbox item {item_id}")
            item.state = "delivered"
            item.body = b""  # the bulk of an item; a delivered one is kept only for inspection
            self._pending_items.pop(item_id, None)
            self._updated[item_id] = time.time()

    def mark_retry(self, item_id: int, attempts: int, next_attempt_at: float, error: str,
                   status: int | None) -> None:
        attempts = _count(attempts, "attempts")
        next_attempt_at = _time(next_attempt_at, "next_attempt_at")
        error, status = _error(error), _status(status)
        item_id = _item_id(item_id)
        with self._use():
            item = self._pending(item_id)
            if item is not None:
                item.attempts, item.next_attempt_at = attempts, next_attempt_at
                item.last_error, item.last_status = error, status
                self._updated[item_id] = time.time()

    def mark_failed(self, item_id: int, error: str, status: int | None) -> None:
        error, status = _error(error), _status(status)
        item_id = _item_id(item_id)
        with self._use():
            item = self._pending(item_id)
            if item is not None:
                item.state, item.last_error, item.last_status = "failed", error, status
                self._pending_items.pop(item_id, None)
                self._updated[item_id] = time.time()

    def outgoing(self, state: str | None = None) -> list[OutboxItem]:
        if state is not None:
            _state(state)
        with self._use():
            return [dataclasses.replace(item) for _, item in sorted(self._items.items())
                    if state is None or item.state == state]

    def forget_outgoing(self, before: float, state: str = "delivered") -> int:
        before, state = _time(before, "before"), _done_state(state)
        with self._use():
            old = [i for i, item in self._items.items()
                   if item.state == state and self._updated[i] < before]
            for item_id in old:
                del self._items[item_id], self._updated[item_id]
        return len(old)

    def record_received(self, sender_domain: str, message_id: str, digest: str, data: bytes,
                        received_at: float) -> str:
        sender_domain, message_id, digest, data, received_at = _received_args(
            sender_domain, message_id, digest, data, received_at)
        fingerprint = _fingerprint(digest)
        with self._use():
            by_id = self._received.get(sender_domain)
            if by_id is None:
                by_id = self._received[sender_domain] = {}
            seen = by_id.get(message_id)
            if seen is None:
                by_id[message_id] = _RECORD.pack(fingerprint, received_at)
                self._unhandled[(sender_domain, message_id)] = data
                return "new"
        return "duplicate" if seen[:16] == fingerprint else "conflict"

    def mark_handled(self, sender_domain: str, message_id: str) -> None:
        key = (_text(sender_domain, "sender_domain"), _text(message_id, "message_id"))
        with self._use():
            if key[1] not in self._received.get(key[0], ()):
                raise KeyError(f"no received message {key[1]} from {key[0]}")
            self._unhandled.pop(key, None)

    def unhandled(self) -> list[tuple[str, str, bytes]]:
        with self._use():
            rows = [(_RECORD.unpack(self._received[domain][message_id])[1], domain, message_id,
                     data) for (domain, message_id), data in self._unhandled.items()]
        rows.sort(key=lambda row: row[0])  # stable: insertion order among equal times
        return [(domain, message_id, data) for _, domain, message_id, data in rows]

    def forget_received(self, before: float) -> int:
        before = _time(before, "before")
        forgotten = 0
        with self._use():
            for domain, by_id in list(self._received.items()):
                old = [message_id for message_id, record in by_id.items()
                       if _RECORD.unpack(record)[1] < before
                       and (domain, message_id) not in self._unhandled]
                for message_id in old:
                    del by_id[message_id]
                forgotten += len(old)
                if not by_id:
                    del self._received[domain]
        return forgotten

    def close(self) -> None:
        with self._lock:
            self._closed = True


def open_store(store: "Store | str | os.PathLike[str] | None") -> Store:
    """A store from what a caller passed: a :class:`Store` as it is, a path as a
    :class:`SQLiteStore`, None as a fresh :class:`MemoryStore`."""
    if store is None:
        return MemoryStore()
    if isinstance(store, Store):
        return store
    if isinstance(store, (str, os.PathLike)):
        return SQLiteStore(store)
    raise TypeError(f"store must be a Store, a path or None, not {type(store).__name__}")
