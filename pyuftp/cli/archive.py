"""``archive query|show|export``: the messages a store's archive keeps, found by party,
conversation, type and period; a conversation as a timeline; the original XML for an audit.

What is exported for each message (see docs/cli.rst): the payload XML exactly as it was
signed (sent) or as it arrived inside its verified SignedMessage (received), its SHA-256, its
times and outcome; and the whole SignedMessage, byte for byte as posted: the archive keeps it
with the XML (messages archived by an older pyuftp: only while the journal or the outbox
still has it). The archive keeps a received message only after its signature verified,
which the export says; with ``--key`` a kept SignedMessage is verified again.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
from typing import TYPE_CHECKING, Any

from ._common import (OK, Bad, Commands, Usage, add_command, add_json, message_type, oneline,
                      open_existing_store, print_json, public_key, when)
from .store import add_store_option

if TYPE_CHECKING:
    from ..signing.crypto import VerifyKey
    from ..store import ArchivedMessage, Store


def record(message: ArchivedMessage) -> dict[str, Any]:
    return {"direction": message.direction, "message_type": message.message_type,
            "message_id": message.message_id, "conversation_id": message.conversation_id,
            "sender": f"{message.sender_domain} ({message.sender_role})",
            "recipient": f"{message.recipient_domain} ({message.recipient_role})",
            "counterparty": message.counterparty, "time_stamp": when(message.time_stamp),
            "archived_at": when(message.archived_at), "period": message.period,
            "references": message.references, "outcome": message.outcome,
            "reasons": message.reasons}


def _time(text: str) -> float:
    """An ISO date or date-time (UTC unless it says), as unix time (an argparse type)."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def _date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date (YYYY-MM-DD)") from None


def _line(r: dict[str, Any]) -> str:
    arrow = "->" if r["direction"] == "out" else "<-"
    outcome = f"  {r['outcome']}" if r["outcome"] else ""
    reasons = f" ({oneline(r['reasons'], 120)})" if r["reasons"] else ""
    return (f"{r['time_stamp']} {arrow} {r['message_type']} {r['message_id']} "
            f"{r['sender']} to {r['recipient']}{outcome}{reasons}")


def _query(args: argparse.Namespace) -> int:
    with open_existing_store(args.store) as store:
        try:
            found = store.query(
                conversation_id=args.conversation, message_type=args.type,
                counterparty=args.counterparty, direction=args.direction,
                references=args.references, period_from=args.period_from,
                period_to=args.period_to, since=args.since, until=args.until,
                limit=args.limit)
        except ValueError as exc:
            raise Usage(str(exc)) from None
    records = [record(m) for m in found]
    if args.json:
        print_json(records)
    else:
        for r in records:
            print(f"{_line(r)}  [conversation {r['conversation_id']}]")
        if not records:
            print("no messages")
    return OK


def _show(args: argparse.Namespace) -> int:
    with open_existing_store(args.store) as store:
        found = store.query(conversation_id=args.conversation)
    if not found:
        raise Bad(f"no archived messages in conversation {oneline(args.conversation, 80)}")
    records = [record(m) for m in found]
    if args.json:
        print_json(records)
        return OK
    print(f"conversation {args.conversation}: {len(records)} message(s)")
    for r in records:
        print("  " + _line(r))
    return OK


# --- export -----------------------------------------------------------------------------------


def _signed(store: Store, message: ArchivedMessage) -> bytes | None:
    """The SignedMessage of ``message`` if the store still keeps it: in the archive (kept
    with the XML since schema 5), else for the messages archived before, in the journal or
    the outbox while they are there."""
    if message.envelope is not None:
        return message.envelope
    if message.direction == "in":
        for sender, message_id, data in store.unhandled():
            if (sender, message_id) == (message.sender_domain, message.message_id) and data:
                return data
        return None
    for item in store.outgoing():
        if (item.message_id, item.recipient_domain) == (message.message_id,
                                                        message.recipient_domain) and item.body:
            return item.body
    return None


def _verify(signed: bytes, payload_xml: bytes, keys: list[VerifyKey]) -> dict[str, Any]:
    from ..signing.envelope import open_envelope, open_message
    from ..exceptions import PyUFTPError

    if not keys:
        return {"checked": False}
    for key in keys:
        try:
            received = open_message(open_envelope(signed), key)
        except PyUFTPError:
            continue
        return {"checked": True, "valid": received.payload_xml == payload_xml,
                "key": key.public_key_cs1}
    return {"checked": True, "valid": False, "key": None}


