"""The archive's SQL for :class:`pyuftp.store.postgresql.PostgreSQLStore`: each function runs
on a connection the store took from its pool, with checked arguments. The tables are in
:mod:`pyuftp.store.postgresql_schema`.

Archiving a message is SQL common table expressions (:func:`ctes`), so that the journal and
the outbox can archive in the very statement that records or queues a message: one round trip
to the database, and one commit."""
from __future__ import annotations

import json
from typing import Any

from .base import ArchivedMessage
from . import signed
from .checks import Query

_COLUMNS = ("direction, message_type, message_id, conversation_id, sender_domain, sender_role, "
            "recipient_domain, recipient_role, time_stamp, payload_xml, refs, period, outcome, "
            "reasons, archived_at, congestion_point, revision, signed")
_KEY = "counterparty = %s AND message_id = %s AND direction = %s"


def message(row: tuple[Any, ...]) -> ArchivedMessage:
    """An ArchivedMessage from a row of :data:`_COLUMNS`."""
    (direction, message_type, message_id, conversation_id, sender_domain, sender_role,
     recipient_domain, recipient_role, time_stamp, payload_xml, refs, period, outcome, reasons,
     archived_at, congestion_point, revision, blob) = row
    # archived under schema 2: payload_xml is '' and signed holds it (with the envelope)
    xml, envelope = (bytes(payload_xml), None) if blob is None else signed.unpack(bytes(blob))
    return ArchivedMessage(
        direction=direction, message_type=message_type, message_id=message_id,
        conversation_id=conversation_id, sender_domain=sender_domain, sender_role=sender_role,
        recipient_domain=recipient_domain, recipient_role=recipient_role,
        time_stamp=time_stamp, payload_xml=xml, envelope=envelope, references=json.loads(refs),
        period=period, outcome=outcome, reasons=reasons, archived_at=archived_at,
        congestion_point=congestion_point, revision=revision)


def ctes(guard: str | None) -> str:
    """Common table expressions that archive the message of :func:`params` (``arc``, its id
    when it is new, and ``arc_refs``), if ``guard`` (an SQL condition) holds."""
    where = f" WHERE {guard}" if guard else ""
    return (
        f"arc AS (INSERT INTO archive ({_COLUMNS}, counterparty) SELECT "
        "%(a_direction)s::text, %(a_type)s::text, %(a_id)s::text, %(a_conversation)s::text, "
        "%(a_sender)s::text, %(a_sender_role)s::text, %(a_recipient)s::text, "
        "%(a_recipient_role)s::text, %(a_time)s::float8, %(a_xml)s::bytea, %(a_refs)s::text, "
        "%(a_period)s::text, %(a_outcome)s::text, %(a_reasons)s::text, %(a_at)s::float8, "
        f"%(a_cp)s::text, %(a_revision)s::integer, %(a_signed)s::bytea, "
        f"%(a_counterparty)s::text{where} "
        "ON CONFLICT (counterparty, message_id, direction) DO NOTHING RETURNING id), "
        "arc_refs AS (INSERT INTO archive_refs (message, key, ref_id) "
        "SELECT arc.id, refs.key, refs.value FROM arc, jsonb_each_text(%(a_refs)s::jsonb) refs)")


def params(kept: ArchivedMessage) -> dict[str, Any]:
    """The parameters of :func:`ctes` for a checked message with ``archived_at`` set."""
    return {
        "a_direction": kept.direction, "a_type": kept.message_type, "a_id": kept.message_id,
        "a_conversation": kept.conversation_id, "a_sender": kept.sender_domain,
        "a_sender_role": kept.sender_role, "a_recipient": kept.recipient_domain,
        "a_recipient_role": kept.recipient_role, "a_time": kept.time_stamp,
        "a_xml": b"", "a_signed": signed.pack(kept.envelope, kept.payload_xml),
        "a_refs": json.dumps(kept.references),
        "a_period": kept.period, "a_outcome": kept.outcome, "a_reasons": kept.reasons,
        "a_at": kept.archived_at, "a_cp": kept.congestion_point,
        "a_revision": kept.revision, "a_counterparty": kept.counterparty,
    }


#: mark outbox items delivered (as mark_delivered does), followed by a WHERE on their ids
DELIVER = ("UPDATE outbox SET state = 'delivered', body = '', claimed_until = 0, "
           "added_by = NULL, updated_at = %(now)s")


