"""The store's archive of every message sent and received (issue #10).

Shared behaviour first, on every backend of test_store.BACKENDS (the ``store`` fixture); then
what only one backend has: the SQLite file (restarts, migration, indexes) and the memory
store's cap and size."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import threading
import time
import tracemalloc
import uuid
from typing import Any, Callable

import pytest

import pg
from test_store import BACKENDS

from pyuftp.store import (
    DIRECTIONS,
    OUTCOMES,
    Archive,
    ArchivedMessage,
    MemoryStore,
    SQLiteStore,
    Store,
    StoreError,
    check_archived,
)
from pyuftp.store import memory_archive

AGR, DSO, CRO = "agr.example.com", "dso.example.com", "cro.example.com"


@pytest.fixture(params=sorted(BACKENDS))
def store(request, tmp_path):
    made = BACKENDS[request.param](tmp_path)
    yield made
    made.close()
    pg.dropped(made)


def message(message_id: str = "m1", *, direction: str = "in", peer: str = AGR,
            **fields: Any) -> ArchivedMessage:
    """A FlexOffer received from (or sent to) ``peer``; we are the DSO (or the AGR)."""
    ours = DSO if peer != DSO else AGR
    sender, recipient = (peer, ours) if direction == "in" else (ours, peer)
    values: dict[str, Any] = dict(
        direction=direction, message_type="FlexOffer", message_id=message_id,
        conversation_id="c1", sender_domain=sender, sender_role="AGR" if sender == AGR else "DSO",
        recipient_domain=recipient, recipient_role="DSO" if recipient == DSO else "AGR",
        time_stamp=1000.0, payload_xml=b"<FlexOffer MessageID='%s'/>" % message_id.encode(),
        references={"flex_request_message_id": "req-1"}, period="2026-11-24")
    values.update(fields)
    return ArchivedMessage(**values)


def ids(found: list[ArchivedMessage]) -> list[str]:
    return [m.message_id for m in found]


def everything(store: Store) -> list[tuple[Any, ...]]:
    """The whole archive, comparable before and after (archived_at included)."""
    return [dataclasses.astuple(m) for m in store.query()]


# --- archive and find -------------------------------------------------------------------------

def test_the_contract(store: Store):
    assert isinstance(store, Archive)
    assert DIRECTIONS == ("out", "in") and OUTCOMES == ("Accepted", "Rejected", "Revoked")
    assert message(direction="in").counterparty == AGR   # the sender of what we received
    assert message(direction="out").counterparty == AGR  # the recipient of what we sent
    assert message(direction="out", peer=DSO).counterparty == DSO


def test_archive_and_find_in_both_directions(store: Store):
    received = message("m1", direction="in")
    sent = message("m1", direction="out", message_type="FlexOfferResponse",
                   references={"flex_offer_message_id": "m1"}, period=None)
    before = time.time()
    assert store.archive(received) is True
    assert store.archive(sent) is True
    after = time.time()
    assert received.archived_at == 0.0  # the caller's object is not the store's

    got_in = store.find(AGR, "m1", "in")
    assert got_in is not None and before <= got_in.archived_at <= after
    assert got_in == dataclasses.replace(received, archived_at=got_in.archived_at)
    got_out = store.find(AGR, "m1", "out")
    assert got_out == dataclasses.replace(sent, archived_at=got_out.archived_at)
    assert store.find(AGR, "m1") == got_out  # no direction: the one sent first
    assert store.find(AGR, "m2") is None
    assert store.find(CRO, "m1") is None  # the index is (counterparty, message id)
    store.archive(message("only-in", direction="in"))
    assert store.find(AGR, "only-in").direction == "in"
    assert store.find(AGR, "only-in", direction="out") is None


def test_handed_out_messages_are_copies(store: Store):
    mine = message("m1", references={"d_prognosis_message_id": "p1"})
    store.archive(mine)
    mine.references["d_prognosis_message_id"] = "changed"
    mine.payload_xml = b"<changed/>"
    got = store.find(AGR, "m1")
    got.references["extra"] = "x"
    got.outcome = "Accepted"
    again = store.find(AGR, "m1")
    assert again.references == {"d_prognosis_message_id": "p1"}
    assert again.payload_xml == b"<FlexOffer MessageID='m1'/>" and again.outcome is None


def test_archive_is_idempotent_by_direction_counterparty_and_message_id(store: Store):
    assert store.archive(message("m1", time_stamp=1.0)) is True
    first = store.find(AGR, "m1")
    assert store.archive(message("m1", time_stamp=2.0, payload_xml=b"<other/>")) is False
    assert store.find(AGR, "m1") == first  # the first one kept, untouched
    assert store.archive(message("m1", direction="out")) is True  # another direction
    assert store.archive(message("m1", peer=CRO)) is True          # another counterparty
    assert len(store.query()) == 3


def test_payload_references_and_text_round_trip(store: Store):
    payload = bytes(range(256)) * 20 + "<é ü 漢/>".encode()
    references = {"flex_request_message_id": "r-1", "d_prognosis_message_id": "p-1",
                  "contract_id": "ç-é \"quoted\" \\ back"}
    store.archive(message("m1", payload_xml=payload, references=references,
                          reasons=None, outcome=None))
    got = store.find(AGR, "m1")
    assert got.payload_xml == payload and got.references == references
    assert list(got.references) == list(references)  # the order too
    store.archive(message("m2", references={}, period=None))
    got = store.find(AGR, "m2")
    assert got.references == {} and got.period is None


def test_a_period_is_kept_as_an_iso_date(store: Store):
    store.archive(message("m1", period="20261124"))  # also ISO 8601 (date.fromisoformat)
    assert store.find(AGR, "m1").period == "2026-11-24"
    assert ids(store.query(period_from="2026-11-24", period_to="2026-11-24")) == ["m1"]


# --- outcomes ---------------------------------------------------------------------------------

def test_set_outcome(store: Store):
    store.archive(message("m1"))
    store.archive(message("m1", direction="out"))
    store.set_outcome("in", AGR, "m1", "Rejected", "price too high")
    got = store.find(AGR, "m1", "in")
    assert (got.outcome, got.reasons) == ("Rejected", "price too high")
    assert store.find(AGR, "m1", "out").outcome is None  # the other direction untouched
    store.set_outcome("in", AGR, "m1", "Accepted")  # the latest answer stands
    got = store.find(AGR, "m1", "in")
    assert (got.outcome, got.reasons) == ("Accepted", None)
    store.set_outcome("out", AGR, "m1", "Revoked", "x" * 100_000)
    assert len(store.find(AGR, "m1", "out").reasons) == 2000
    with pytest.raises(KeyError, match="no archived message m2"):
        store.set_outcome("in", AGR, "m2", "Accepted")
    with pytest.raises(KeyError):
        store.set_outcome("in", CRO, "m1", "Accepted")
    store.archive(message("m3", outcome="Accepted"))  # an outcome known when archived
    assert store.find(AGR, "m3").outcome == "Accepted"


# --- query ------------------------------------------------------------------------------------

def fill(store: Store) -> None:
    """A small archive, archived in this order (the time stamps are not in order)."""
    rows = [
        # id, direction, peer, type, conversation, time, period, references
        ("o1", "in", AGR, "FlexOffer", "c1", 100.0, "2026-11-01",
         {"flex_request_message_id": "rq"}),
        ("o2", "in", AGR, "FlexOffer", "c2", 300.0, "2026-11-15", {}),
        ("o3", "in", CRO, "FlexOffer", "c3", 200.0, "2026-11-15", {}),
        ("r1", "out", AGR, "FlexOfferResponse", "c1", 150.0, None, {"flex_offer_message_id": "o1"}),
        ("f1", "out", AGR, "FlexOrder", "c1", 250.0, "2026-11-01",
         {"flex_offer_message_id": "o1", "d_prognosis_message_id": "p1"}),
        ("o4", "in", AGR, "FlexOffer", "c4", 300.0, "2026-12-01", {}),  # ties o2: archived later
        ("f2", "out", AGR, "FlexOrder", "c2", 400.0, "2026-11-15", {"flex_offer_message_id": "o2"}),
    ]
    for message_id, direction, peer, kind, conversation, at, period, refs in rows:
        assert store.archive(message(message_id, direction=direction, peer=peer,
                                     message_type=kind, conversation_id=conversation,
                                     time_stamp=at, period=period, references=refs))


def test_query_each_criterion_alone(store: Store):
    fill(store)
    assert ids(store.query()) == ["o1", "r1", "o3", "f1", "o2", "o4", "f2"]
    assert ids(store.query(conversation_id="c1")) == ["o1", "r1", "f1"]
    assert ids(store.query(message_type="FlexOrder")) == ["f1", "f2"]
    assert ids(store.query(counterparty=CRO)) == ["o3"]
    assert ids(store.query(direction="out")) == ["r1", "f1", "f2"]
    assert ids(store.query(references="o1")) == ["r1", "f1"]
    assert ids(store.query(references="p1")) == ["f1"]
    assert ids(store.query(period_from="2026-11-15")) == ["o3", "o2", "o4", "f2"]
    assert ids(store.query(period_to="2026-11-15")) == ["o1", "o3", "f1", "o2", "f2"]
    assert ids(store.query(since=250.0)) == ["f1", "o2", "o4", "f2"]   # inclusive
    assert ids(store.query(until=200.0)) == ["o1", "r1", "o3"]         # inclusive
    assert ids(store.query(limit=2)) == ["o1", "r1"]
    for empty in (dict(conversation_id="c9"), dict(message_type="FlexRequest"),
                  dict(counterparty="nobody.example.com"), dict(references="unknown"),
                  dict(period_from="2027-01-01"), dict(since=1000.0)):
        assert store.query(**empty) == [], empty


def test_query_criteria_combined(store: Store):
    fill(store)
    # the audit of the issue: every FlexOffer from an AGR for a period range, in one call
    assert ids(store.query(counterparty=AGR, direction="in", message_type="FlexOffer",
                           period_from="2026-11-01", period_to="2026-11-30")) == ["o1", "o2"]
    assert ids(store.query(references="o1", message_type="FlexOrder")) == ["f1"]
    assert ids(store.query(conversation_id="c1", direction="out", limit=1)) == ["r1"]
    assert ids(store.query(references="o1", conversation_id="c2")) == []
    assert ids(store.query(since=150.0, until=300.0, direction="in")) == ["o3", "o2", "o4"]
    assert ids(store.query(period_from="2026-11-15", period_to="2026-11-15",
                           counterparty=AGR)) == ["o2", "f2"]
    assert ids(store.query(message_type="FlexOffer", since=300.0, limit=1)) == ["o2"]


def test_query_order_is_time_stamp_then_the_order_archived(store: Store):
    for n, at in enumerate([5.0, 1.0, 5.0, 3.0, 5.0, 1.0]):
        store.archive(message(f"m{n}", time_stamp=at))
    assert ids(store.query()) == ["m1", "m5", "m3", "m0", "m2", "m4"]
    assert ids(store.query(conversation_id="c1", limit=4)) == ["m1", "m5", "m3", "m0"]
    assert ids(store.query(references="req-1", since=5.0)) == ["m0", "m2", "m4"]


def test_a_message_naming_an_id_twice_is_found_once(store: Store):
    store.archive(message("m1", references={"a_message_id": "x", "b_message_id": "x"}))
    assert ids(store.query(references="x")) == ["m1"]


def test_query_from_asyncio(store: Store):
    fill(store)

    async def main() -> tuple[list[str], str | None]:
        late = message("late", conversation_id="c9", time_stamp=999.0)
        assert await store.call(store.archive, late) is True
        found = await store.call(lambda: store.query(conversation_id="c1"))
        got = await store.call(store.find, AGR, "late")
        return ids(found), got.message_id if got else None

    assert asyncio.run(main()) == (["o1", "r1", "f1"], "late")


# --- forget -----------------------------------------------------------------------------------

def test_forget_archived_by_when_archived(store: Store, monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    store.archive(message("old", references={"flex_offer_message_id": "x"}))
    clock[0] += 100
    store.archive(message("new", references={"flex_offer_message_id": "x"}, time_stamp=1.0))
    assert store.forget_archived(1_000_000.0) == 0      # strictly before
    assert store.forget_archived(1_000_050.0) == 1
    assert ids(store.query()) == ["new"] and store.find(AGR, "old") is None
    assert ids(store.query(references="x")) == ["new"]  # its references went with it
    assert ids(store.query(conversation_id="c1")) == ["new"]
    assert store.archive(message("old")) is True        # forgotten: new again
    assert store.forget_archived(clock[0] + 1) == 2
    assert store.query() == [] and store.query(references="x") == []


# --- bad input, closing, threads --------------------------------------------------------------

BAD_MESSAGES = [
    ({"direction": "sent"}, ValueError, "direction must be 'in' or 'out'"),
    ({"direction": None}, ValueError, "direction"),
    ({"message_type": ""}, ValueError, "message_type"),
    ({"message_id": None}, TypeError, "message_id"),
    ({"conversation_id": "a\x00b"}, ValueError, "conversation_id"),
    ({"sender_domain": 7}, TypeError, "sender_domain"),
    ({"sender_role": ""}, ValueError, "sender_role"),
    ({"recipient_domain": b"dso"}, TypeError, "recipient_domain"),
    ({"recipient_role": None}, TypeError, "recipient_role"),
    ({"time_stamp": "2026-11-24T10:00:00Z"}, TypeError, "time_stamp"),
    ({"time_stamp": float("inf")}, ValueError, "time_stamp must be finite"),
    ({"payload_xml": "<FlexOffer/>"}, TypeError, "payload_xml must be bytes"),
    ({"payload_xml": b""}, ValueError, "payload_xml is empty"),
    ({"references": [("a", "b")]}, TypeError, "references must be a dict"),
    ({"references": {"key": 5}}, TypeError, "references"),
    ({"references": {"": "x"}}, ValueError, "references key"),
    ({"period": "24-11-2026"}, ValueError, "period must be an ISO date"),
    ({"period": 20261124}, TypeError, "period"),
    ({"outcome": "Maybe"}, ValueError, "outcome must be one of"),
    ({"reasons": "why"}, ValueError, "outcome"),  # reasons without an outcome
    ({"outcome": "Rejected", "reasons": 5}, TypeError, "reasons"),
]


@pytest.mark.parametrize("bad, error, words", BAD_MESSAGES)
def test_bad_messages_are_refused_and_nothing_changes(store: Store, bad, error, words):
    store.archive(message("kept"))
    before = everything(store)
    with pytest.raises(error, match=words):
        store.archive(dataclasses.replace(message("new"), **bad))
    assert everything(store) == before
    with pytest.raises(TypeError, match="ArchivedMessage"):
        store.archive({"message_id": "x"})  # type: ignore[arg-type]


def test_bad_arguments_are_refused_and_nothing_changes(store: Store):
    fill(store)
    before = everything(store)
    refused: list[tuple[type[Exception], str, Callable[[], Any]]] = [
        (ValueError, "direction", lambda: store.set_outcome("both", AGR, "o1", "Accepted")),
        (TypeError, "counterparty", lambda: store.set_outcome("in", None, "o1", "Accepted")),
        (ValueError, "message_id", lambda: store.set_outcome("in", AGR, "", "Accepted")),
        (ValueError, "outcome", lambda: store.set_outcome("in", AGR, "o1", "accepted")),
        (TypeError, "reasons", lambda: store.set_outcome("in", AGR, "o1", "Rejected", 42)),
        (KeyError, "no archived message", lambda: store.set_outcome("out", AGR, "o1", "Accepted")),
        (TypeError, "counterparty", lambda: store.find(5, "o1")),
        (ValueError, "message_id", lambda: store.find(AGR, "")),
        (ValueError, "direction", lambda: store.find(AGR, "o1", "IN")),
        (TypeError, "conversation_id", lambda: store.query(conversation_id=1)),
        (ValueError, "message_type", lambda: store.query(message_type="")),
        (TypeError, "counterparty", lambda: store.query(counterparty=[AGR])),
        (ValueError, "direction", lambda: store.query(direction="sent")),
        (ValueError, "references", lambda: store.query(references="")),
        (ValueError, "period_from must be an ISO date", lambda: store.query(period_from="Nov")),
        (TypeError, "period_to", lambda: store.query(period_to=20261130)),
        (ValueError, "period_from 2026-12-01 is after period_to",
         lambda: store.query(period_from="2026-12-01", period_to="2026-11-01")),
        (TypeError, "since", lambda: store.query(since="yesterday")),
        (ValueError, "until must be finite", lambda: store.query(until=float("nan"))),
        (ValueError, "since 5.0 is after until", lambda: store.query(since=5.0, until=1.0)),
        (ValueError, "limit", lambda: store.query(limit=0)),
        (TypeError, "limit", lambda: store.query(limit=True)),
        (TypeError, "before", lambda: store.forget_archived(None)),
        (ValueError, "before must be finite", lambda: store.forget_archived(float("inf"))),
        (TypeError, "positional", lambda: store.query("c1")),
    ]
    for error, words, call in refused:
        with pytest.raises(error, match=words):
            call()
    assert everything(store) == before


def test_closed_store_says_so(store: Store):
    store.archive(message("m1"))
    store.close()
    for call in (lambda: store.archive(message("m2")), lambda: store.find(AGR, "m1"),
                 lambda: store.query(), lambda: store.set_outcome("in", AGR, "m1", "Accepted"),
                 lambda: store.forget_archived(1.0)):
        with pytest.raises(StoreError, match="closed"):
            call()


def test_concurrent_archiving_stores_each_key_once(store: Store):
    workers, each = 8, 30
    results: dict[int, list[bool]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def work(worker: int) -> None:
        try:
            start.wait(timeout=10)
            results[worker] = [store.archive(message(f"m{n}", time_stamp=float(n)))
                               for n in range(each)]
            store.query(conversation_id="c1", limit=5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    for n in range(each):
        assert [results[w][n] for w in range(workers)].count(True) == 1
    assert ids(store.query()) == [f"m{n}" for n in range(each)]


def test_check_archived_is_exported_and_copies():
    mine = message("m1", references={"k": "v"})
    checked = check_archived(mine)
    assert checked == mine and checked is not mine and checked.references is not mine.references


# --- SQLite: restarts, migration, indexes -----------------------------------------------------

def test_the_archive_survives_a_restart(tmp_path):
    path = tmp_path / "archive.sqlite"
    with SQLiteStore(path) as first:
        fill(first)
        first.set_outcome("in", AGR, "o1", "Rejected", "too expensive")
        before = everything(first)
    with SQLiteStore(str(path)) as second:
        assert everything(second) == before
        got = second.find(AGR, "o1")
        assert (got.outcome, got.reasons) == ("Rejected", "too expensive")
        assert got.references == {"flex_request_message_id": "rq"}
        assert ids(second.query(references="o1")) == ["r1", "f1"]
        assert second.archive(message("o1", peer=AGR, conversation_id="c1")) is False
        assert second.archive(message("new")) is True


V2_SCHEMA = (  # pyuftp's store schema version 2, as it was
    """CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL,
        message_type TEXT NOT NULL, sender_domain TEXT NOT NULL,
        recipient_domain TEXT NOT NULL, recipient_role TEXT NOT NULL, body BLOB NOT NULL,
        created_at REAL NOT NULL, expires_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        last_error TEXT, last_status INTEGER, updated_at REAL NOT NULL,
        claimed_until REAL NOT NULL DEFAULT 0)""",
    """CREATE INDEX outbox_ready ON outbox (state, max(next_attempt_at,
        claimed_until), recipient_domain, recipient_role, next_attempt_at, claimed_until)""",
    "CREATE INDEX outbox_age ON outbox (state, updated_at)",
    """CREATE TABLE received (
        sender_domain TEXT NOT NULL, message_id TEXT NOT NULL, digest TEXT NOT NULL,
        data BLOB, received_at REAL NOT NULL, handled_at REAL,
        PRIMARY KEY (sender_domain, message_id))""",
    "CREATE INDEX received_unhandled ON received (received_at) WHERE handled_at IS NULL",
    "CREATE INDEX received_age ON received (received_at)",
)


def test_a_version_2_file_is_migrated_in_place(tmp_path):
    path = tmp_path / "v2.sqlite"
    raw = sqlite3.connect(path)
    for statement in V2_SCHEMA:
        raw.execute(statement)
    raw.execute("PRAGMA user_version = 2")
    raw.execute("INSERT INTO outbox (message_id, message_type, sender_domain, recipient_domain, "
                "recipient_role, body, created_at, expires_at, attempts, next_attempt_at, state, "
                "updated_at) VALUES ('old', 'FlexOffer', 'a', 'b', 'DSO', x'01', 1, 2, 3, 4, "
                "'pending', 5)")
    raw.execute("INSERT INTO received VALUES ('a', 'in', 'd', x'02', 1.0, NULL)")
    raw.commit()
    raw.close()
    with SQLiteStore(path) as store:
        [old] = store.outgoing()
        assert (old.message_id, old.attempts, old.body) == ("old", 3, b"\x01")
        assert store.unhandled() == [("a", "in", b"\x02")]
        assert store.query() == []
        fill(store)
        assert ids(store.query(references="o1")) == ["r1", "f1"]
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 5
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
        assert {"archive", "archive_refs", "archive_refs_id", "archive_conversation",
                "archive_type", "archive_refs_gone"} <= tables
    finally:
        raw.close()
    with SQLiteStore(path) as again:  # version 3 opens as it is
        assert len(again.query()) == 7


def test_sqlite_queries_use_the_indexes(tmp_path):
    with SQLiteStore(tmp_path / "plan.sqlite") as store:
        fill(store)
        conn = store._conn

        def plan(sql: str, *args: Any) -> str:
            return " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))

        key = plan("SELECT * FROM archive WHERE counterparty = ? AND message_id = ? "
                   "AND direction = ?", AGR, "o1", "in")
        assert "USING INDEX sqlite_autoindex_archive_1" in key
        assert "archive_conversation" in plan("SELECT * FROM archive WHERE conversation_id = ?",
                                              "c1")
        assert "archive_type" in plan("SELECT * FROM archive WHERE message_type = ? AND "
                                      "counterparty = ? AND period >= ? AND period <= ?",
                                      "FlexOffer", AGR, "2026-11-01", "2026-11-30")
        refs = plan("SELECT * FROM archive WHERE id IN (SELECT message FROM archive_refs "
                    "WHERE ref_id = ?)", "o1")
        assert "archive_refs_id" in refs
        # forgetting takes the references rows with it (the trigger)
        assert store.forget_archived(time.time() + 1) == 7
        assert conn.execute("SELECT count(*) FROM archive_refs").fetchone()[0] == 0


# --- memory: the cap and the size -------------------------------------------------------------

def test_memory_keeps_at_most_max_archived(caplog):
    store = MemoryStore(max_archived=100)
    assert "max_archived=100" in repr(store)
    with caplog.at_level(logging.WARNING, logger="pyuftp.store"):
        for n in range(500):
            assert store.archive(message(f"m{n}", conversation_id=f"c{n}", time_stamp=float(n),
                                         references={"flex_offer_message_id": f"o{n}"}))
    assert ids(store.query()) == [f"m{n}" for n in range(400, 500)]  # the oldest dropped
    assert store.find(AGR, "m399") is None and store.find(AGR, "m400") is not None
    assert store.query(conversation_id="c0") == [] and store.query(references="o0") == []
    archive = store._archive
    assert len(archive) == 100 and len(archive._order) == 100
    assert len(archive._by_conversation) == 100 and len(archive._by_reference) == 100
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # once per 10 minutes, not once per message
    assert "archive keeps only the last 100 messages" in warnings[0]
    assert store.archive(message("m0", conversation_id="c0")) is True  # dropped: new again
    with pytest.raises(ValueError, match="max_archived"):
        MemoryStore(max_archived=0)


def test_memory_warns_again_after_the_interval(caplog, monkeypatch):
    store = MemoryStore(max_archived=2)
    monkeypatch.setattr(memory_archive, "WARN_INTERVAL", 0.0)
    with caplog.at_level(logging.WARNING, logger="pyuftp.store"):
        for n in range(4):
            store.archive(message(f"m{n}"))
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_memory_per_archived_flex_offer(capsys):
    """The figure in MemoryStore's docstring, measured: a 96-ISP FlexOffer, archived."""
    from pyuftp.message.examples import flex_offer_96
    from pyuftp.message.codec import create_message

    xml = create_message("FlexOffer", flex_offer_96()).encode()
    count = 5_000
    store = MemoryStore()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(count):  # the ids new objects each, as from a parsed message
            store.archive(ArchivedMessage(
                "in", "FlexOffer", str(uuid.uuid4()), str(uuid.uuid4()), AGR, "AGR", DSO, "DSO",
                1.8e9 + n, bytes(xml), {"flex_request_message_id": str(uuid.uuid4()),
                                        "d_prognosis_message_id": str(uuid.uuid4())},
                "2026-11-24"))
        per_message = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
    with capsys.disabled():
        print(f"\nMemoryStore: {per_message:.0f} B per archived 96-ISP FlexOffer "
              f"({len(xml)} B of XML)")
    assert per_message < 2500


