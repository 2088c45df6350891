"""The durable store: outbox round trips, the received-message record, restarts (close and
reopen the same file), pruning, bad input and use from several threads."""
from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pyuftp.store import (
    MemoryStore,
    OutboxItem,
    SQLiteStore,
    Store,
    StoreError,
    open_store,
)

ROOT = Path(__file__).resolve().parent.parent


def item(n: int = 0, *, recipient: str = "dso.example.com", created_at: float = 1000.0,
         **fields) -> OutboxItem:
    values = dict(
        message_id=f"id-{n}", message_type="FlexOffer", sender_domain="agr.example.com",
        recipient_domain=recipient, recipient_role="DSO", body=b"<SignedMessage n='%d'/>" % n,
        created_at=created_at, expires_at=created_at + 3600,
    )
    values.update(fields)
    return OutboxItem(**values)


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path):
    made = SQLiteStore(tmp_path / "store.sqlite") if request.param == "sqlite" else MemoryStore()
    yield made
    made.close()


# --- outbox ---------------------------------------------------------------------------------

def test_add_due_and_marks_round_trip(store: Store):
    first, second, third = item(1), item(2), item(3, next_attempt_at=2000.0)
    ids = [store.add_outgoing(i) for i in (first, second, third)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert first.id == ids[0]  # the caller's item learns its id

    due = store.due_outgoing(1500.0)
    assert [i.message_id for i in due] == ["id-1", "id-2"]  # oldest first; id-3 is later
    assert due[0] == dataclasses.replace(first)
    assert store.next_due_time() == 0.0
    assert [i.message_id for i in store.due_outgoing(1500.0, limit=1)] == ["id-1"]
    assert [i.message_id for i in store.due_outgoing(1500.0, exclude_ids=[ids[0]])] == ["id-2"]
    assert [i.message_id for i in store.due_outgoing(2000.0, exclude_ids={ids[0]})] == ["id-2", "id-3"]

    store.mark_retry(ids[0], 1, 1700.0, "HTTP 503", 503)
    assert [i.message_id for i in store.due_outgoing(1500.0)] == ["id-2"]
    retried = store.due_outgoing(1700.0)[0]
    assert (retried.attempts, retried.next_attempt_at, retried.last_error, retried.last_status) \
        == (1, 1700.0, "HTTP 503", 503)

    store.mark_delivered(ids[1])
    store.mark_failed(ids[0], "HTTP 400: bad", 400)
    assert store.next_due_time() == 2000.0
    assert [i.message_id for i in store.outgoing("delivered")] == ["id-2"]
    failed = store.outgoing("failed")
    assert [(i.message_id, i.state, i.last_status) for i in failed] == [("id-1", "failed", 400)]
    assert [i.message_id for i in store.outgoing()] == ["id-1", "id-2", "id-3"]
    assert store.due_outgoing(10_000.0)[0].message_id == "id-3"

    store.mark_delivered(ids[2])
    assert store.next_due_time() is None
    assert store.due_outgoing(10_000.0) == []


def test_due_outgoing_leaves_out_excluded_peers(store: Store):
    for n, recipient in enumerate(["slow.example.com", "slow.example.com", "ok.example.com",
                                   "slow.example.com", "other.example.com"]):
        store.add_outgoing(item(n, recipient=recipient))
    slow = ("slow.example.com", "DSO")
    assert [i.message_id for i in store.due_outgoing(1500.0, exclude_peers=[slow])] \
        == ["id-2", "id-4"]
    # the role is part of the peer: the slow domain's DSO items are not an AGR's
    assert len(store.due_outgoing(1500.0, exclude_peers=[("slow.example.com", "AGR")])) == 5
    both = store.due_outgoing(1500.0, exclude_ids=[5], exclude_peers={slow, ("ok.example.com", "DSO")})
    assert both == []
    with pytest.raises(TypeError, match="exclude_peers"):
        store.due_outgoing(1500.0, exclude_peers=["slow.example.com"])


def test_a_decided_item_is_not_reopened(store: Store):
    delivered = store.add_outgoing(item(1))
    store.mark_delivered(delivered)
    # a late temporary failure (another process, a race) must not make it pending again
    store.mark_retry(delivered, 1, 0.0, "late", None)
    store.mark_failed(delivered, "late", None)
    assert store.outgoing()[0].state == "delivered"


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


def test_the_store_keeps_its_own_copy(store: Store):
    mine = item(1)
    store.add_outgoing(mine)
    mine.body = b"changed"
    mine.state = "failed"
    kept = store.outgoing()[0]
    assert (kept.body, kept.state) == (b"<SignedMessage n='1'/>", "pending")


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


# --- received -------------------------------------------------------------------------------

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


# --- restarts -------------------------------------------------------------------------------

def test_everything_survives_a_reopen(tmp_path):
    path = tmp_path / "restart.sqlite"
    first = SQLiteStore(path)
    pending, failed = first.add_outgoing(item(1)), first.add_outgoing(item(2))
    first.mark_retry(pending, 2, 1234.5, "timeout", None)
    first.mark_failed(failed, "HTTP 400", 400)
    first.record_received("agr.example.com", "in-1", "d1", b"<handled/>", 1.0)
    first.record_received("agr.example.com", "in-2", "d2", b"<not handled/>", 2.0)
    first.mark_handled("agr.example.com", "in-1")
    first.close()

    second = SQLiteStore(str(path))  # a str works as well as a Path
    try:
        items = second.outgoing()
        assert [(i.id, i.state, i.attempts, i.next_attempt_at, i.last_error, i.last_status)
                for i in items] == [(pending, "pending", 2, 1234.5, "timeout", None),
                                    (failed, "failed", 0, 0.0, "HTTP 400", 400)]
        assert items[0].body == b"<SignedMessage n='1'/>"
        assert second.unhandled() == [("agr.example.com", "in-2", b"<not handled/>")]
        assert second.record_received("agr.example.com", "in-1", "d1", b"", 3.0) == "duplicate"
        assert second.add_outgoing(item(3)) > failed  # ids go on, never reused
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
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", script, str(path)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "committed", child.stderr.read()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    reopened = SQLiteStore(path)
    try:
        assert [i.message_id for i in reopened.outgoing("pending")] == [f"k{n}" for n in range(5)]
        assert reopened.unhandled() == [("a", "in", b"data")]
    finally:
        reopened.close()


def test_sqlite_settings(tmp_path):
    path = tmp_path / "settings.sqlite"
    store = SQLiteStore(path, synchronous="full")
    store.close()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
    finally:
        raw.close()
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(path, synchronous="sometimes")
    with pytest.raises(ValueError, match="busy_timeout"):
        SQLiteStore(path, busy_timeout=-1)


def test_two_stores_on_one_file_overlap(tmp_path):
    """A new process may open the file while the old one still has it open."""
    path = tmp_path / "overlap.sqlite"
    old, new = SQLiteStore(path), SQLiteStore(path)
    try:
        old_id = old.add_outgoing(item(1))
        assert [i.id for i in new.outgoing()] == [old_id]
        new.mark_delivered(old_id)
        assert old.outgoing()[0].state == "delivered"
        assert old.record_received("a", "m", "d", b"x", 1.0) == "new"
        assert new.record_received("a", "m", "d", b"x", 1.0) == "duplicate"
    finally:
        old.close()
        new.close()


def test_not_a_store_and_newer_schema(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError, match="cannot use"):
        SQLiteStore(junk)
    assert junk.read_bytes().startswith(b"this is not a database")  # left alone

    newer = tmp_path / "newer.sqlite"
    raw = sqlite3.connect(newer)
    raw.execute("PRAGMA user_version = 99")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(newer)


def test_closed_store_says_so(store: Store):
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.add_outgoing(item(1))
    with pytest.raises(StoreError, match="closed"):
        store.unhandled()


def test_open_store(tmp_path):
    assert isinstance(open_store(None), MemoryStore)
    memory = MemoryStore()
    assert open_store(memory) is memory
    for path in (tmp_path / "a.sqlite", str(tmp_path / "b.sqlite")):
        opened = open_store(path)
        assert isinstance(opened, SQLiteStore)
        opened.close()
    with pytest.raises(TypeError):
        open_store(42)  # type: ignore[arg-type]


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, error, words", [
    ({"state": "sent"}, ValueError, "unknown state"),
    ({"body": "text, not bytes"}, TypeError, "body must be bytes"),
    ({"body": b""}, ValueError, "body is empty"),
    ({"message_id": ""}, ValueError, "message_id"),
    ({"recipient_domain": None}, TypeError, "recipient_domain"),
    ({"created_at": float("nan")}, ValueError, "created_at must be finite"),
    ({"expires_at": "soon"}, TypeError, "expires_at"),
    ({"attempts": -1}, ValueError, "attempts"),
    ({"last_status": 42}, ValueError, "status"),
    ({"id": 7}, ValueError, "stored already"),
])
def test_bad_items_are_refused_and_nothing_changes(store: Store, bad, error, words):
    store.add_outgoing(item(1))
    before = store.outgoing()
    with pytest.raises(error, match=words):
        store.add_outgoing(dataclasses.replace(item(2), **bad))
    assert store.outgoing() == before


