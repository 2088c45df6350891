"""Opening a SQLite store file (its one-process lock: ``sqlite_lock``): the checks that it
is a sound pyuftp store, the schema and its migration; and SQLite errors in words."""
from __future__ import annotations

import logging
import os
import sqlite3
import zlib

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from ..exceptions import StoreError, excerpt
from . import signed

logger = logging.getLogger(__name__)

# 1: no claims; 2: outbox.claimed_until; 3: the archive; 4: archive.congestion_point, revision
# 5: archive.signed (envelope and XML in one compressed blob; payload_xml x'' then)
SCHEMA_VERSION = 5
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
MAGIC = b"SQLite format 3\x00"

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
        updated_at REAL NOT NULL,
        claimed_until REAL NOT NULL DEFAULT 0
    )""",
    # version 1's index for what claim_due replaced
    "DROP INDEX IF EXISTS outbox_due",
    # claim_due and next_due_time: when a pending item can be claimed next. Covering (so the
    # trailing columns): claim_due reads the index alone to pick the ids, then those rows.
    """CREATE INDEX IF NOT EXISTS outbox_ready ON outbox (state, max(next_attempt_at,
        claimed_until), recipient_domain, recipient_role, next_attempt_at, claimed_until)""",
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
    "CREATE INDEX IF NOT EXISTS received_unhandled ON received (received_at) "
    "WHERE handled_at IS NULL",
    # forget_received
    "CREATE INDEX IF NOT EXISTS received_age ON received (received_at)",
    # every message sent and received (see pyuftp.store.sqlite_archive). AUTOINCREMENT: the
    # id is the order archived, and archive_refs names a message by it. The key, unique, is
    # also the index of find() and of query(counterparty=...).
    """CREATE TABLE IF NOT EXISTS archive (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        counterparty TEXT NOT NULL,
        message_id TEXT NOT NULL,
        message_type TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        sender_domain TEXT NOT NULL,
        sender_role TEXT NOT NULL,
        recipient_domain TEXT NOT NULL,
        recipient_role TEXT NOT NULL,
        time_stamp REAL NOT NULL,
        payload_xml BLOB NOT NULL,
        refs TEXT NOT NULL,
        period TEXT,
        outcome TEXT,
        reasons TEXT,
        archived_at REAL NOT NULL,
        congestion_point TEXT,
        revision INTEGER,
        signed BLOB,
        UNIQUE (counterparty, message_id, direction)
    )""",
    "CREATE INDEX IF NOT EXISTS archive_conversation ON archive (conversation_id)",
    "CREATE INDEX IF NOT EXISTS archive_type ON archive (message_type, counterparty, period)",
    "CREATE INDEX IF NOT EXISTS archive_time ON archive (time_stamp)",
    "CREATE INDEX IF NOT EXISTS archive_age ON archive (archived_at)",  # forget_archived
    # highest_revision: a seek to the top of one party's day and congestion point; partial,
    # so the messages without a revision cost it nothing
    """CREATE INDEX IF NOT EXISTS archive_revision ON archive (message_type, counterparty,
        direction, period, congestion_point, revision) WHERE revision IS NOT NULL""",
    # archive.refs is the references as given (JSON, for the round trip); this table is their
    # index, one row per reference, so that query(references=id) is a lookup.
    """CREATE TABLE IF NOT EXISTS archive_refs (
        message INTEGER NOT NULL,
        key TEXT NOT NULL,
        ref_id TEXT NOT NULL,
        PRIMARY KEY (message, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS archive_refs_id ON archive_refs (ref_id)",
    # whatever deletes a message (forget_archived, someone's sqlite3 shell), its refs go too
    """CREATE TRIGGER IF NOT EXISTS archive_refs_gone AFTER DELETE ON archive BEGIN
        DELETE FROM archive_refs WHERE message = old.id;
    END""",
)
_OUR_TABLES = {"outbox", "received", "archive", "archive_refs", "sqlite_sequence"}

# What an SQLite result code means, in words (primary codes: the low byte).
_REASONS = {
    sqlite3.SQLITE_FULL: "the disk is full (or the store reached its size limit)",
    sqlite3.SQLITE_CORRUPT: "the file is corrupt",
    sqlite3.SQLITE_NOTADB: "the file is not a pyuftp store (not an SQLite database)",
    sqlite3.SQLITE_BUSY: "the database is locked by another process",
    sqlite3.SQLITE_LOCKED: "the database is locked by another process",
    sqlite3.SQLITE_READONLY: "the file is read-only",
    sqlite3.SQLITE_IOERR: "reading or writing the file failed (I/O error)",
    sqlite3.SQLITE_CANTOPEN: "the file cannot be opened",
    sqlite3.SQLITE_PERM: "permission denied",
}


def describe(exc: sqlite3.Error) -> str:
    """What went wrong, in words, with SQLite's own message (cut to 200 characters)."""
    code = getattr(exc, "sqlite_errorcode", None)
    detail = excerpt(exc, 200)
    reason = _REASONS.get(code & 0xFF) if isinstance(code, int) else None
    return f"{reason} (sqlite: {detail})" if reason else detail


def create_file(path: str) -> bool:
    """Create ``path`` readable by its owner only, unless it exists; True if it existed (and
    is not empty). SQLite gives its -wal and -shm files the same mode."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return os.path.getsize(path) > 0
    except OSError as exc:
        raise StoreError(f"cannot create the store {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
    finally:
        os.close(fd)
    return False



def open_file(path: str, synchronous: str, busy_timeout: float, check_integrity: bool,
              sole_user: bool) -> sqlite3.Connection:
    """A connection to the store at ``path`` (an existing file is checked first, a new one
    made 0600), in WAL mode, its schema current. ``sole_user``: the caller holds the file's
    lock, so the claims in it are void (made by a process now gone)."""
    existing = path != ":memory:" and create_file(path)
    if existing:
        with open(path, "rb") as file:
            if file.read(len(MAGIC)) != MAGIC:
                raise StoreError(f"cannot use {path}: it is not a pyuftp store (not an SQLite "
                                 "database); left as it is")
    # isolation_level=None: no implicit transactions; each write opens its own with
    # BEGIN IMMEDIATE, so it takes the write lock at once and cannot deadlock on upgrade.
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if check_integrity and existing:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
            if problems != ["ok"]:
                raise StoreError(f"cannot use {path}: the file is corrupt (quick_check: "
                                 f"{excerpt('; '.join(problems), 300)}); restore a backup or "
                                 "move it aside")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal" and path != ":memory:":
            logger.warning("%s: journal mode is %s, not WAL", path, mode)
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("BEGIN IMMEDIATE")
        _migrate(conn, path, sole_user)
        conn.execute("COMMIT")
    except BaseException as exc:
        conn.close()  # rolls back what is not committed
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"cannot use {path}: {describe(exc)}") from exc
        raise
    return conn


def _add_revision_columns(conn: sqlite3.Connection, tables: set[str]) -> bool:
    """Schema 3 to 4: the archive's congestion_point and revision columns; True if added
    (the rows archived before then get their values from their payloads)."""
    if "archive" not in tables:
        return False
    columns = {row[1] for row in conn.execute("PRAGMA table_info(archive)")}
    if "revision" in columns:
        return False
    if "congestion_point" not in columns:
        conn.execute("ALTER TABLE archive ADD COLUMN congestion_point TEXT")
    conn.execute("ALTER TABLE archive ADD COLUMN revision INTEGER")
    return True


def _fill_revisions(conn: sqlite3.Connection) -> None:
    """The congestion point and revision of each D-Prognosis and FlexRequest archived under
    schema 3, read from the root element's attributes of its stored payload (once, at the
    migration; no entity is resolved, nothing fetched)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    last = 0
    while rows := conn.execute(  # in batches: an archive of a year need not fit in memory
            "SELECT id, coalesce(signed, payload_xml), signed IS NOT NULL FROM archive "
            "WHERE id > ? AND message_type IN "
            "('D-Prognosis', 'FlexRequest') ORDER BY id LIMIT 500", (last,)).fetchall():
        last = rows[-1][0]
        _fill_batch(conn, parser, rows)