def add_statement(answers: bool, archive: bool, outcome: bool, delivered: bool = False) -> str:
    """The one statement of ``PostgreSQLStore.add_outgoing``: with ``answers``, mark the
    request ``%(sender)s, %(mid)s`` handled (``h``; nothing is queued if it is unknown); queue
    the item (``o``); with ``archive``, archive the message of :func:`params`; with
    ``outcome``, note the request's outcome; with ``delivered``, mark the items
    ``%(done)s`` delivered. It selects the new item's id (NULL: unknown)."""
    parts, guard = [], ""
    if answers:
        parts.append("h AS (UPDATE received SET handled_at = COALESCE(handled_at, %(now)s), "
                     "data = NULL WHERE sender_domain = %(sender)s AND message_id = %(mid)s "
                     "RETURNING 1)")
        guard = " WHERE EXISTS (SELECT 1 FROM h)"
    parts.append(
        "o AS (INSERT INTO outbox (message_id, message_type, sender_domain, recipient_domain, "
        "recipient_role, body, created_at, expires_at, attempts, next_attempt_at, state, "
        "last_error, last_status, updated_at, claimed_until, added_by) "
        "SELECT %(mid_)s::text, %(type)s::text, "
        "%(from)s::text, %(to)s::text, %(role)s::text, %(body)s::bytea, %(created)s::float8, "
        "%(expires)s::float8, %(attempts)s::integer, %(next)s::float8, %(state)s::text, "
        "%(error)s::text, %(status)s::integer, %(now)s::float8, %(claim)s::float8, "
        f"%(me)s::text{guard} RETURNING id)")
    if archive:
        parts.append(ctes("EXISTS (SELECT 1 FROM o)"))
    if answers and outcome:
        parts.append("c AS (UPDATE archive SET outcome = %(outcome)s, reasons = %(reasons)s "
                     "WHERE counterparty = %(sender)s AND message_id = %(mid)s AND "
                     "direction = 'in' AND EXISTS (SELECT 1 FROM h))")
    if delivered:  # guarded too: when nothing is queued (KeyError) nothing is written
        parts.append(f"d AS ({DELIVER} WHERE id = ANY(%(done)s) AND EXISTS (SELECT 1 FROM o))")
    return f"WITH {', '.join(parts)} SELECT (SELECT id FROM o)"


def archive(conn: Any, kept: ArchivedMessage) -> bool:
    """Archive a checked message unless its key is archived already: one statement."""
    row = conn.execute(f"WITH {ctes(None)} SELECT count(*) FROM arc", params(kept)).fetchone()
    return bool(row[0])


def set_outcome(conn: Any, key: tuple[str, str, str], outcome: str, reasons: str | None) -> None:
    direction, counterparty, message_id = key
    cursor = conn.execute(f"UPDATE archive SET outcome = %s, reasons = %s WHERE {_KEY}",
                          (outcome, reasons, counterparty, message_id, direction))
    if cursor.rowcount == 0:
        raise KeyError(f"no archived message {message_id} {direction} "
                       f"{'to' if direction == 'out' else 'from'} {counterparty}")


def find(conn: Any, counterparty: str, message_id: str,
         directions: tuple[str, ...]) -> ArchivedMessage | None:
    """The first of ``directions`` that has the message: one query."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM archive WHERE counterparty = %s AND message_id = %s "
        "AND direction = ANY(%s)", (counterparty, message_id, list(directions))).fetchall()
    by_direction = {row[0]: row for row in rows}
    for direction in directions:
        if direction in by_direction:
            return message(by_direction[direction])
    return None


def query(conn: Any, criteria: Query) -> list[ArchivedMessage]:
    sql, args = criteria.sql(_COLUMNS, "%s")
    return [message(row) for row in conn.execute(sql, args).fetchall()]


def highest_revision(conn: Any, direction: str, counterparty: str, message_type: str,
                     period: str, congestion_point: str | None,
                     excluding: str | None) -> int | None:
    """The highest revision among the messages of that kind (from the index)."""
    sql = ("SELECT max(revision) FROM archive WHERE revision IS NOT NULL AND direction = %s "
           "AND counterparty = %s AND message_type = %s AND period = %s AND ")
    args: list[Any] = [direction, counterparty, message_type, period]
    if congestion_point is None:
        sql += "congestion_point IS NULL"
    else:
        sql += "congestion_point = %s"
        args.append(congestion_point)
    if excluding is not None:
        sql += " AND message_id <> %s"
        args.append(excluding)
    row = conn.execute(sql, args).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def forget(conn: Any, before: float) -> int:
    """Delete the messages archived before ``before`` (their refs go by the cascade)."""
    return int(conn.execute("DELETE FROM archive WHERE archived_at < %s", (before,)).rowcount)
