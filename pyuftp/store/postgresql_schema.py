"""The PostgreSQL store's tables, their versions and migration, its URL, and its errors in
words. The SQL of the store itself is in :mod:`pyuftp.store.postgresql` and
:mod:`pyuftp.store.postgresql_archive`."""
from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..exceptions import StoreError, excerpt
from . import checks

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
#: pyuftp's own URL parameters, taken out before the URL goes to the driver.
OPTIONS = ("schema", "pool_size", "handling_lease", "pool_timeout", "threaded")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# One advisory lock key for "migrating": several instances starting at once migrate once.
_MIGRATION_LOCK = 0x70797566  # "pyuf"

# Times are unix seconds as double precision (as the contract hands them), so that a value
# stored comes back equal. Every change of state is one statement or one transaction.
_SCHEMA_1 = (
    """CREATE TABLE IF NOT EXISTS outbox (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id TEXT NOT NULL,
        message_type TEXT NOT NULL,
        sender_domain TEXT NOT NULL,
        recipient_domain TEXT NOT NULL,
        recipient_role TEXT NOT NULL,
        body BYTEA NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL DEFAULT 0,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        last_error TEXT,
        last_status INTEGER,
        updated_at DOUBLE PRECISION NOT NULL,
        claimed_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        added_by TEXT
    )""",
    # claim_due, next_due_time and pending_counts: partial, so delivered items cost nothing
    """CREATE INDEX IF NOT EXISTS outbox_ready ON outbox
        (GREATEST(next_attempt_at, claimed_until), id) WHERE state = 'pending'""",
    "CREATE INDEX IF NOT EXISTS outbox_age ON outbox (state, updated_at)",
    # outbox.added_by: the instance that stored an item, which holds its claim from then
    # until its own claim_due takes it (see PostgreSQLStore.add_outgoing).
    # received.owner and claimed_until: which instance handles an unhandled message, until when
    # (the lease; after it another instance recovers the message). seq: the order of recording.
    """CREATE TABLE IF NOT EXISTS received (
        sender_domain TEXT NOT NULL,
        message_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        data BYTEA,
        received_at DOUBLE PRECISION NOT NULL,
        handled_at DOUBLE PRECISION,
        owner TEXT,
        claimed_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (sender_domain, message_id)
    )""",
    """CREATE INDEX IF NOT EXISTS received_unhandled ON received (received_at, seq)
        WHERE handled_at IS NULL""",
    "CREATE INDEX IF NOT EXISTS received_age ON received (received_at)",
    """CREATE TABLE IF NOT EXISTS archive (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        counterparty TEXT NOT NULL,
        message_id TEXT NOT NULL,
        message_type TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        sender_domain TEXT NOT NULL,
        sender_role TEXT NOT NULL,
        recipient_domain TEXT NOT NULL,
        recipient_role TEXT NOT NULL,
        time_stamp DOUBLE PRECISION NOT NULL,
        payload_xml BYTEA NOT NULL,
        refs TEXT NOT NULL,
        period TEXT,
        outcome TEXT,
        reasons TEXT,
        archived_at DOUBLE PRECISION NOT NULL,
        congestion_point TEXT,
        revision INTEGER,
        UNIQUE (counterparty, message_id, direction)
    )""",
    "CREATE INDEX IF NOT EXISTS archive_conversation ON archive (conversation_id)",
    "CREATE INDEX IF NOT EXISTS archive_type ON archive (message_type, counterparty, period)",
    "CREATE INDEX IF NOT EXISTS archive_time ON archive (time_stamp, id)",
    "CREATE INDEX IF NOT EXISTS archive_age ON archive (archived_at)",
    """CREATE INDEX IF NOT EXISTS archive_revision ON archive (direction, counterparty,
        message_type, period, congestion_point, revision) WHERE revision IS NOT NULL""",
    # the references index: one row per reference; they go with their message
    """CREATE TABLE IF NOT EXISTS archive_refs (
        message BIGINT NOT NULL REFERENCES archive (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        ref_id TEXT NOT NULL,
        PRIMARY KEY (message, key)
    )""",
    "CREATE INDEX IF NOT EXISTS archive_refs_id ON archive_refs (ref_id)",
)
#: version -> the statements that bring the version before it there (1: from nothing).
# 2: archive.signed, the envelope and the XML in one compressed blob (pyuftp.store.signed);
# payload_xml is '' in the rows that have it, and keeps the XML of the rows archived before
_SCHEMA_2 = ("ALTER TABLE archive ADD COLUMN IF NOT EXISTS signed BYTEA",)

MIGRATIONS: dict[int, tuple[str, ...]] = {1: _SCHEMA_1, 2: _SCHEMA_2}


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """The driver's URL and pyuftp's options (:data:`OPTIONS`) taken out of its query."""
    parts = urlsplit(url)
    kept, ours = [], {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in OPTIONS:
            ours[name] = value
        else:
            kept.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), ours


def option(options: dict[str, str], name: str, kind: type[Any], default: Any) -> Any:
    """A URL option as ``kind`` (the keyword argument ``default`` when it is not given)."""
    if name not in options:
        return default
    try:
        return kind(options[name])
    except ValueError:
        raise ValueError(f"the store URL's {name} must be a number, not "
                         f"{options[name][:40]!r}") from None


def seconds(value: Any, name: str) -> float:
    """A positive number of seconds (a lease, a timeout)."""
    number = checks.when(value, name)
    if number <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return number


def schema_name(value: Any) -> str | None:
    """None, or a plain lower-case SQL name (it is put into SQL, so nothing else)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"schema must be a lower-case SQL name ([a-z_][a-z0-9_]*, 63 "
                         f"characters at most), not {excerpt(value, 80)!r}")
    return value


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def describe(exc: BaseException) -> str:
    """What went wrong, in words: the driver's first line, cut to 200 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return excerpt(text, 200)


def migrate(conn: Any, schema: str | None, where: str) -> int:
    """Bring the tables (in ``schema``, made if missing) to :data:`SCHEMA_VERSION` in one
    transaction on ``conn`` (a psycopg connection in autocommit mode); the version found.
    Instances starting together take turns (an advisory lock), so each step runs once."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        if schema is not None:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            conn.execute(f"SET LOCAL search_path TO {schema}")
        conn.execute("CREATE TABLE IF NOT EXISTS pyuftp_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM pyuftp_schema").fetchone()
        found = int(row[0]) if row and row[0] is not None else 0
        if found > SCHEMA_VERSION:
            raise StoreError(f"{where} was written by a newer pyuftp (schema {found}, this one "
                             f"knows {SCHEMA_VERSION})")
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("INSERT INTO pyuftp_schema (version) VALUES (%s)", (version,))
            if found:
                logger.info("%s: schema %d migrated to %d", where, version - 1, version)
    return found
