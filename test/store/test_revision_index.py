"""Archive.highest_revision: the index the rule ``revision.increases`` reads (issue #16.5),
in every store, and the in-place migration of a schema-3 SQLite file that fills it."""
from __future__ import annotations

import sqlite3
import time

import pytest

import pyuftp
from pyuftp.store.archiving import entry
from pyuftp.message.examples import example
from pyuftp.store import ArchivedMessage, MemoryStore, SQLiteStore

DAY = "2026-11-24"
AGR = "agr.example.com"


def prognosis(message_id: str, revision: int, point: str | None = "cp-1", day: str = DAY,
              direction: str = "in", counterparty: str = AGR,
              message_type: str = "D-Prognosis") -> ArchivedMessage:
    sender, recipient = ((counterparty, "dso.example.com") if direction == "in"
                         else ("dso.example.com", counterparty))
    return ArchivedMessage(direction, message_type, message_id, "c-" + message_id, sender, "AGR",
                           recipient, "DSO", 1.0, b"<x/>", {}, day, congestion_point=point,
                           revision=revision)


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    made = MemoryStore() if request.param == "memory" else SQLiteStore(str(tmp_path / "s.sqlite"))
    yield made
    made.close()


def test_the_highest_revision_of_a_group(store):
    assert store.highest_revision("in", AGR, "D-Prognosis", DAY, "cp-1") is None
    for message_id, revision in (("a", 3), ("b", 7), ("c", 5)):
        store.archive(prognosis(message_id, revision))
    assert store.highest_revision("in", AGR, "D-Prognosis", DAY, "cp-1") == 7
    assert store.highest_revision("in", AGR, "D-Prognosis", DAY, "cp-1", excluding="b") == 5
    assert store.highest_revision("in", AGR, "D-Prognosis", DAY, "cp-1", excluding="a") == 7
    # each part of the group counts: the point (None is a group of its own), the day, the
    # way, the party, the type
    store.archive(prognosis("d", 9, point=None))
    store.archive(prognosis("e", 11, day="2026-11-25"))
    store.archive(prognosis("f", 13, direction="out"))
    store.archive(prognosis("g", 15, counterparty="other.example.com"))
    store.archive(prognosis("h", 17, message_type="FlexRequest"))
    assert store.highest_revision("in", AGR, "D-Prognosis", DAY, "cp-1") == 7
    assert store.highest_revision("in", AGR, "D-Prognosis", DAY, None) == 9
    assert store.highest_revision("in", AGR, "D-Prognosis", "2026-11-25", "cp-1") == 11
    assert store.highest_revision("out", AGR, "D-Prognosis", DAY, "cp-1") == 13
    assert store.highest_revision("in", "other.example.com", "D-Prognosis", DAY, "cp-1") == 15
    assert store.highest_revision("in", AGR, "FlexRequest", DAY, "cp-1") == 17
    assert store.highest_revision("in", AGR, "D-Prognosis", DAY, "cp-2") is None
    [kept] = store.query(message_type="FlexRequest")
    assert (kept.congestion_point, kept.revision) == ("cp-1", 17)


def test_forgotten_messages_leave_the_index(store):
    store.archive(prognosis("a", 3))
    assert store.forget_archived(time.time() + 60) == 1
    assert store.highest_revision("in", AGR, "D-Prognosis", DAY, "cp-1") is None


def test_the_arguments_are_checked(store):
    with pytest.raises(ValueError, match="direction"):
        store.highest_revision("sideways", AGR, "D-Prognosis", DAY, "cp-1")
    with pytest.raises(ValueError, match="period"):
        store.highest_revision("in", AGR, "D-Prognosis", "24 Nov", "cp-1")
    with pytest.raises(TypeError, match="revision"):
        store.archive(prognosis("a", "3"))  # type: ignore[arg-type]


def test_the_memory_store_drops_the_oldest_from_the_index_too():
    with MemoryStore(max_archived=2) as store:
        for message_id, revision in (("a", 9), ("b", 1), ("c", 2)):
            store.archive(prognosis(message_id, revision))
        assert store.highest_revision("in", AGR, "D-Prognosis", DAY, "cp-1") == 2


def test_entry_fills_congestion_point_and_revision_for_revised_messages():
    for message_type in ("D-Prognosis", "FlexRequest"):
        payload = example(message_type)
        made = entry("in", message_type, payload, b"<x/>", "AGR", "DSO")
        assert (made.congestion_point, made.revision) == (payload["congestion_point"],
                                                          payload["revision"])
    offer = entry("in", "FlexOffer", example("FlexOffer"), b"<x/>", "AGR", "DSO")
    assert (offer.congestion_point, offer.revision) == (None, None)


def test_a_schema_3_file_is_migrated_and_its_revisions_filled(tmp_path):
    path = str(tmp_path / "v3.sqlite")
    payload = example("D-Prognosis")
    xml = pyuftp.create_message("D-Prognosis", payload, rules=False).encode()
    with SQLiteStore(path) as store:
        store.archive(entry("in", "D-Prognosis", payload, xml, "AGR", "DSO"))
        store.archive(prognosis("broken", 99, point="cp-x"))  # a payload that is no XML
    raw = sqlite3.connect(path)  # back to schema 3: no index, no columns
    raw.execute("DROP INDEX archive_revision")
    raw.execute("ALTER TABLE archive DROP COLUMN revision")
    raw.execute("ALTER TABLE archive DROP COLUMN congestion_point")
    raw.execute("PRAGMA user_version = 3")
    raw.commit()
    raw.close()
    day = payload["period"].isoformat()
    with SQLiteStore(path) as store:
        assert store.highest_revision("in", AGR, "D-Prognosis", day,
                                      payload["congestion_point"]) == payload["revision"]
        assert store.highest_revision("in", AGR, "D-Prognosis", DAY, "cp-x") is None
        store.archive(prognosis("later", 40, day=day, point=payload["congestion_point"]))
        assert store.highest_revision("in", AGR, "D-Prognosis", day,
                                      payload["congestion_point"]) == 40
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 5
        plan = " ".join(str(row) for row in raw.execute(
            "EXPLAIN QUERY PLAN SELECT revision, message_id FROM archive WHERE message_type = ? "
            "AND counterparty = ? AND direction = ? AND period = ? AND congestion_point IS ? "
            "AND revision IS NOT NULL ORDER BY revision DESC LIMIT 2",
            ("D-Prognosis", AGR, "in", DAY, "cp-1")))
        assert "archive_revision" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        raw.close()


def test_query_newest_first(store):
    for message_id, stamp in (("a", 1.0), ("b", 3.0), ("c", 2.0)):
        message = prognosis(message_id, 1)
        message.time_stamp = stamp
        store.archive(message)
    assert [m.message_id for m in store.query(newest_first=True)] == ["b", "c", "a"]
    assert [m.message_id for m in store.query(newest_first=True, limit=1)] == ["b"]
    assert [m.message_id for m in store.query(limit=1)] == ["a"]

