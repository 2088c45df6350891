"""The durable store.

Shared behaviour, run on every backend (the ``store`` fixture: add a backend to BACKENDS and
all of it runs on that one too): the outbox with its claims, the journal, atomic answers, bad
input, closing, threads. Then what only one backend has: the SQLite file (restarts, the
one-process lock, file modes, integrity, a full disk, errors, migration) and the memory
store's caps."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import select
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

import pg

from pyuftp.store import (
    MemoryStore,
    OutboxItem,
    SQLiteStore,
    Store,
    StoreError,
    open_store,
    owned,
)

ROOT = Path(__file__).resolve().parents[2]
HOLDER = Path(__file__).resolve().parents[1] / "store_holder.py"
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))

BACKENDS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda tmp_path: SQLiteStore(tmp_path / "store.sqlite"),
    "sqlite-threaded": lambda tmp_path: SQLiteStore(tmp_path / "store.sqlite", threaded=True),
    "memory": lambda tmp_path: MemoryStore(),
    "postgresql": lambda tmp_path: pg.fresh_store(),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request, tmp_path):
    made = BACKENDS[request.param](tmp_path)
    yield made
    made.close()
    pg.dropped(made)


def item(n: int = 0, *, recipient: str = "dso.example.com", created_at: float = 1000.0,
         **fields) -> OutboxItem:
    values = dict(
        message_id=f"id-{n}", message_type="FlexOffer", sender_domain="agr.example.com",
        recipient_domain=recipient, recipient_role="DSO", body=b"<SignedMessage n='%d'/>" % n,
        created_at=created_at, expires_at=created_at + 3600,
    )
    values.update(fields)
    return OutboxItem(**values)


def names(items: list[OutboxItem]) -> list[str]:
    return [i.message_id for i in items]


# --- outbox: claims -------------------------------------------------------------------------

def test_add_claim_and_marks_round_trip(store: Store):
    first, second, third = item(1), item(2), item(3, next_attempt_at=2000.0)
    ids = [store.add_outgoing(i) for i in (first, second, third)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert first.id == ids[0]  # the caller's item learns its id
    assert store.next_due_time() == 0.0

    due = store.claim_due(1500.0)
    assert names(due) == ["id-1", "id-2"]  # lowest id first; id-3 is later
    assert due[0] == dataclasses.replace(first)
    assert store.claim_due(1500.0) == []  # claimed: not handed out twice

    store.mark_retry(ids[0], 1, 1700.0, "HTTP 503", 503)  # ends the claim
    assert store.claim_due(1600.0) == []
    retried = store.claim_due(1700.0)[0]
    assert (retried.attempts, retried.next_attempt_at, retried.last_error, retried.last_status) \
        == (1, 1700.0, "HTTP 503", 503)

    store.mark_delivered(ids[1])
    store.mark_failed(ids[0], "HTTP 400: bad", 400)
    assert store.next_due_time() == 2000.0
    assert names(store.outgoing("delivered")) == ["id-2"]
    failed = store.outgoing("failed")
    assert [(i.message_id, i.state, i.last_status) for i in failed] == [("id-1", "failed", 400)]
    assert names(store.outgoing()) == ["id-1", "id-2", "id-3"]
    assert names(store.claim_due(10_000.0)) == ["id-3"]

    store.mark_delivered(ids[2])
    assert store.next_due_time() is None
    assert store.claim_due(20_000.0) == []


def test_a_claim_lasts_its_lease_unless_released_or_marked(store: Store):
    ids = [store.add_outgoing(item(n)) for n in range(4)]
    assert names(store.claim_due(100.0, lease=50.0)) == ["id-0", "id-1", "id-2", "id-3"]
    assert store.claim_due(149.9) == []                  # every one is claimed still
    assert store.next_due_time() == 150.0                # when the claims end
    store.release([ids[1], 999])                         # unknown ids are ignored
    store.mark_retry(ids[2], 1, 120.0, "503", 503)       # a retry ends the claim too
    assert store.next_due_time() == 0.0
    assert names(store.claim_due(110.0, lease=5.0)) == ["id-1"]
    # id-1's claim ended at 115, id-0's and id-3's at 150: claimable again
    assert names(store.claim_due(120.0, lease=100.0)) == ["id-1", "id-2"]
    assert names(store.claim_due(150.0, lease=100.0)) == ["id-0", "id-3"]
    assert store.claim_due(200.0) == []
    assert store.next_due_time() == 220.0
    store.mark_delivered(ids[0])
    store.mark_failed(ids[3], "no", 400)
    store.release(ids)                                   # a decided item stays decided
    assert [i.state for i in store.outgoing()] == ["delivered", "pending", "pending", "failed"]
    assert store.next_due_time() == 0.0
    assert names(store.claim_due(130.0)) == ["id-1", "id-2"]


def test_claim_due_order_limit_and_excluded_peers(store: Store):
    recipients = ["slow.example.com", "slow.example.com", "ok.example.com", "slow.example.com",
                  "other.example.com", "ok.example.com"]
    for n, recipient in enumerate(recipients):
        store.add_outgoing(item(n, recipient=recipient))
    slow = ("slow.example.com", "DSO")
    assert names(store.claim_due(1.0, limit=1, exclude_peers=[slow])) == ["id-2"]
    # the role is part of the peer: the slow domain's DSO items are not an AGR's
    assert names(store.claim_due(1.0, limit=2, exclude_peers={("slow.example.com", "AGR")})) \
        == ["id-0", "id-1"]
    assert store.claim_due(1.0, exclude_peers={slow, ("ok.example.com", "DSO"),
                                               ("other.example.com", "DSO")}) == []
    assert names(store.claim_due(1.0)) == ["id-3", "id-4", "id-5"]
    with pytest.raises(TypeError, match="exclude_peers"):
        store.claim_due(1.0, exclude_peers=["slow.example.com"])


def test_claims_in_large_numbers_go_in_id_order(store: Store):
    ids = [store.add_outgoing(item(n, next_attempt_at=float(n % 7))) for n in range(300)]
    seen: list[int] = []
    for _ in range(10):  # bounded: 300 items, 40 at a time
        batch = store.claim_due(10.0, limit=40)
        if not batch:
            break
        assert [i.id for i in batch] == sorted(i.id for i in batch)
        seen += [i.id for i in batch]
    assert seen == ids  # each exactly once, oldest first


# --- outbox: items ---------------------------------------------------------------------------

def test_a_decided_item_is_not_reopened(store: Store):
    delivered = store.add_outgoing(item(1))
    store.mark_delivered(delivered)
    # a late temporary failure (another process, a race) must not make it pending again
    store.mark_retry(delivered, 1, 0.0, "late", None)
    store.mark_failed(delivered, "late", None)
    assert store.outgoing()[0].state == "delivered"
    assert store.claim_due(10.0) == [] and store.next_due_time() is None


def test_a_delivered_item_drops_its_body_and_keeps_the_rest(store: Store):
    first, second = item(1), item(2)
    store.add_outgoing(first)
    store.add_outgoing(second)
    store.mark_delivered(first.id)
    kept = {i.message_id: i for i in store.outgoing()}
    assert kept["id-1"].body == b"" and kept["id-1"].state == "delivered"
    assert kept["id-1"].message_type == "FlexOffer" and kept["id-1"].recipient_domain == "dso.example.com"
    assert kept["id-2"].body == second.body  # a pending one keeps every byte


def test_body_is_kept_byte_for_byte(store: Store):
    body = bytes(range(256)) * 40 + b"\x00\x00"
    store.add_outgoing(item(1, body=body))
    assert store.outgoing()[0].body == body
    assert store.claim_due(5000.0)[0].body == body


def test_the_store_keeps_its_own_copy(store: Store):
    mine = item(1)
    store.add_outgoing(mine)
    mine.body = b"changed"
    mine.state = "failed"
    handed_out = store.claim_due(5000.0)[0]
    handed_out.attempts = 99
    kept = store.outgoing()[0]
    assert (kept.body, kept.state, kept.attempts) == (b"<SignedMessage n='1'/>", "pending", 0)


def test_forget_outgoing_only_decided_ones(store: Store):
    ids = [store.add_outgoing(item(n)) for n in range(4)]
    store.mark_delivered(ids[0])
    store.mark_failed(ids[1], "no", 400)
    future = time.time() + 10
    assert store.forget_outgoing(future) == 1
    assert store.forget_outgoing(future, "failed") == 1
    assert [i.id for i in store.outgoing()] == ids[2:]
    with pytest.raises(ValueError, match="pending"):
        store.forget_outgoing(future, "pending")
    assert store.forget_outgoing(0.0) == 0
    assert store.add_outgoing(item(9)) > ids[-1]  # ids are never reused


# --- the journal -----------------------------------------------------------------------------

def test_record_received_new_duplicate_conflict(store: Store):
    assert store.record_received("agr.example.com", "m1", "d1", b"<one/>", 1.0) == "new"
    assert store.record_received("agr.example.com", "m1", "d1", b"<one/>", 2.0) == "duplicate"
    assert store.record_received("agr.example.com", "m1", "d2", b"<other/>", 3.0) == "conflict"
    # the id is per sender: another sender may use it
    assert store.record_received("dso.example.com", "m1", "d2", b"<dso/>", 4.0) == "new"
    # a conflict leaves the first record alone
    assert store.unhandled() == [("agr.example.com", "m1", b"<one/>"),
                                 ("dso.example.com", "m1", b"<dso/>")]
    store.mark_handled("agr.example.com", "m1")
    store.mark_handled("agr.example.com", "m1")  # twice is fine
    assert store.unhandled() == [("dso.example.com", "m1", b"<dso/>")]
    # handled, yet still known: a repeat is still a duplicate
    assert store.record_received("agr.example.com", "m1", "d1", b"<one/>", 5.0) == "duplicate"
    assert store.record_received("agr.example.com", "m1", "dX", b"<x/>", 5.0) == "conflict"


def test_unhandled_in_the_order_received(store: Store):
    for message_id, at in (("late", 30.0), ("early", 10.0), ("tie-1", 20.0), ("tie-2", 20.0)):
        store.record_received("a", message_id, "d", message_id.encode(), at)
    assert [m for _, m, _ in store.unhandled()] == ["early", "tie-1", "tie-2", "late"]


def test_forget_received_prunes_only_old_handled(store: Store):
    for n, at in enumerate((10.0, 20.0, 30.0)):
        store.record_received("agr.example.com", f"m{n}", "d", b"x", at)
    store.mark_handled("agr.example.com", "m0")
    store.mark_handled("agr.example.com", "m2")
    assert store.forget_received(25.0) == 1           # m0; m1 is unhandled, m2 is too new
    assert store.forget_received(25.0) == 0
    assert store.unhandled() == [("agr.example.com", "m1", b"x")]
    assert store.record_received("agr.example.com", "m0", "d", b"x", 40.0) == "new"  # forgotten
    assert store.record_received("agr.example.com", "m2", "d", b"x", 40.0) == "duplicate"


def test_a_response_is_queued_and_its_request_handled_at_once(store: Store):
    store.record_received("agr.example.com", "request", "d", b"<req/>", 1.0)
    store.record_received("agr.example.com", "other", "d", b"<other/>", 2.0)
    response = item(1)
    item_id = store.add_outgoing(response, answers=("agr.example.com", "request"))
    assert response.id == item_id and names(store.outgoing()) == ["id-1"]
    assert store.unhandled() == [("agr.example.com", "other", b"<other/>")]
    # answering a handled request again is allowed (mark_handled is idempotent too)
    store.add_outgoing(item(2), answers=("agr.example.com", "request"))

    # neither: an unknown request stores no response, and a bad response marks nothing
    before = store.outgoing()
    with pytest.raises(KeyError, match="no received message"):
        store.add_outgoing(item(3), answers=("agr.example.com", "unknown"))
    with pytest.raises(KeyError):
        store.add_outgoing(item(3), answers=("dso.example.com", "other"))  # another sender's
    with pytest.raises(ValueError, match="body is empty"):
        store.add_outgoing(item(3, body=b""), answers=("agr.example.com", "other"))
    with pytest.raises(TypeError, match="answers"):
        store.add_outgoing(item(3), answers=["agr.example.com", "other"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="message_id"):
        store.add_outgoing(item(3), answers=("agr.example.com", ""))
    assert store.outgoing() == before
    assert store.unhandled() == [("agr.example.com", "other", b"<other/>")]


# --- closing, calling, bad input, threads ----------------------------------------------------

def test_closed_store_says_so(store: Store):
    assert not store.closed
    store.close()
    store.close()  # idempotent
    assert store.closed
    with pytest.raises(StoreError, match="closed"):  # not on a new worker thread either
        asyncio.run(store.call(store.unhandled))
    for call in (lambda: store.add_outgoing(item(1)), store.unhandled, store.next_due_time,
                 lambda: store.claim_due(1.0), lambda: store.mark_handled("a", "m")):
        with pytest.raises(StoreError, match="closed"):
            call()


def test_a_store_is_a_context_manager(tmp_path):
    with MemoryStore() as memory:
        memory.add_outgoing(item(1))
    assert memory.closed
    with SQLiteStore(tmp_path / "ctx.sqlite") as sqlite:
        sqlite.add_outgoing(item(1))
    assert sqlite.closed
    with SQLiteStore(tmp_path / "ctx.sqlite") as again:  # closed: the file is free again
        assert names(again.outgoing()) == ["id-1"]


def test_call_runs_inline_or_on_the_store_worker(store: Store):
    async def twice(value: int) -> int:
        await asyncio.sleep(0)
        return value * 2

    async def main() -> tuple[str, str]:
        here = threading.current_thread().name
        there = await store.call(lambda: threading.current_thread().name)
        assert await store.call(twice, 21) == 42  # an awaitable result is awaited
        assert await store.call(store.record_received, "a", "m", "d", b"x", 1.0) == "new"
        item_id = await store.call(store.add_outgoing, item(1))
        assert [i.id for i in await store.call(store.claim_due, 5000.0, 10)] == [item_id]
        return here, there

    here, there = asyncio.run(asyncio.wait_for(main(), 10))
    if store.blocking:
        assert there.startswith("pyuftp-store")
    else:
        assert there == here


@pytest.mark.parametrize("bad, error, words", [
    ({"state": "sent"}, ValueError, "unknown state"),
    ({"body": "text, not bytes"}, TypeError, "body must be bytes"),
    ({"body": b""}, ValueError, "body is empty"),
    ({"message_id": ""}, ValueError, "message_id"),
    ({"message_type": "a\x00b"}, ValueError, "message_type"),
    ({"recipient_domain": None}, TypeError, "recipient_domain"),
    ({"created_at": float("nan")}, ValueError, "created_at must be finite"),
    ({"expires_at": "soon"}, TypeError, "expires_at"),
    ({"next_attempt_at": True}, TypeError, "next_attempt_at"),
    ({"attempts": -1}, ValueError, "attempts"),
    ({"last_status": 42}, ValueError, "status"),
    ({"id": 7}, ValueError, "stored already"),
])
def test_bad_items_are_refused_and_nothing_changes(store: Store, bad, error, words):
    store.add_outgoing(item(1))
    before = store.outgoing()
    with pytest.raises(error, match=words):
        store.add_outgoing(dataclasses.replace(item(2), **bad))
    with pytest.raises(TypeError, match="OutboxItem"):
        store.add_outgoing({"message_id": "x"})  # type: ignore[arg-type]
    assert store.outgoing() == before


def test_bad_arguments_are_refused_and_nothing_changes(store: Store):
    item_id = store.add_outgoing(item(1))
    store.record_received("a", "m", "d", b"x", 1.0)
    outbox_before, received_before = store.outgoing(), store.unhandled()
    refused: list[tuple[type[Exception], str, Callable[[], Any]]] = [
        (ValueError, "unknown state", lambda: store.outgoing("done")),
        (KeyError, "no outbox item 999", lambda: store.mark_delivered(999)),
        (KeyError, "999", lambda: store.mark_retry(999, 1, 1.0, "x", None)),
        (KeyError, "999", lambda: store.mark_failed(999, "x", None)),
        (TypeError, "item_id", lambda: store.mark_delivered("1")),
        (ValueError, "item_id", lambda: store.mark_delivered(0)),
        (ValueError, "next_attempt_at must be finite",
         lambda: store.mark_retry(item_id, 1, float("inf"), "x", None)),
        (ValueError, "status", lambda: store.mark_failed(item_id, "x", 7)),
        (TypeError, "error must be a str", lambda: store.mark_failed(item_id, None, None)),
        (ValueError, "limit", lambda: store.claim_due(1.0, limit=0)),
        (ValueError, "lease", lambda: store.claim_due(1.0, lease=0.0)),
        (TypeError, "now", lambda: store.claim_due("now")),
        (TypeError, "item_ids", lambda: store.release("12")),
        (TypeError, "item_ids", lambda: store.release([item_id, "x"])),
        (ValueError, "before must be finite", lambda: store.forget_received(float("nan"))),
        (TypeError, "data must be bytes", lambda: store.record_received("a", "m2", "d", "t", 1.0)),
        (ValueError, "digest", lambda: store.record_received("a", "m2", "", b"x", 1.0)),
        (TypeError, "sender_domain", lambda: store.record_received(None, "m2", "d", b"x", 1.0)),
        (KeyError, "no received message", lambda: store.mark_handled("a", "unknown")),
    ]
    for error, words, call in refused:
        with pytest.raises(error, match=words):
            call()
    assert store.outgoing() == outbox_before
    assert store.unhandled() == received_before
    assert names(store.claim_due(1.0)) == ["id-1"]  # nor was anything claimed


def test_long_error_texts_are_cut(store: Store):
    item_id = store.add_outgoing(item(1))
    store.mark_retry(item_id, 1, 0.0, "x" * 100_000, 503)
    assert len(store.outgoing()[0].last_error) == 2000


def test_concurrent_use_from_threads(store: Store):
    workers, each = 8, 40
    results: dict[int, list[str]] = {}
    ids: list[int] = []
    claimed: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(workers)

    def work(worker: int) -> None:
        try:
            start.wait(timeout=10)
            mine, outcomes, got = [], [], []
            for n in range(each):
                mine.append(store.add_outgoing(item(worker * 1000 + n)))
                # every worker records the same ids: each must be "new" exactly once
                outcomes.append(store.record_received("agr.example.com", f"shared-{n}", "d",
                                                      b"x", 1.0))
                got += [i.id for i in store.claim_due(5000.0, limit=3)]
                if n % 2:
                    store.mark_delivered(mine[-1])
            with lock:
                ids.extend(mine)
                claimed.extend(got)
                results[worker] = outcomes
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors
    assert len(ids) == len(set(ids)) == workers * each
    assert len(claimed) == len(set(claimed)), "an item was claimed twice"
    assert len(store.outgoing()) == workers * each
    assert len(store.outgoing("delivered")) == workers * each // 2
    for n in range(each):
        column = [results[w][n] for w in range(workers)]
        assert column.count("new") == 1 and column.count("duplicate") == workers - 1


# --- open_store -------------------------------------------------------------------------------

def test_open_store_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert isinstance(open_store(None), MemoryStore)
    assert isinstance(open_store("memory:"), MemoryStore)
    memory = MemoryStore()
    assert open_store(memory) is memory
    assert owned(None) and owned("memory:") and owned(tmp_path) and not owned(memory)
    for spec, path in [(tmp_path / "a.sqlite", tmp_path / "a.sqlite"),
                       (str(tmp_path / "b.sqlite"), tmp_path / "b.sqlite"),
                       ("sqlite:///relative.sqlite", tmp_path / "relative.sqlite"),
                       (f"sqlite:///{tmp_path / 'absolute.sqlite'}", tmp_path / "absolute.sqlite")]:
        opened = open_store(spec)
        assert isinstance(opened, SQLiteStore) and Path(opened.path).resolve() == path
        opened.close()
    pytest.importorskip("psycopg")
    # a PostgreSQL URL opens a PostgreSQLStore; nothing listens on port 1 of loopback, so
    # using it is a StoreError (temporary), never a driver error
    for spec in ("postgresql://user@127.0.0.1:1/uftp?pool_timeout=1",
                 "postgres://127.0.0.1:1/uftp?pool_timeout=1&schema=pyuftp"):
        opened = open_store(spec)
        assert type(opened).__name__ == "PostgreSQLStore" and owned(spec)
        with pytest.raises(StoreError, match="127.0.0.1:1.*record_received failed"):
            opened.record_received("a", "m", "d", b"x", 1.0)
        opened.close()
    with pytest.raises(ValueError, match="schema must be a lower-case SQL name"):
        open_store("postgresql://127.0.0.1:1/uftp?schema=x;drop")
    with pytest.raises(ValueError, match="URL's pool_size must be a number"):
        open_store("postgresql://127.0.0.1:1/uftp?pool_size=many")
    with pytest.raises(ValueError, match="handling_lease must be a positive"):
        open_store("postgresql://127.0.0.1:1/uftp?handling_lease=0")
    for spec in ("mysql://db/uftp", "sqlite://relative.sqlite", "sqlite:///", ""):
        with pytest.raises(ValueError, match="sqlite:///"):
            open_store(spec)
    with pytest.raises(TypeError):
        open_store(42)  # type: ignore[arg-type]


# --- SQLite: restarts and settings ------------------------------------------------------------

def test_everything_survives_a_reopen(tmp_path):
    path = tmp_path / "restart.sqlite"
    first = SQLiteStore(path)
    pending, failed, claimed = (first.add_outgoing(item(n)) for n in (1, 2, 3))
    first.mark_retry(pending, 2, 1234.5, "timeout", None)
    first.mark_failed(failed, "HTTP 400", 400)
    first.record_received("agr.example.com", "in-1", "d1", b"<handled/>", 1.0)
    first.record_received("agr.example.com", "in-2", "d2", b"<not handled/>", 2.0)
    first.mark_handled("agr.example.com", "in-1")
    assert [i.id for i in first.claim_due(100.0, lease=1e6)] == [claimed]
    first.close()  # "dies" with id-3 claimed

    second = SQLiteStore(str(path))  # a str works as well as a Path
    try:
        items = second.outgoing()
        assert [(i.id, i.state, i.attempts, i.next_attempt_at, i.last_error, i.last_status)
                for i in items] == [(pending, "pending", 2, 1234.5, "timeout", None),
                                    (failed, "failed", 0, 0.0, "HTTP 400", 400),
                                    (claimed, "pending", 0, 0.0, None, None)]
        assert items[0].body == b"<SignedMessage n='1'/>"
        # the lock says no one else has the file: the dead process's claim is void
        assert [i.id for i in second.claim_due(100.0)] == [claimed]
        assert second.unhandled() == [("agr.example.com", "in-2", b"<not handled/>")]
        assert second.record_received("agr.example.com", "in-1", "d1", b"", 3.0) == "duplicate"
        assert second.add_outgoing(item(4)) > claimed  # ids go on, never reused
    finally:
        second.close()


def test_a_commit_survives_sigkill(tmp_path):
    """What add_outgoing returned is on disk, even if the process dies right after."""
    path = tmp_path / "killed.sqlite"
    script = (
        "import sys, time\n"
        "from pyuftp.store import SQLiteStore, OutboxItem\n"
        "s = SQLiteStore(sys.argv[1])\n"
        "for n in range(5):\n"
        "    s.add_outgoing(OutboxItem('k%d' % n, 'FlexOffer', 'a', 'b', 'DSO', b'x', 1.0, 2.0))\n"
        "s.record_received('a', 'in', 'd', b'data', 1.0)\n"
        "print('committed', flush=True)\n"
        "time.sleep(30)\n"
    )
    with subprocess.Popen([sys.executable, "-c", script, str(path)], env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        try:
            assert read_line(child, 20) == "committed", child.stderr.read()
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
    with SQLiteStore(path) as reopened:
        assert names(reopened.outgoing("pending")) == [f"k{n}" for n in range(5)]
        assert reopened.unhandled() == [("a", "in", b"data")]


def test_sqlite_settings(tmp_path):
    path = tmp_path / "settings.sqlite"
    store = SQLiteStore(path, synchronous="full")
    assert store.blocking is False  # inline by default
    store.close()
    with SQLiteStore(path, threaded=True, check_integrity=False) as threaded:
        assert threaded.blocking is True
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 5
    finally:
        raw.close()
    with pytest.raises(StoreError, match="cannot"):
        SQLiteStore(tmp_path / "no such folder" / "store.sqlite")
    for bad, words in [({"synchronous": "sometimes"}, "synchronous"),
                       ({"busy_timeout": -1}, "busy_timeout"), ({"threaded": 1}, "threaded")]:
        with pytest.raises((ValueError, TypeError), match=words):
            SQLiteStore(tmp_path / "other.sqlite", **bad)


# --- SQLite: one process per file ------------------------------------------------------------

def read_line(process: subprocess.Popen, timeout: float) -> str:
    """The next line of the process's output, or '' if none came in ``timeout`` seconds."""
    if not select.select([process.stdout], [], [], timeout)[0]:
        return ""
    return process.stdout.readline().strip()


