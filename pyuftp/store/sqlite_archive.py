"""The archive's SQL for :class:`pyuftp.store.sqlite.SQLiteStore`: each function runs in the
transaction (or read) the store opened on ``conn``, with checked arguments. The tables and
indexes are in :mod:`pyuftp.store.sqlite_file`."""
from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

from . import signed
from .base import ArchivedMessage
from .checks import Query

logger = logging.getLogger("pyuftp.store.sqlite")

_COLUMNS = ("direction, message_type, message_id, conversation_id, sender_domain, sender_role, "
            "recipient_domain, recipient_role, time_stamp, payload_xml, refs, period, outcome, "
            "reasons, archived_at, congestion_point, revision, signed")
_KEY = "counterparty = ? AND message_id = ? AND direction = ?"


def _message(row: tuple[Any, ...]) -> ArchivedMessage:
    (direction, message_type, message_id, conversation_id, sender_domain, sender_role,
     recipient_domain, recipient_role, time_stamp, payload_xml, refs, period, outcome, reasons,
     archived_at, congestion_point, revision, blob) = row
    # archived under schema 5: payload_xml is x'' and signed holds it (with the envelope)
    xml, envelope = (bytes(payload_xml), None) if blob is None else signed.unpack(blob)
    return ArchivedMessage(direction, message_type, message_id, conversation_id, sender_domain,
                           sender_role, recipient_domain, recipient_role, time_stamp,
                           xml, json.loads(refs), period,
                           congestion_point=congestion_point, revision=revision,
                           outcome=outcome, reasons=reasons, archived_at=archived_at,
                           envelope=envelope)


def archive(conn: sqlite3.Connection, message: ArchivedMessage) -> bool:
    """Insert ``message`` (checked, ``archived_at`` set) and its references, unless its key is
    archived already."""
    cursor = conn.execute(
        f"INSERT INTO archive ({_COLUMNS}, counterparty) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (counterparty, message_id, direction) DO NOTHING",
        (message.direction, message.message_type, message.message_id, message.conversation_id,
         message.sender_domain, message.sender_role, message.recipient_domain,
         message.recipient_role, message.time_stamp, b"",
         json.dumps(message.references), message.period, message.outcome,
         message.reasons, message.archived_at, message.congestion_point, message.revision,
         signed.pack(message.envelope, message.payload_xml), message.counterparty))
    if cursor.rowcount != 1:
        return False
    conn.executemany("INSERT INTO archive_refs (message, key, ref_id) VALUES (?, ?, ?)",
                     [(cursor.lastrowid, key, ref) for key, ref in message.references.items()])
    return True


def set_outcome(conn: sqlite3.Connection, key: tuple[str, str, str], outcome: str,
                reasons: str | None) -> None:
    direction, counterparty, message_id = key
    cursor = conn.execute(f"UPDATE archive SET outcome = ?, reasons = ? WHERE {_KEY}",
                          (outcome, reasons, counterparty, message_id, direction))
    if cursor.rowcount == 0:
        raise KeyError(f"no archived message {message_id} {direction} "
                       f"{'to' if direction == 'out' else 'from'} {counterparty}")


def find(conn: sqlite3.Connection, counterparty: str, message_id: str,
         directions: tuple[str, ...]) -> ArchivedMessage | None:
    for direction in directions:
        row = conn.execute(f"SELECT {_COLUMNS} FROM archive WHERE {_KEY}",
                           (counterparty, message_id, direction)).fetchone()
        if row is not None:
            return _message(row)
    return None


def query(conn: sqlite3.Connection, criteria: Query) -> list[ArchivedMessage]:
    sql, args = criteria.sql(_COLUMNS, "?")
    return [_message(row) for row in conn.execute(sql, args)]


def highest_revision(conn: sqlite3.Connection, direction: str, counterparty: str,
                     message_type: str, period: str, congestion_point: str | None,
                     excluding: str | None) -> int | None:
    """The top two revisions of the group by the index ``archive_revision`` (a seek, however
    many messages the day has): the first that is not ``excluding``'s."""
    rows = conn.execute(
        "SELECT revision, message_id FROM archive WHERE message_type = ? AND counterparty = ? "
        "AND direction = ? AND period = ? AND congestion_point IS ? AND revision IS NOT NULL "
        "ORDER BY revision DESC LIMIT 2",
        (message_type, counterparty, direction, period, congestion_point)).fetchall()
    return next((int(revision) for revision, message_id in rows if message_id != excluding),
                None)


#: the envelope of a message received and not yet handled, whose journal record refers to
#: the archive for it (received.data NULL): SQLiteStore.unhandled reads it from here
ENVELOPE = ("SELECT signed FROM archive a WHERE a.counterparty = received.sender_domain AND "
            "a.message_id = received.message_id AND a.direction = 'in'")


def forget(conn: sqlite3.Connection, before: float) -> int:
    """Delete the messages archived before ``before`` (their refs go by the trigger), but
    those received and not yet handled whose journal record refers to them for its data."""
    return conn.execute(
        "DELETE FROM archive WHERE archived_at < ? AND NOT (direction = 'in' AND EXISTS ("
        "SELECT 1 FROM received r WHERE r.sender_domain = archive.counterparty AND "
        "r.message_id = archive.message_id AND r.handled_at IS NULL AND r.data IS NULL))",
        (before,)).rowcount


def unhandled_data(data: bytes | None, blob: bytes | None) -> bytes:
    """An unhandled message's data: the journal's, or (NULL there) the archived envelope."""
    if data is not None:
        return bytes(data)
    envelope = None if blob is None else signed.unpack(blob)[1]
    if envelope is None:  # not expected: forget_archived keeps what unhandled records need
        logger.error("an unhandled message's data is neither in the journal nor the archive")
    return envelope or b""