def exported(store: Store, message: ArchivedMessage, keys: list[VerifyKey]) -> dict[str, Any]:
    """One message as ``archive export`` writes it."""
    entry = record(message)
    signed = _signed(store, message)
    entry["payload_sha256"] = hashlib.sha256(message.payload_xml).hexdigest()
    entry["payload_xml"] = message.payload_xml.decode("utf-8", "replace")
    entry["signed_xml"] = signed.decode("utf-8", "replace") if signed else None
    entry["verification"] = {
        "on_receipt": ("the signature verified when it arrived (the archive keeps no other)"
                       if message.direction == "in" else "signed by this party when sent"),
        "now": (_verify(signed, message.payload_xml, keys) if signed else
                {"checked": False, "why": "the SignedMessage is no longer kept"})}
    return entry


def _export(args: argparse.Namespace) -> int:
    keys = [public_key(value) for value in args.key]
    with open_existing_store(args.store) as store:
        if args.message:
            if not args.counterparty:
                raise Usage("--message needs --counterparty")
            one = store.find(args.counterparty, args.message, args.direction)
            found = [one] if one is not None else []
        elif args.conversation:
            found = store.query(conversation_id=args.conversation, direction=args.direction)
        else:
            raise Usage("give --conversation, or --message with --counterparty")
        if not found:
            raise Bad("no such archived message")
        entries = [exported(store, m, keys) for m in found]
    document = {"exported_at": when(dt.datetime.now(dt.timezone.utc).timestamp()),
                "messages": entries}
    if args.out:
        _write(args.out, document)
    if args.json or not args.out:
        print_json(document)
    else:
        print(f"exported {len(entries)} message(s) to {args.out}")
    return OK


def _write(folder: str, document: dict[str, Any]) -> None:
    """The export as files: the XML of each message as it was, and export.json."""
    import json

    try:
        os.makedirs(folder, exist_ok=True)
        for number, entry in enumerate(document["messages"], 1):
            stem = os.path.join(folder, f"{number:03d}-{entry['direction']}-"
                                        f"{entry['message_type']}")
            with open(stem + ".xml", "w", encoding="utf-8") as file:
                file.write(entry["payload_xml"])
            if entry["signed_xml"]:
                with open(stem + ".signed.xml", "w", encoding="utf-8") as file:
                    file.write(entry["signed_xml"])
        with open(os.path.join(folder, "export.json"), "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2, ensure_ascii=False)
    except OSError as exc:
        raise Usage(f"cannot write to {folder!r}: {exc.strerror or exc}") from None


def add_archive(commands: Commands[argparse.ArgumentParser]) -> None:
    group = add_command(
        commands, "archive", "find archived messages, timelines, exports for audits",
        "Look into the archive of a store: every message sent and received.",
        lambda _args: OK)
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    parser = add_command(actions, "query", "find messages",
                         "Find archived messages; every criterion given must hold.", _query)
    add_store_option(parser)
    parser.add_argument("--counterparty", metavar="DOMAIN", help="the other party")
    parser.add_argument("--conversation", metavar="ID", help="the conversation id")
    parser.add_argument("--type", type=message_type, help="the message type")
    parser.add_argument("--direction", choices=("in", "out"), help="received or sent")
    parser.add_argument("--references", metavar="MESSAGE_ID",
                        help="messages that name this message id")
    parser.add_argument("--period-from", type=_date, metavar="DATE", help="Period from")
    parser.add_argument("--period-to", type=_date, metavar="DATE", help="Period to")
    parser.add_argument("--since", type=_time, metavar="TIME", help="TimeStamp from (ISO)")
    parser.add_argument("--until", type=_time, metavar="TIME", help="TimeStamp to (ISO)")
    parser.add_argument("--limit", type=int, default=1000, help="at most (default 1000)")
    add_json(parser)
    parser = add_command(actions, "show", "a conversation as a timeline",
                         "Show a conversation as a timeline: who sent what, when, and the "
                         "outcome.", _show)
    parser.add_argument("conversation", metavar="CONVERSATION_ID")
    add_store_option(parser)
    add_json(parser)
    parser = add_command(
        actions, "export", "the original XML, verification and times (audit)",
        "Export archived messages for an audit or a settlement dispute: the payload XML "
        "exactly as signed, its SHA-256, the SignedMessage as posted (verified again "
        "with --key), the times and the outcome; as JSON, and with --out as files.", _export)
    add_store_option(parser)
    parser.add_argument("--conversation", metavar="ID", help="every message of it")
    parser.add_argument("--message", metavar="ID", help="one message (with --counterparty)")
    parser.add_argument("--counterparty", metavar="DOMAIN", help="the other party")
    parser.add_argument("--direction", choices=("in", "out"), help="received or sent")
    parser.add_argument("--key", action="append", default=[], metavar="PUBLIC",
                        help="a public key to verify kept SignedMessages with (repeatable)")
    parser.add_argument("--out", metavar="FOLDER", help="also write the files here")
    add_json(parser, "the export (the default without --out)")