def test_a_store_in_use_by_a_live_process_is_refused_and_freed_when_it_dies(tmp_path):
    path = tmp_path / "held.sqlite"
    with subprocess.Popen([sys.executable, str(HOLDER), str(path), "30"], env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as holder:
        try:
            assert read_line(holder, 20) == "open", holder.stderr.read()
            with pytest.raises(StoreError, match=rf"in use by another process \(pid "
                                                 rf"{holder.pid}\); one process per SQLite "
                                                 r"store .* PostgreSQL"):
                SQLiteStore(path)
            with pytest.raises(StoreError, match="in use"):
                open_store(f"sqlite:///{path}")
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=10)
    assert holder.returncode == -signal.SIGKILL
    with SQLiteStore(path) as store:  # the OS dropped the dead process's lock
        assert names(store.outgoing()) == ["held"]


def test_one_store_object_per_file_in_a_process(tmp_path):
    path = tmp_path / "twice.sqlite"
    first = SQLiteStore(path)
    try:
        with pytest.raises(StoreError, match=rf"in use by another store object of this process "
                                             rf"\(pid {os.getpid()}\)"):
            SQLiteStore(path)
        assert names(first.outgoing()) == []  # the first one is unharmed
    finally:
        first.close()
    SQLiteStore(path).close()  # closed, it is free
    one, two = SQLiteStore(":memory:"), SQLiteStore(":memory:")  # nothing to share: no lock
    one.close()
    two.close()