def _fill_batch(conn: sqlite3.Connection, parser: etree.XMLParser,
                rows: list[tuple[int, bytes, int]]) -> None:
    for row_id, stored, packed in rows:
        try:
            xml = signed.unpack(stored)[0] if packed else bytes(stored)
            root = etree.fromstring(xml, parser)
            revision = int(root.get("Revision", ""))
        except (etree.XMLSyntaxError, ValueError, zlib.error):
            continue  # not readable: the rule then sees no earlier revision for it
        conn.execute("UPDATE archive SET congestion_point = ?, revision = ? WHERE id = ?",
                     (root.get("CongestionPoint"), revision, row_id))


def _migrate(conn: sqlite3.Connection, path: str, sole_user: bool) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path} was written by a newer pyuftp (schema {version}, this one "
                         f"knows {SCHEMA_VERSION})")
    tables = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version == 0 and tables - _OUR_TABLES:
        raise StoreError(f"cannot use {path}: it is an SQLite database but not a pyuftp store "
                         f"(tables {', '.join(sorted(tables))})")
    if "outbox" in tables and "claimed_until" not in {
            row[1] for row in conn.execute("PRAGMA table_info(outbox)")}:
        conn.execute("ALTER TABLE outbox ADD COLUMN claimed_until REAL NOT NULL DEFAULT 0")
    backfill = _add_revision_columns(conn, tables)
    if "archive" in tables and "signed" not in {
            row[1] for row in conn.execute("PRAGMA table_info(archive)")}:
        # rows archived before keep their payload_xml as it is; new ones fill signed
        conn.execute("ALTER TABLE archive ADD COLUMN signed BLOB")
    for statement in _SCHEMA:
        conn.execute(statement)
    if backfill:
        _fill_revisions(conn)
    if sole_user:
        # A claim in the file was made by a process now gone (we hold the lock): its items
        # are due again at once, not when its lease would have ended.
        conn.execute("UPDATE outbox SET claimed_until = 0 WHERE claimed_until > 0")
    if version < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if version:
            logger.info("%s: schema %d migrated to %d", path, version, SCHEMA_VERSION)