def test_bad_arguments_are_refused_and_nothing_changes(store: Store):
    item_id = store.add_outgoing(item(1))
    store.record_received("a", "m", "d", b"x", 1.0)
    outbox_before, received_before = store.outgoing(), store.unhandled()
    with pytest.raises(ValueError, match="unknown state"):
        store.outgoing("done")
    with pytest.raises(KeyError, match="no outbox item 999"):
        store.mark_delivered(999)
    with pytest.raises(KeyError):
        store.mark_retry(999, 1, 1.0, "x", None)
    with pytest.raises(KeyError):
        store.mark_failed(999, "x", None)
    with pytest.raises(TypeError):
        store.mark_delivered("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="next_attempt_at must be finite"):
        store.mark_retry(item_id, 1, float("inf"), "x", None)
    with pytest.raises(ValueError, match="status"):
        store.mark_failed(item_id, "x", 7)
    with pytest.raises(TypeError, match="error must be a str"):
        store.mark_failed(item_id, None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        store.due_outgoing(1.0, limit=0)
    with pytest.raises(TypeError):
        store.due_outgoing(1.0, exclude_ids=["x"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="data must be bytes"):
        store.record_received("a", "m2", "d", "text", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="digest"):
        store.record_received("a", "m2", "", b"x", 1.0)
    with pytest.raises(KeyError, match="no received message"):
        store.mark_handled("a", "unknown")
    assert store.outgoing() == outbox_before
    assert store.unhandled() == received_before


def test_long_error_texts_are_cut(store: Store):
    item_id = store.add_outgoing(item(1))
    store.mark_retry(item_id, 1, 0.0, "x" * 100_000, 503)
    assert len(store.outgoing()[0].last_error) == 2000


def test_many_excluded_ids(store: Store):
    ids = [store.add_outgoing(item(n)) for n in range(1200)]
    due = store.due_outgoing(5000.0, limit=10, exclude_ids=ids[:1195])
    assert [i.id for i in due] == ids[1195:]


# --- threads --------------------------------------------------------------------------------

def test_concurrent_use_from_threads(store: Store):
    workers, each = 8, 40
    results: dict[int, list[str]] = {}
    ids: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(workers)

    def work(worker: int) -> None:
        try:
            start.wait(timeout=10)
            mine = []
            outcomes = []
            for n in range(each):
                mine.append(store.add_outgoing(item(worker * 1000 + n)))
                # every worker records the same ids: each must be "new" exactly once
                outcomes.append(store.record_received("agr.example.com", f"shared-{n}", "d",
                                                      b"x", 1.0))
                store.due_outgoing(5000.0, limit=5)
                if n % 2:
                    store.mark_delivered(mine[-1])
            with lock:
                ids.extend(mine)
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
    assert len(store.outgoing()) == workers * each
    assert len(store.outgoing("delivered")) == workers * each // 2
    for n in range(each):
        column = [results[w][n] for w in range(workers)]
        assert column.count("new") == 1 and column.count("duplicate") == workers - 1