# --- SQLite: files ---------------------------------------------------------------------------

def test_new_files_are_private_and_existing_modes_are_kept(tmp_path):
    path = tmp_path / "private.sqlite"
    umask = os.umask(0o022)
    try:
        with SQLiteStore(path) as store:
            store.add_outgoing(item(1))
            store.record_received("a", "m", "d", b"x", 1.0)
            for suffix in ("", "-wal", "-shm", ".lock"):
                mode = stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode)
                assert mode == 0o600, f"{suffix or 'the store'}: {mode:o}"
        shared = tmp_path / "shared.sqlite"
        sqlite3.connect(shared).close()
        os.chmod(shared, 0o640)
        with SQLiteStore(shared) as store:
            store.add_outgoing(item(1))
        assert stat.S_IMODE(os.stat(shared).st_mode) == 0o640  # the owner chose: left alone
    finally:
        os.umask(umask)


def test_not_a_store_and_newer_schema(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError, match="not a pyuftp store"):
        SQLiteStore(junk)
    assert junk.read_bytes().startswith(b"this is not a database")  # left alone

    other = tmp_path / "other-app.sqlite"
    raw = sqlite3.connect(other)
    raw.execute("CREATE TABLE invoices (n INTEGER)")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="not a pyuftp store"):
        SQLiteStore(other)

    newer = tmp_path / "newer.sqlite"
    raw = sqlite3.connect(newer)
    raw.execute("PRAGMA user_version = 99")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(newer)
    with pytest.raises(StoreError, match="newer"):  # each refusal let go of the lock
        SQLiteStore(newer)


