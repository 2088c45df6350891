"""``outbox list|show|retry|forget``: what a store holds to deliver, and the operator's
levers on it. The archive's commands are in :mod:`pyuftp.cli.archive`.

A SQLite store serves one process at a time: while a service runs on it these commands are
refused (the error names the process); stop the service first, or read a copy of the file.
"""
from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from ..exceptions import StoreError
from ._common import (BAD, OK, Bad, Commands, Progress, Usage, add_command, add_json,
                      duration, oneline, open_existing_store, print_json, when)

if TYPE_CHECKING:
    from ..store import OutboxItem, Store

LEASE = 120.0  # seconds a retried item is kept from other outboxes while this one posts it


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, metavar="URL",
                        help="the store: sqlite:///path.sqlite or a file path")


def item_record(item: OutboxItem) -> dict[str, Any]:
    """An item for printing: its fields, its body as a size."""
    return {"id": item.id, "state": item.state, "message_type": item.message_type,
            "message_id": item.message_id, "sender_domain": item.sender_domain,
            "recipient_domain": item.recipient_domain, "recipient_role": item.recipient_role,
            "attempts": item.attempts, "created_at": when(item.created_at),
            "next_attempt_at": when(item.next_attempt_at) if item.state == "pending" else None,
            "expires_at": when(item.expires_at), "last_status": item.last_status,
            "last_error": item.last_error, "body_bytes": len(item.body)}


def _find(store: Store, item_id: int) -> OutboxItem:
    found = [item for item in store.outgoing() if item.id == item_id]
    if not found:
        raise Bad(f"no outbox item {item_id}")
    return found[0]


# --- list, show -------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    with open_existing_store(args.store) as store:
        states = (None,) if args.state == "all" else (
            ("pending", "failed") if args.state is None else (args.state,))
        items = sorted((i for s in states for i in store.outgoing(s)), key=lambda i: i.id or 0)
    records = [item_record(item) for item in items]
    if args.json:
        print_json(records)
        return OK
    if not records:
        print("no items")
    for r in records:
        due = f"next {r['next_attempt_at']}" if r["next_attempt_at"] else r["state"]
        error = f" last error: {oneline(r['last_error'], 80)}" if r["last_error"] else ""
        print(f"{r['id']:>6} {r['state']:<9} {r['message_type']} {r['message_id']} -> "
              f"{r['recipient_domain']} ({r['recipient_role']}) attempts {r['attempts']}, "
              f"{due}{error}")
    return OK


def _show(args: argparse.Namespace) -> int:
    from ..message.json_form import to_jsonable
    from .messages import load

    with open_existing_store(args.store) as store:
        item = _find(store, args.id)
    record = item_record(item)
    if item.body:
        loaded = load(item.body)
        record["payload"] = {"message_type": loaded.message_type,
                             "payload": to_jsonable(loaded.payload)}
    if args.json:
        print_json(record)
        return OK
    for key, value in record.items():
        if key != "payload":
            print(f"{key + ':':<17} {oneline(value, 300) if value is not None else '-'}")
    if "payload" in record:
        from ._format import format_payload

        print(f"\n{loaded.message_type!r}")
        print(format_payload(loaded.message_type, loaded.payload))
    else:
        print("\n(the signed message is no longer kept: it was delivered)")
    return OK


# --- retry ------------------------------------------------------------------------------------


async def _post_each(store: Store, items: list[OutboxItem], url: str | None,
                     retry_for: float, progress: Progress) -> list[dict[str, Any]]:
    from ..exceptions import DeliveryError, TemporaryDeliveryError
    from ..sending.transport import Poster

    poster = Poster(timeout=30.0)
    results = []
    try:
        for item in items:
            assert item.id is not None
            now = time.time()
            # Due only after the lease while this process posts it: no outbox takes it meanwhile.
            store.retry_outgoing(item.id, now + (LEASE if url else 0.0), now + retry_for)
            result: dict[str, Any] = {"id": item.id, "message_id": item.message_id}
            if url is None:
                result["outcome"] = "requeued"
            else:
                try:
                    await poster.post_once(item.body, url)
                    store.mark_delivered(item.id)
                    result["outcome"] = "delivered"
                except DeliveryError as exc:
                    error, status = oneline(exc, 300), exc.status
                    if isinstance(exc, TemporaryDeliveryError):
                        store.mark_retry(item.id, item.attempts + 1, time.time() + 60.0,
                                         error, status)
                        result["outcome"] = "pending"
                    else:
                        store.mark_failed(item.id, error, status)
                        result["outcome"] = "failed"
                    result["error"] = error
            results.append(result)
            progress.step(f"item {item.id} ({item.message_type} {item.message_id})",
                          result["outcome"] + (f": {result['error']}" if "error" in result
                                               else ""))
    finally:
        await poster.close()
    return results