# --- one commit per step: the journal and the outbox archive in their own transactions --------


def test_record_received_archives_a_new_message_in_the_same_transaction(store: Store):
    offer = message("m1", direction="in")
    assert store.record_received(AGR, "m1", "d1", b"<x/>", 10.0, archive=offer) == "new"
    assert store.find(AGR, "m1", "in") is not None
    # a resend is not archived again (and the first stays as it was)
    assert store.record_received(AGR, "m1", "d1", b"<x/>", 11.0,
                                 archive=message("m1", conversation_id="c9")) == "duplicate"
    assert store.find(AGR, "m1", "in").conversation_id == "c1"


def test_an_answer_is_queued_archived_and_noted_in_one_transaction(store: Store):
    from pyuftp.store import OutboxItem
    store.record_received(AGR, "m1", "d1", b"<x/>", 10.0, archive=message("m1"))
    answer = message("r1", direction="out", message_type="FlexOfferResponse",
                     references={"flex_offer_message_id": "m1"})
    item = OutboxItem("r1", "FlexOfferResponse", DSO, AGR, "AGR", b"<SignedMessage/>", 1.0, 2.0)
    store.add_outgoing(item, answers=(AGR, "m1"), archive=answer,
                       outcome=("Rejected", "too late"))
    assert store.unhandled() == []
    assert store.find(AGR, "r1", "out").message_type == "FlexOfferResponse"
    noted = store.find(AGR, "m1", "in")
    assert (noted.outcome, noted.reasons) == ("Rejected", "too late")
    # an unknown answered message: nothing at all is stored
    other = OutboxItem("r2", "FlexOfferResponse", DSO, AGR, "AGR", b"<SignedMessage/>", 1.0, 2.0)
    with pytest.raises(KeyError):
        store.add_outgoing(other, answers=(AGR, "nope"),
                           archive=message("r2", direction="out"))
    assert store.find(AGR, "r2", "out") is None
    assert [i.message_id for i in store.outgoing()] == ["r1"]