def test_a_corrupt_store_is_refused_at_once(tmp_path):
    path = tmp_path / "corrupt.sqlite"
    with SQLiteStore(path) as store:
        for n in range(200):
            store.add_outgoing(item(n, body=os.urandom(1500)))
            store.record_received("a", f"m{n}", "d" * 64, b"x" * 500, float(n))
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    assert len(data) // page_size > 100  # many pages: 3 and 4 are well inside
    noise = random.Random(4)
    for page in (3, 4):
        start = (page - 1) * page_size
        data[start:start + page_size] = noise.randbytes(page_size)
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"corrupt\.sqlite.*the file is corrupt") as refused:
        SQLiteStore(path)
    assert "quick_check" in str(refused.value) or "malformed" in str(refused.value)
    with pytest.raises(StoreError, match="corrupt"):  # again, not "in use": the lock was freed
        SQLiteStore(path)


def test_a_full_disk_is_a_store_error_and_nothing_is_half_written(tmp_path):
    path = tmp_path / "full.sqlite"
    with SQLiteStore(path) as store:
        kept = store.add_outgoing(item(1))
        store.record_received("agr.example.com", "request", "d", b"<req/>", 1.0)
        outbox, journal = store.outgoing(), store.unhandled()
        conn = store._conn  # the one way to make SQLite run out of room for real: a page cap
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 4}")
        big = os.urandom(200_000)
        with pytest.raises(StoreError, match=r"full\.sqlite.*add_outgoing.*the disk is full"):
            store.add_outgoing(item(2, body=big))
        # with answers: the response does not fit, so the request stays unhandled
        with pytest.raises(StoreError, match="full"):
            store.add_outgoing(item(3, body=big), answers=("agr.example.com", "request"))
        assert store.outgoing() == outbox and store.unhandled() == journal
        small = store.add_outgoing(item(4), answers=("agr.example.com", "request"))
        assert [i.id for i in store.outgoing()] == [kept, small]
        assert store.unhandled() == []
    with SQLiteStore(path) as reopened:  # and the file is sound
        assert names(reopened.outgoing()) == ["id-1", "id-4"]


