"""The store in a PostgreSQL database, shared by any number of processes on any number of
machines (psycopg 3 and its connection pool; ``pip install 'usef-uftp[postgresql]'``)."""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import ModuleType
from typing import Any, ClassVar

import psycopg
import psycopg_pool

from ..exceptions import StoreError
from . import checks, postgresql_archive as pa, postgresql_schema as schema_
from .base import ArchivedMessage, OutboxItem, Store
from .sql_archive import SQLArchive
from .sql_outbox import ITEM_COLUMNS, SQLOutbox, row_item

logger = logging.getLogger(__name__)

_READY = "state = 'pending' AND GREATEST(next_attempt_at, claimed_until)"  # as indexed
_RECEIVED_KEY = "sender_domain = %(sender)s AND message_id = %(mid)s"


class PostgreSQLStore(SQLArchive, SQLOutbox, Store):
    """A :class:`Store` in a PostgreSQL database that several processes share at once.

    Across processes: duplicate detection is the journal's primary key (``INSERT … ON
    CONFLICT``), so one message POSTed to two instances at once is ``"new"`` for one only; an
    answer is queued, its request marked handled and both archived in one statement;
    :meth:`claim_due` takes items with ``FOR UPDATE SKIP LOCKED`` and a lease, so an item whose
    instance died is delivered by another once the lease ends.

    The journal has leases too: a message recorded here is this store's to handle for
    ``handling_lease`` seconds (from its ``received_at``). :meth:`unhandled` returns (and
    claims) the unhandled messages that are this store's or whose lease has ended;
    :meth:`recover_unhandled` only the latter: what an instance that died left, which a
    survivor handles. ``instance`` names this store's claims (default: unique per store
    object); give a restarted instance its old name to take its messages back at once,
    never give two live instances one name.

    The outbox: an item is stored claimed by this store for ``handling_lease`` seconds (an
    outbox delivers a new item at once, without a claim_due round trip; no other instance
    may take it meanwhile), yet this store's own :meth:`claim_due` may take it at once;
    with ``claim`` (the outbox took it to deliver) by the caller, for at most that long.

    Calls through :meth:`call` run in order on the store's one worker thread (the outbox
    relies on a submit's commit being seen before a later claim's), or inline on the event
    loop with ``threaded=False`` (URL ``threaded=0``: cheaper for a near database, a stall for
    a slow one); more pooled connections (``pool_size``) serve threads calling directly. A
    call that gets no connection within ``pool_timeout`` s, or whose database is unreachable
    or fails mid-call, raises :class:`~pyuftp.exceptions.StoreError` and writes nothing; the
    pool reconnects by itself. The tables are made or migrated on first use, in ``schema``.

    The archive keeps every message until :meth:`forget_archived` deletes it.
    """

    #: Shared by processes: inboxes sweep (recover_unhandled), requests poll the archive.
    shared = True

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 4,
                 handling_lease: float = 120.0, pool_timeout: float = 10.0,
                 instance: str | None = None, threaded: bool = True) -> None:
        if not isinstance(url, str) or not url:
            raise TypeError(f"url must be a non-empty str, not {url!r}")
        dsn, options = schema_.split_url(url)
        self.schema = schema_.schema_name(options.get("schema", schema))
        self.pool_size = checks.count(schema_.option(options, "pool_size", int, pool_size),
                                      "pool_size", 1)
        self.handling_lease = schema_.seconds(
            schema_.option(options, "handling_lease", float, handling_lease), "handling_lease")
        self.pool_timeout = schema_.seconds(
            schema_.option(options, "pool_timeout", float, pool_timeout), "pool_timeout")
        self.instance = checks.text(instance or f"{socket.gethostname()}:{os.getpid()}:"
                                    f"{uuid.uuid4().hex[:12]}", "instance")
        self.url = schema_.safe_url(url)
        flag = options.get("threaded", threaded)
        if isinstance(flag, str):  # from the URL
            flag = {"1": True, "true": True, "0": False, "false": False}.get(flag.lower(), flag)
        if not isinstance(flag, bool):
            raise TypeError(f"threaded must be a bool (in the URL: 1, 0, true, false), "
                            f"not {flag!r}")
        self.blocking = flag
        self._prepared = False
        self._prepare_lock = threading.Lock()
        self._pool = psycopg_pool.ConnectionPool(
            dsn, min_size=1, max_size=self.pool_size, open=False, timeout=self.pool_timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(self.pool_timeout))},
            configure=self._configure, name=f"pyuftp-{self.instance}", reconnect_timeout=60.0)
        try:
            self._pool.open(wait=False)
        except psycopg.Error as exc:
            raise StoreError(f"cannot use {self.url}: {schema_.describe(exc)}") from exc

    @property
    def recovery_interval(self) -> float:
        """How often an inbox calls :meth:`recover_unhandled`: a quarter of the lease (0.5
        to 30 s), so a dead instance's message waits at most 1.25 leases."""
        return min(30.0, max(0.5, self.handling_lease / 4))

    _sql: ClassVar[ModuleType] = pa  # the archive's SQL (SQLArchive runs it)
    _P: ClassVar[str] = "%s"  # a parameter in psycopg's SQL (SQLOutbox)

    def __repr__(self) -> str:
        return f"PostgreSQLStore({self.url!r})"

    # --- plumbing ----------------------------------------------------------------------------

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        if self.schema is not None:
            conn.execute(f"SET search_path TO {self.schema}")

    def migrate(self) -> int:
        """Make or upgrade the tables now (else on first use); the version found before."""
        with self._connection("migrate", prepare=False) as conn:
            found = schema_.migrate(conn, self.schema, self.url)
        self._prepared = True
        return found

    @contextmanager
    def _connection(self, action: str, prepare: bool = True) -> Iterator[Any]:
        """A pooled connection (autocommit: each statement commits by itself, or use
        ``conn.transaction()``); driver and pool errors become StoreError."""
        self._check_open()
        try:
            with self._pool.connection(timeout=self.pool_timeout) as conn:
                if prepare and not self._prepared:
                    with self._prepare_lock:  # first use: make or upgrade the tables
                        if not self._prepared:
                            schema_.migrate(conn, self.schema, self.url)
                            self._prepared = True
                yield conn
        except (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
            if self._closed:
                raise StoreError(f"{self!r} is closed") from exc
            raise StoreError(f"{self.url}: {action} failed: {schema_.describe(exc)}") from exc


    def _transaction(self, action: str,
                     write: bool = True) -> AbstractContextManager[Any]:
        """SQLArchive's way to a connection: each of its calls is one statement, which
        commits by itself."""
        return self._connection(action)
    def _release(self) -> None:
        self._pool.close(timeout=5.0)

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
        args: dict[str, Any] = {
            "mid_": checked.message_id, "type": checked.message_type,
            "from": checked.sender_domain, "to": checked.recipient_domain,
            "role": checked.recipient_role, "body": checked.body, "created": checked.created_at,
            "expires": checked.expires_at, "attempts": checked.attempts,
            "next": checked.next_attempt_at, "state": checked.state,
            "error": checked.last_error, "status": checked.last_status, "now": now,
            # claimed by the caller (who delivers it now), or by this store: its own
            # claim_due may take it at once (added_by), another instance's not yet. At most
            # the handling lease either way: should this instance die, another posts it then
            "claim": now + min(self.handling_lease, lease or self.handling_lease),
            "me": None if lease is not None else self.instance, "done": sorted(done)}
        # One statement: mark the request handled, queue its answer, archive the answer and
        # note the request's outcome; all or nothing, one round trip.
        sql = pa.add_statement(answered is not None, kept is not None, result is not None,
                               bool(done))
        if answered is not None:
            args.update(sender=answered[0], mid=answered[1])
        if kept is not None:
            args.update(pa.params(kept))
        if result is not None:
            args.update(outcome=result[0], reasons=result[1])
        with self._connection("add_outgoing") as conn:
            row = conn.execute(sql, args).fetchone()
        if row is None or row[0] is None:
            assert answered is not None
            raise KeyError(f"no received message {answered[1]} from {answered[0]}")
        item.id = int(row[0])
        return item.id

    def claim_due(self, now: float, limit: int = 100, lease: float = 300.0,
                  exclude_peers: Collection[tuple[str, str]] = ()) -> list[OutboxItem]:
        now, limit, lease, peers = checks.claim_args(now, limit, lease, exclude_peers)
        # claimable: due and not claimed, or stored by this store and not claimed since
        sql = (f"SELECT id FROM outbox WHERE ({_READY} <= %s OR (state = 'pending' AND "
               "added_by = %s AND next_attempt_at <= %s))")
        args: list[Any] = [now + lease, now, self.instance, now]
        for domain, role in sorted(peers):  # a few peers at most: one condition each
            sql += " AND NOT (recipient_domain = %s AND recipient_role = %s)"
            args += [domain, role]
        # SKIP LOCKED: what another instance is claiming right now is simply not ours
        sql = (f"UPDATE outbox SET claimed_until = %s, added_by = NULL WHERE id IN ({sql} "
               "ORDER BY id LIMIT %s "
               f"FOR UPDATE SKIP LOCKED) RETURNING {ITEM_COLUMNS}")
        with self._connection("claim_due") as conn:
            rows = conn.execute(sql, (*args, limit)).fetchall()
        return sorted((row_item(row) for row in rows), key=lambda i: i.id or 0)

    def release(self, item_ids: Iterable[int]) -> None:
        ids = sorted(checks.item_ids(item_ids, "item_ids"))
        with self._connection("release") as conn:
            conn.execute("UPDATE outbox SET claimed_until = 0, added_by = NULL WHERE "
                         "id = ANY(%s) AND state = 'pending'", (ids,))

    def next_due_time(self) -> float | None:
        with self._connection("next_due_time") as conn:
            row = conn.execute(
                "SELECT min(CASE WHEN added_by = %s THEN next_attempt_at ELSE "
                "GREATEST(next_attempt_at, claimed_until) END) FROM outbox WHERE "
                "state = 'pending'", (self.instance,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def _change(self, action: str, item_id: int, sql: str, args: tuple[Any, ...]) -> None:
        with self._connection(action) as conn:
            changed = conn.execute(
                f"UPDATE outbox SET {sql}, claimed_until = 0, added_by = NULL, updated_at = %s "
                "WHERE id = %s AND state = 'pending'", (*args, time.time(), item_id)).rowcount
            if changed:
                return
            row = conn.execute("SELECT state FROM outbox WHERE id = %s", (item_id,)).fetchone()
        if row is None:
            raise KeyError(f"no outbox item {item_id}")
        # e.g. another instance delivered it meanwhile: its verdict stands
        logger.warning("outbox item %d is %s already; left as it is", item_id, row[0])

    def mark_delivered(self, item_id: int) -> None:
        item_id = checks.item_id(item_id)
        with self._connection("mark_delivered") as conn:
            changed = conn.execute(
                "UPDATE outbox SET state = 'delivered', body = '', claimed_until = 0, "
                "added_by = NULL, updated_at = %s WHERE id = %s", (time.time(), item_id)).rowcount
        if changed == 0:
            raise KeyError(f"no outbox item {item_id}")

    def mark_delivered_many(self, item_ids: Iterable[int]) -> None:
        ids = sorted(checks.item_ids(item_ids, "item_ids"))
        if ids:
            with self._connection("mark_delivered_many") as conn:
                conn.execute(f"{pa.DELIVER} WHERE id = ANY(%(done)s)",
                             {"now": time.time(), "done": ids})

    def retry_outgoing(self, item_id: int, next_attempt_at: float, expires_at: float) -> None:
        item_id = checks.item_id(item_id)
        due, expires = checks.when(next_attempt_at, "next_attempt_at"), checks.when(
            expires_at, "expires_at")
        with self._connection("retry_outgoing") as conn:
            state = conn.execute("UPDATE outbox SET state = 'pending', next_attempt_at = %s, "
                                 "expires_at = %s, claimed_until = 0, updated_at = %s WHERE "
                                 "id = %s AND state <> 'delivered' RETURNING state",
                                 (due, expires, time.time(), item_id)).fetchone()
            if state is None:
                found = conn.execute("SELECT state FROM outbox WHERE id = %s",
                                     (item_id,)).fetchone()
                if found is None:
                    raise KeyError(f"no outbox item {item_id}")
                raise ValueError(f"outbox item {item_id} was delivered: nothing to retry")

    # --- received ----------------------------------------------------------------------------

    def record_received(self, sender_domain: str, message_id: str, digest: str, data: bytes,
                        received_at: float, *, archive: ArchivedMessage | None = None) -> str:
        sender, mid, digest, body, at = checks.received_args(sender_domain, message_id, digest,
                                                             data, received_at)
        # the archive keeps the envelope too (the journal's copy goes when it is handled)
        kept = checks.with_envelope(checks.to_archive(archive), body)
        args: dict[str, Any] = {"sender": sender, "mid": mid, "digest": digest, "data": body,
                                "at": at, "owner": self.instance,
                                "until": at + self.handling_lease}
        # The primary key decides, in one statement with the archiving: two instances given
        # one message at once never both get "new".
        parts = ["ins AS (INSERT INTO received (sender_domain, message_id, digest, data, "
                 "received_at, owner, claimed_until) VALUES (%(sender)s, %(mid)s, %(digest)s, "
                 "%(data)s, %(at)s, %(owner)s, %(until)s) ON CONFLICT DO NOTHING RETURNING 1)"]
        if kept is not None:
            parts.append(pa.ctes("EXISTS (SELECT 1 FROM ins)"))
            args.update(pa.params(kept))
        with self._connection("record_received") as conn:
            new, stored = conn.execute(
                f"WITH {', '.join(parts)} SELECT (SELECT count(*) FROM ins), "
                f"(SELECT digest FROM received WHERE {_RECEIVED_KEY})", args).fetchone()
            if new:
                return "new"
            if stored is None:  # recorded by another instance after this statement began
                row = conn.execute(f"SELECT digest FROM received WHERE {_RECEIVED_KEY}",
                                   args).fetchone()
                stored = None if row is None else row[0]
        if stored is None:  # ... and forgotten at once: a very old message
            raise StoreError(f"{self.url}: record_received: {mid} from {sender} changed while "
                             "it was recorded; try again")
        return "duplicate" if stored == digest else "conflict"

    def mark_handled(self, sender_domain: str, message_id: str) -> None:
        sender, mid = checks.key(sender_domain, message_id)
        with self._connection("mark_handled") as conn:
            changed = conn.execute(
                "UPDATE received SET handled_at = COALESCE(handled_at, %(now)s), data = NULL "
                f"WHERE {_RECEIVED_KEY}", {"now": time.time(), "sender": sender,
                                           "mid": mid}).rowcount
        if changed == 0:
            raise KeyError(f"no received message {mid} from {sender}")

    def _claim_unhandled(self, action: str, mine: bool) -> list[tuple[str, str, bytes]]:
        now = time.time()
        whose = "(owner = %(me)s OR claimed_until <= %(now)s)" if mine else \
            "owner IS DISTINCT FROM %(me)s AND claimed_until <= %(now)s"
        with self._connection(action) as conn:
            rows = conn.execute(
                "UPDATE received SET owner = %(me)s, claimed_until = %(until)s WHERE "
                "(sender_domain, message_id) IN (SELECT sender_domain, message_id FROM received "
                f"WHERE handled_at IS NULL AND {whose} FOR UPDATE SKIP LOCKED) "
                "RETURNING received_at, seq, sender_domain, message_id, data",
                {"me": self.instance, "now": now, "until": now + self.handling_lease}).fetchall()
        return [(sender, mid, bytes(data or b"")) for _, _, sender, mid, data in sorted(rows)]

    def unhandled(self) -> list[tuple[str, str, bytes]]:
        """The unhandled messages that are this store's (recorded or claimed by it) or whose
        handling lease has ended (their instance died), in the order received; claimed for
        this store for ``handling_lease`` seconds, so no other instance handles them too."""
        return self._claim_unhandled("unhandled", mine=True)

    def recover_unhandled(self) -> list[tuple[str, str, bytes]]:
        """Like :meth:`unhandled`, but only the messages of other instances whose lease has
        ended: what a survivor calls now and then to handle what a dead instance left."""
        return self._claim_unhandled("recover_unhandled", mine=False)

    def forget_received(self, before: float) -> int:
        before = checks.when(before, "before")
        with self._connection("forget_received") as conn:
            return int(conn.execute("DELETE FROM received WHERE handled_at IS NOT NULL AND "
                                    "received_at < %s", (before,)).rowcount)