def _retry(args: argparse.Namespace) -> int:
    import asyncio

    from .net import checked_url

    if bool(args.ids) == args.all:
        raise Usage("give item ids or --all (every failed item), not both")
    url = checked_url(args.to) if args.to else None
    with open_existing_store(args.store) as store:
        items = store.outgoing("failed") if args.all else [_find(store, i) for i in args.ids]
        for item in items:
            if item.state == "delivered":
                raise Bad(f"outbox item {item.id} was delivered: nothing to retry")
            if url is not None and not item.body:
                raise Bad(f"outbox item {item.id} has no signed message to post")
        results = asyncio.run(_post_each(store, items, url, args.retry_for,
                                         Progress(len(items))))
    if args.json:
        print_json(results)
    else:
        for r in results:
            print(f"item {r['id']} ({r['message_id']}): {r['outcome']}"
                  + (f": {r['error']}" if "error" in r else ""))
        if url is None and results:
            print("requeued items are delivered by the service when it runs on this store")
    return OK if all(r["outcome"] in ("requeued", "delivered") for r in results) else BAD


# --- forget -----------------------------------------------------------------------------------


def _forget(args: argparse.Namespace) -> int:
    states = ("delivered", "failed") if args.state == "all" else (args.state,)
    before = time.time() - args.before
    with open_existing_store(args.store) as store:
        counts = {state: store.forget_outgoing(before, state) for state in states}
    if args.json:
        print_json({"before": when(before), "forgotten": counts})
    else:
        print(", ".join(f"{n} {state}" for state, n in counts.items())
              + f" item(s) last changed before {when(before)} forgotten")
    return OK


def add_outbox(commands: Commands[argparse.ArgumentParser]) -> None:
    group = add_command(
        commands, "outbox", "what is pending or failed, retry, forget",
        "Inspect and steer the outbox of a store: the signed messages waiting to be "
        "delivered (pending), given up on (failed) or delivered.", lambda _args: OK)
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    parser = add_command(actions, "list", "list the items (pending and failed by default)",
                         "List outbox items with their attempts, next attempt and last "
                         "error.", _list)
    add_store_option(parser)
    parser.add_argument("--state", choices=("pending", "failed", "delivered", "all"))
    add_json(parser)
    parser = add_command(actions, "show", "one item and the message it carries",
                         "Show one outbox item and the payload of its signed message.", _show)
    parser.add_argument("id", type=int, metavar="ID", help="the item's id (from list)")
    add_store_option(parser)
    add_json(parser)
    parser = add_command(
        actions, "retry", "try failed items again",
        "Make failed items pending again, with a new delivery window (--retry-for). Without "
        "--to the service delivers them when it next runs on the store; with --to URL this "
        "command posts each now, once, and records the outcome. Exit status 1 if a post "
        "failed.", _retry)
    parser.add_argument("ids", nargs="*", type=int, metavar="ID", help="the items' ids")
    parser.add_argument("--all", action="store_true", help="every failed item")
    add_store_option(parser)
    parser.add_argument("--to", metavar="URL", help="post the items to this endpoint now")
    parser.add_argument("--retry-for", type=duration, default=3600.0, metavar="DURATION",
                        help="how long the outbox keeps trying from now (default 1h)")
    add_json(parser)
    parser = add_command(actions, "forget", "delete old delivered and failed items",
                         "Delete delivered and failed items last changed before a time; "
                         "pending items are never deleted.", _forget)
    add_store_option(parser)
    parser.add_argument("--before", type=duration, required=True, metavar="DURATION",
                        help="older than this, e.g. 7d, 12h, P30D")
    parser.add_argument("--state", choices=("delivered", "failed", "all"), default="all")
    add_json(parser)


# --- store migrate ------------------------------------------------------------------------


def add_store(commands: Commands[argparse.ArgumentParser]) -> None:
    group = add_command(
        commands, "store", "manage a store (migrate its schema)",
        "Manage a store itself: 'store migrate URL' makes or upgrades its tables now (a "
        "store also does it on first use), e.g. before starting several instances.",
        lambda _args: OK)
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    parser = add_command(actions, "migrate", "make or upgrade the store's tables",
                         "Create the store's tables, or upgrade an older schema in place.",
                         _migrate)
    parser.add_argument("url", help="the store: postgresql://user@host/db, sqlite:///path")


def _migrate(args: argparse.Namespace) -> int:
    from ..store import open_store

    try:
        store = open_store(args.url)
    except ValueError as exc:
        raise Usage(str(exc)) from None
    except StoreError as exc:
        raise Bad(str(exc)) from None
    try:
        migrate = getattr(store, "migrate", None)  # SQLite and memory stores migrate on open
        found = migrate() if migrate is not None else None
    except StoreError as exc:
        raise Bad(str(exc)) from None
    finally:
        store.close()
    print(f"{store!r}: schema up to date" + (f" (was {found})" if found is not None else ""))
    return OK