def test_sqlite_errors_are_store_errors(tmp_path):
    path = tmp_path / "busy.sqlite"
    with SQLiteStore(path, busy_timeout=0) as store:
        store.add_outgoing(item(1))
        other = sqlite3.connect(path, isolation_level=None)  # e.g. someone's sqlite3 shell
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="locked by another process") as refused:
                store.mark_delivered(1)
            assert str(path) in str(refused.value)
            other.execute("ROLLBACK")
        finally:
            other.close()
        store.mark_delivered(1)  # nothing was left half done
        assert store.outgoing()[0].state == "delivered"


V1_SCHEMA = (  # the statements of pyuftp's first store schema, as they were
    """CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL,
        message_type TEXT NOT NULL, sender_domain TEXT NOT NULL,
        recipient_domain TEXT NOT NULL, recipient_role TEXT NOT NULL, body BLOB NOT NULL,
        created_at REAL NOT NULL, expires_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        last_error TEXT, last_status INTEGER, updated_at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS outbox_age ON outbox (state, updated_at)",
    """CREATE TABLE IF NOT EXISTS received (
        sender_domain TEXT NOT NULL, message_id TEXT NOT NULL, digest TEXT NOT NULL,
        data BLOB, received_at REAL NOT NULL, handled_at REAL,
        PRIMARY KEY (sender_domain, message_id))""",
    "CREATE INDEX IF NOT EXISTS received_unhandled ON received (received_at) WHERE handled_at IS NULL",
    "CREATE INDEX IF NOT EXISTS received_age ON received (received_at)",
)


def test_a_version_1_file_is_migrated_in_place(tmp_path):
    path = tmp_path / "v1.sqlite"
    raw = sqlite3.connect(path)
    for statement in V1_SCHEMA:
        raw.execute(statement)
    raw.execute("PRAGMA user_version = 1")
    raw.execute("INSERT INTO outbox (message_id, message_type, sender_domain, recipient_domain, "
                "recipient_role, body, created_at, expires_at, attempts, next_attempt_at, state, "
                "updated_at) VALUES ('old', 'FlexOffer', 'a', 'b', 'DSO', x'01', 1, 2, 3, 4, "
                "'pending', 5)")
    raw.execute("INSERT INTO received VALUES ('a', 'in', 'd', x'02', 1.0, NULL)")
    raw.commit()
    raw.close()
    with SQLiteStore(path) as store:
        [old] = store.outgoing()
        assert (old.message_id, old.attempts, old.next_attempt_at, old.body) \
            == ("old", 3, 4.0, b"\x01")
        assert store.unhandled() == [("a", "in", b"\x02")]
        assert store.next_due_time() == 4.0
        assert names(store.claim_due(10.0)) == ["old"] and store.claim_due(10.0) == []
        store.add_outgoing(item(1))
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 5
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        raw.close()


# --- memory: caps -----------------------------------------------------------------------------

def test_memory_keeps_at_most_max_received_handled_records(caplog):
    store = MemoryStore(max_received=1000)
    with caplog.at_level(logging.WARNING, logger="pyuftp.store"):
        for n in range(5000):
            assert store.record_received("agr.example.com", f"m{n}", "d", b"x", float(n)) == "new"
            store.mark_handled("agr.example.com", f"m{n}")
    assert len(store._seen) == 1000
    assert store.record_received("agr.example.com", "m4999", "d", b"x", 1.0) == "duplicate"
    assert store.record_received("agr.example.com", "m4000", "d", b"x", 1.0) == "duplicate"
    assert store.record_received("agr.example.com", "m3999", "d", b"x", 1.0) == "new"  # dropped
    assert store.record_received("agr.example.com", "m0", "d", b"x", 1.0) == "new"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # once per 10 minutes, not once per record
    assert "covers only the last 1000 handled messages" in warnings[0]


def test_memory_never_drops_unhandled_records_or_pending_items():
    store = MemoryStore(max_received=10, max_kept=5)
    for n in range(50):
        store.record_received("a", f"m{n}", "d", b"data %d" % n, float(n))
    assert len(store.unhandled()) == 50  # all waiting to be handled: all kept
    for n in range(50):
        store.mark_handled("a", f"m{n}")
    assert len(store._seen) == 10 and store.unhandled() == []
    ids = [store.add_outgoing(item(n)) for n in range(30)]
    for item_id in ids[:20]:
        if item_id % 2:
            store.mark_delivered(item_id)
        else:
            store.mark_failed(item_id, "no", 400)
    kept = store.outgoing()
    assert [i.id for i in kept if i.state != "pending"] == ids[15:20]  # the 5 newest decided
    assert [i.id for i in kept if i.state == "pending"] == ids[20:]
    store.add_outgoing(item(99, state="delivered"))  # born decided: counted too
    assert len(store.outgoing()) == 15 and ids[15] not in [i.id for i in store.outgoing()]


def test_memory_per_record_and_per_kept_item(capsys):
    """The figures in MemoryStore's docstring, measured."""
    count = 20_000
    domains = [f"party{n:02d}.example.com" for n in range(20)]  # a few peers, as in life
    store = MemoryStore()
    ids = [str(uuid.uuid4()) for _ in range(count)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n, message_id in enumerate(ids):
            store.record_received(domains[n % 20], message_id, "ab" * 32, b"<x/>" * 100, 1e9 + n)
            store.mark_handled(domains[n % 20], message_id)
        per_record = (tracemalloc.get_traced_memory()[0] - before) / count

        before = tracemalloc.get_traced_memory()[0]
        for n in range(count):  # the id a new object each, as from a parsed message
            item_id = store.add_outgoing(item(n, message_id=str(uuid.UUID(int=n)),
                                              recipient=domains[n % 20], body=b"x" * 4000))
            store.mark_delivered(item_id)
        per_item = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
    with capsys.disabled():
        print(f"\nMemoryStore: {per_record:.0f} B per handled received record, "
              f"{per_item:.0f} B per delivered item")
    assert per_record < 260 and per_item < 600
