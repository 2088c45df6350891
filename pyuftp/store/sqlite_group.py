"""Group commit for :class:`pyuftp.store.sqlite.SQLiteStore` called from asyncio code.

A SQLite commit costs about the same for one message as for several (most of it is writing
the pages the transaction changed into the log, and consecutive messages change the same
index pages), and under load several requests and answers reach the store within one turn
of the event loop. So the writes of a service's message path (:data:`GROUPED`), called
through ``await store.call(...)``, are queued and committed together: at the end of the
loop's turn, or at once with the next ``record_received`` (the 200 a sender waits for is not
delayed). Each runs in a savepoint of its own: one that raises (a KeyError, bad input) rolls
back only itself and raises to its own caller. Every caller's ``await`` returns only after
the commit that holds its change, so a 200 still follows the commit; a failed commit raises
StoreError to every caller of the group, none of whose changes were written. An entry
cancelled while it waits is not run. A lone answer waits one loop turn more, no commit more.
"""
from __future__ import annotations

import asyncio
import functools
import sqlite3
from typing import Any, Callable

from ..exceptions import StoreError

SQLiteStore = Any  # pyuftp.store.sqlite.SQLiteStore, which imports this module

#: the methods whose calls through ``store.call`` share a commit
GROUPED = frozenset({"record_received", "add_outgoing", "mark_delivered_many", "mark_handled"})
#: those that commit at once, with the calls queued before them
URGENT = frozenset({"record_received"})

_Entry = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


def _name(method: Callable[..., Any]) -> str:
    return str(getattr(getattr(method, "func", method), "__name__", ""))


def groupable(store: SQLiteStore, method: Callable[..., Any]) -> bool:
    """Whether ``method`` (maybe a functools.partial of one) is one of ``store``'s
    :data:`GROUPED` methods."""
    target = method.func if isinstance(method, functools.partial) else method
    return getattr(target, "__self__", None) is store and \
        getattr(target, "__name__", None) in GROUPED


class GroupCommit:
    """The queue of one store's grouped calls (see the module docstring)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self._queue: list[_Entry] = []

    def add(self, method: Callable[..., Any], args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue a call; a record_received commits at once, with what is queued (a
        sender waits for its 200: it must not wait for the loop's turn too)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        # what an earlier event loop left (closed before its flush ran) is dropped: cancelled
        self._queue = [entry for entry in self._queue if entry[2].get_loop() is loop]
        self._queue.append((method, args, future))
        if _name(method) in URGENT:
            self.flush()
        elif len(self._queue) == 1:
            loop.call_soon(self.flush)  # after what is ready in this turn of the loop
        return future

    def flush(self) -> None:
        entries = [entry for entry in self._queue if not entry[2].cancelled()]
        self._queue = []
        if not entries:
            return
        store, results = self.store, []
        names = {_name(m) for m, _, _ in entries}
        action = "record_received" if "record_received" in names else "group commit"
        try:
            with store._session(action) as conn:
                store._grouped = True
                try:
                    for method, args, _ in entries:
                        try:
                            results.append((True, method(*args)))
                        except Exception as exc:  # noqa: BLE001 - its caller's to handle
                            results.append((False, exc))
                            _check(conn, store.path)
                finally:
                    store._grouped = False
        except Exception as exc:  # nothing of the group was written
            failed = exc if isinstance(exc, StoreError) else StoreError(
                f"{store.path}: group commit failed: {exc}")
            for _, _, future in entries:
                if not future.done():
                    future.set_exception(failed)
            return
        for (ok, value), (_, _, future) in zip(results, entries):
            if future.done():  # not expected: cancelled ones were left out above
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def _check(conn: sqlite3.Connection, path: str) -> None:
    """After an entry failed: SQLite may have rolled back the whole transaction by itself
    (a full disk, an I/O error), and with it the entries before; then the group fails."""
    if not conn.in_transaction:
        raise StoreError(f"{path}: the group's transaction was rolled back")


def undo(conn: sqlite3.Connection, grouped: bool) -> None:
    """Roll back what failed: a group's entry to its savepoint, else the transaction."""
    if grouped:
        conn.execute("ROLLBACK TO one")
        conn.execute("RELEASE one")
    else:
        conn.execute("ROLLBACK")
