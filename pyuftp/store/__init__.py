"""What pyuftp keeps durably: the outbox of messages to deliver, the journal of messages
received, and the archive of every message sent and received.

UFTP messages are orders for money and grid capacity, so a message accepted by ``send_*`` is
first committed here and only then delivered (by :class:`pyuftp.sending.outbox.Outbox`); a message
received is recorded here before the sender gets its HTTP 200, so a repeat is recognised and
a message answered 200 but not yet handled when the process died is handled after a restart.
The archive keeps the messages sent and received, for audits and settlement, until the caller
forgets them (:meth:`Archive.forget_archived`, with its retention).

    store = open_store("sqlite:///agr.sqlite")  # one file per party; survives a SIGKILL
    store = open_store("memory:")               # tests, or when losing messages on exit is fine

The contract every backend implements is in :mod:`pyuftp.store.base` (:class:`Store`, made of
:class:`OutboxStore`, :class:`Journal` and :class:`Archive`); :mod:`pyuftp.store.checks` holds
the argument checks they share; :mod:`pyuftp.store.sqlite` (with ``sqlite_file`` and
``sqlite_archive``), :mod:`pyuftp.store.memory` (with ``memory_archive``) and
:mod:`pyuftp.store.postgresql` (with ``postgresql_archive`` and ``postgresql_schema``; for
several processes sharing one database) the backends.
"""
from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from ..exceptions import StoreError
from .base import (
    DIRECTIONS,
    OUTCOMES,
    RECEIVED_RESULTS,
    STATES,
    Archive,
    ArchivedMessage,
    Journal,
    OutboxItem,
    OutboxStore,
    Store,
    owned,
)
from .checks import check_archived, check_item
from .summary import OutboxSummary
from .memory import MemoryStore

if TYPE_CHECKING:
    from .postgresql import PostgreSQLStore
    from .sqlite import SQLiteStore

__all__ = ["Store", "OutboxStore", "Journal", "Archive", "OutboxItem", "ArchivedMessage",
           "SQLiteStore", "MemoryStore", "PostgreSQLStore", "open_store", "owned", "check_item",
           "check_archived", "STATES", "RECEIVED_RESULTS", "DIRECTIONS", "OUTCOMES", "StoreError",
           "OutboxSummary"]

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
FORMS = ("None or 'memory:' (a new memory store), 'sqlite:///relative/path.sqlite' or "
         "'sqlite:////absolute/path.sqlite', a file path, 'postgresql://user@host/db', "
         "or a Store")


def __getattr__(name: str) -> Any:
    # sqlite3 is imported when a SQLite store is wanted: a memory-only process stays smaller
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    if name == "PostgreSQLStore":  # psycopg is an extra: imported when wanted
        from .postgresql import PostgreSQLStore

        return PostgreSQLStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(spec: "Store | str | os.PathLike[str] | None") -> Store:
    """The store ``spec`` names:

    - None or ``"memory:"``: a new :class:`MemoryStore`;
    - a :class:`Store`: itself;
    - ``"sqlite:///relative/path.sqlite"``, ``"sqlite:////absolute/path.sqlite"`` (the path
      is what follows ``sqlite:///``), or a plain path (str or os.PathLike): a
      :class:`SQLiteStore` on that file;
    - ``"postgresql://user@host/db"`` or ``"postgres://…"``: a :class:`PostgreSQLStore`
      (shared by several processes; needs ``pip install 'usef-uftp[postgresql]'``). pyuftp's
      options may be given in the query: ``?schema=name&pool_size=4&handling_lease=120``.

    Any other ``scheme://`` is a ValueError. Whoever passes a path or URL (or None) owns the
    store made for it and closes it; a Store passed in is never closed by pyuftp (see
    :func:`owned`).
    """
    if spec is None:
        return MemoryStore()
    if isinstance(spec, Store):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"store must be {FORMS}; not {type(spec).__name__}")
    if spec == "memory:":
        return MemoryStore()
    from .sqlite import SQLiteStore

    if isinstance(spec, os.PathLike):
        return SQLiteStore(spec)
    if spec.startswith("sqlite:///"):
        path = spec[len("sqlite:///"):]
        if not path:
            raise ValueError(f"{spec!r} names no file: use {FORMS}")
        return SQLiteStore(path)
    scheme = _URL.match(spec)
    if scheme and scheme.group().lower() in ("postgresql://", "postgres://"):
        try:
            from .postgresql import PostgreSQLStore
        except ImportError as exc:
            raise StoreError("a PostgreSQL store needs psycopg 3 and psycopg_pool: pip install "
                             "'usef-uftp[postgresql]'") from exc
        return PostgreSQLStore(spec)
    if scheme or not spec:
        raise ValueError(f"unknown store {spec[:80]!r}: use {FORMS}")
    return SQLiteStore(spec)
