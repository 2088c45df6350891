"""Issue #23's bookkeeping: the archived XML stored once (with the envelope it came in, given
back byte for byte), answers stored already claimed, delivered marks carried by the next
write or committed together, and the transactions a message costs, on real stores."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from typing import Any, Iterator

import pytest

import pg
from test_archive import AGR, DSO, message
from test_store import BACKENDS, item

from pyuftp.message.examples import flex_offer_96
from pyuftp.sending.outbox import Outbox
from pyuftp.signing.crypto import generate_keypair
from pyuftp.signing.envelope import seal_message
from pyuftp.store import SQLiteStore, Store, signed
from pyuftp.store.archiving import entry


@pytest.fixture(params=sorted(BACKENDS))
def store(request, tmp_path):
    made = BACKENDS[request.param](tmp_path)
    yield made
    made.close()
    pg.dropped(made)


def sealed_offer(n: int = 0) -> tuple[bytes, bytes, dict[str, Any]]:
    """A real signed 96-ISP FlexOffer: (envelope, payload XML, payload as sent)."""
    private, _ = generate_keypair()
    payload = dict(flex_offer_96(), sender_domain=AGR, recipient_domain=DSO,
                   message_id=f"00000000-0000-4000-8000-{n:012d}")
    envelope, sent = seal_message("FlexOffer", payload, private, "AGR")
    parts = signed.split(envelope, b"")  # the whole body: signature (64 bytes) and XML
    assert parts is not None
    return envelope, parts[2][64:], sent


def test_pack_gives_back_the_envelope_and_xml_byte_for_byte():
    envelope, xml, _ = sealed_offer()
    blob = signed.pack(envelope, xml)
    assert signed.unpack(blob) == (xml, envelope)
    assert len(blob) < len(xml) / 2  # one compressed copy, not two
    # whitespace in the base64 (legal XML, not canonical): kept whole, still exact
    odd = envelope.replace(b'Body="', b'Body="\n', 1)
    assert signed.split(odd, xml) is None and signed.unpack(signed.pack(odd, xml)) == (xml, odd)
    # an envelope that does not hold this XML: kept whole beside it
    assert signed.unpack(signed.pack(envelope, b"<other/>")) == (b"<other/>", envelope)
    assert signed.unpack(signed.pack(None, xml)) == (xml, None)


def test_a_received_message_is_archived_with_its_envelope_once(store: Store):
    envelope, xml, sent = sealed_offer()
    kept = entry("in", "FlexOffer", sent, xml, "AGR", "DSO")
    assert store.record_received(AGR, sent["message_id"], "d1", envelope, time.time(),
                                 archive=kept) == "new"
    found = store.find(AGR, sent["message_id"])
    assert found is not None and found.payload_xml == xml and found.envelope == envelope
    assert store.unhandled() == [(AGR, sent["message_id"], envelope)]
    # unhandled: the archive keeps it whatever its age; handled, it may go
    assert store.forget_archived(time.time() + 10) == (0 if isinstance(store, SQLiteStore)
                                                       else 1)
    if isinstance(store, SQLiteStore):
        assert store.unhandled() == [(AGR, sent["message_id"], envelope)]
        store.mark_handled(AGR, sent["message_id"])
        assert store.forget_archived(time.time() + 10) == 1
    assert store.find(AGR, sent["message_id"]) is None


def test_sqlite_journal_refers_to_the_archive(tmp_path):
    envelope, xml, sent = sealed_offer()
    path = tmp_path / "s.sqlite"
    with SQLiteStore(path) as store:
        store.record_received(AGR, sent["message_id"], "d1", envelope, 1.0,
                              archive=entry("in", "FlexOffer", sent, xml, "AGR", "DSO"))
        # archived already (its record forgotten, sent again): the journal keeps the data
        store.record_received(AGR, "again", "d2", b"<x/>", 1.0, archive=message(
            "again", payload_xml=b"<y/>"))
        store.mark_handled(AGR, "again")
        store.forget_received(2.0)
        store.record_received(AGR, "again", "d3", b"<z/>", 3.0, archive=message("again"))
    raw = sqlite3.connect(path)
    rows = dict(raw.execute("SELECT message_id, data FROM received").fetchall())
    assert rows == {sent["message_id"]: None, "again": b"<z/>"}
    assert raw.execute("SELECT count(*) FROM archive WHERE length(payload_xml) > 0"
                       ).fetchone()[0] == 0
    raw.close()
    with SQLiteStore(path) as store:  # after a restart: what the inbox handles again
        assert store.unhandled() == [(AGR, sent["message_id"], envelope), (AGR, "again", b"<z/>")]
        assert store.find(AGR, "again").payload_xml == b"<y/>"  # the first one stands


def test_an_answer_is_archived_with_the_body_it_is_posted_in(store: Store):
    envelope, xml, sent = sealed_offer(1)
    kept = entry("out", "FlexOffer", sent, xml, "AGR", "DSO")
    store.add_outgoing(item(1, body=envelope, message_id=sent["message_id"]), archive=kept)
    found = store.find(DSO, sent["message_id"], "out")
    assert found is not None and (found.payload_xml, found.envelope) == (xml, envelope)


def test_claimed_at_once_and_marks_carried_by_the_next_write(store: Store):
    first = store.add_outgoing(item(1), claim=60.0)
    assert store.claim_due(time.time()) == []  # ours already: no claim_due for it
    second = store.add_outgoing(item(2), delivered=[first], claim=60.0)
    assert [i.id for i in store.outgoing("delivered")] == [first]
    third = store.add_outgoing(item(3))  # unclaimed: claim_due takes it
    assert [i.id for i in store.claim_due(time.time())] == [third]
    store.mark_delivered_many([second, third, 999])  # unknown ids are ignored
    assert [i.id for i in store.outgoing("delivered")] == [first, second, third]
    assert store.outgoing("delivered")[0].body == b""
    with pytest.raises(ValueError):
        store.add_outgoing(item(4), claim=0)
    with pytest.raises(KeyError):  # nothing written, the marks neither
        store.add_outgoing(item(5), answers=(AGR, "unknown"), delivered=[99])
    assert len(store.outgoing()) == 3


def test_a_schema_4_sqlite_file_is_migrated(tmp_path):
    """A file written before the archive kept envelopes: its rows read as they were."""
    path = tmp_path / "v4.sqlite"
    with SQLiteStore(path):
        pass
    raw = sqlite3.connect(path)
    raw.execute("ALTER TABLE archive DROP COLUMN signed")
    raw.execute(
        "INSERT INTO archive (direction, counterparty, message_id, message_type, "
        "conversation_id, sender_domain, sender_role, recipient_domain, recipient_role, "
        "time_stamp, payload_xml, refs, archived_at) VALUES ('in', ?, 'old', 'FlexOffer', "
        "'c', ?, 'AGR', ?, 'DSO', 1.0, ?, '{}', ?)", (AGR, AGR, DSO, b"<old/>", time.time()))
    raw.execute("INSERT INTO received VALUES (?, 'old', 'd', ?, 1.0, NULL)", (AGR, b"<env/>"))
    raw.execute("PRAGMA user_version = 4")
    raw.commit()
    raw.close()
    envelope, xml, sent = sealed_offer(2)
    with SQLiteStore(path) as store:
        old = store.find(AGR, "old")
        assert old is not None and (old.payload_xml, old.envelope) == (b"<old/>", None)
        assert store.unhandled() == [(AGR, "old", b"<env/>")]
        store.record_received(AGR, sent["message_id"], "d", envelope, 2.0,
                              archive=entry("in", "FlexOffer", sent, xml, "AGR", "DSO"))
        assert store.find(AGR, sent["message_id"]).envelope == envelope
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 5
    raw.close()


def test_a_schema_1_postgresql_database_is_migrated():
    url = pg.require()
    import psycopg
    from pyuftp.store import postgresql_schema
    from pyuftp.store.postgresql import PostgreSQLStore

    name = pg.new_schema()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
            conn.execute(f"SET search_path TO {name}")
            for statement in postgresql_schema.MIGRATIONS[1]:
                conn.execute(statement)
            conn.execute("CREATE TABLE pyuftp_schema (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO pyuftp_schema VALUES (1)")
            conn.execute(
                "INSERT INTO archive (direction, counterparty, message_id, message_type, "
                "conversation_id, sender_domain, sender_role, recipient_domain, recipient_role, "
                "time_stamp, payload_xml, refs, archived_at) VALUES ('in', %s, 'old', "
                "'FlexOffer', 'c', %s, 'AGR', %s, 'DSO', 1.0, %s, '{}', 1.0)",
                (AGR, AGR, DSO, b"<old/>"))
        store = PostgreSQLStore(url, schema=name)
        try:
            assert store.migrate() == 1
            old = store.find(AGR, "old")
            assert old is not None and (old.payload_xml, old.envelope) == (b"<old/>", None)
            envelope, xml, sent = sealed_offer(3)
            store.record_received(AGR, sent["message_id"], "d", envelope, 2.0,
                                  archive=entry("in", "FlexOffer", sent, xml, "AGR", "DSO"))
            assert store.find(AGR, sent["message_id"]).envelope == envelope
        finally:
            store.close()
    finally:
        pg.drop(name)


@contextlib.contextmanager
def counting(store: SQLiteStore) -> Iterator[list[str]]:
    """The write transactions the real store commits (its own _session, wrapped)."""
    writes: list[str] = []
    session = store._session

    @contextlib.contextmanager
    def counted(action: str, write: bool = True) -> Iterator[Any]:
        inner = store._grouped  # an entry of a group commit: a savepoint, not a transaction
        with session(action, write) as conn:
            yield conn
        if write and not inner:
            writes.append(action)

    store._session = counted  # type: ignore[method-assign]
    try:
        yield writes
    finally:
        del store._session


def test_one_write_per_message_received_and_one_per_answer(tmp_path):
    """What the inbox and the outbox commit per message, on a real SQLite file: the
    record, the answer (with the earlier answers' delivered marks), and now and then a
    mark_delivered_many when no answer came to carry them."""
    n = 40

    async def run(store: SQLiteStore) -> list[str]:
        posted: list[str] = []

        async def deliver(sent: Any) -> None:
            await asyncio.sleep(0)
            posted.append(sent.message_id)

        outbox = Outbox(store, deliver)
        await outbox.start()
        with counting(store) as writes:
            for i in range(n):
                await store.call(functools.partial(  # as the inbox calls it
                    store.record_received, AGR, f"in-{i}", "d", b"<env/>", time.time(),
                    archive=message(f"in-{i}")))
                await outbox.submit(item(i), answers=(AGR, f"in-{i}"),
                                    archive=message(f"out-{i}", direction="out"),
                                    outcome=("Accepted", None))
                await asyncio.sleep(0.001)
            assert await outbox.wait_idle(10)
        await outbox.stop()
        assert sorted(posted) == sorted(f"id-{i}" for i in range(n))
        return writes

    with SQLiteStore(tmp_path / "s.sqlite") as store:
        writes = asyncio.run(run(store))
        assert len(store.outgoing("delivered")) == n
    # each request and each answer in a commit (a group's: "record_received" when the
    # group holds one); the loop's own rounds (at start, then once a poll_interval) apart
    assert writes.count("claim_due") <= 3 and "mark_delivered" not in writes
    assert n <= writes.count("record_received") + writes.count("group commit") <= 2 * n + 3
    assert len(writes) <= 2 * n + 8, writes


def test_group_commit_shares_a_transaction_and_isolates_failures(tmp_path):
    """Answers queued through store.call commit with the next record_received (at once: a
    sender waits for its 200) or at the end of the loop's turn; one that raises rolls back
    only itself; one cancelled while it waits is not run."""
    async def run(store: SQLiteStore) -> list[Any]:
        ok = asyncio.ensure_future(store.call(store.add_outgoing, item(2)))
        bad = asyncio.ensure_future(store.call(functools.partial(  # unknown: KeyError, alone
            store.add_outgoing, item(1), answers=(AGR, "unknown"))))
        cut = asyncio.ensure_future(store.call(store.add_outgoing, item(3)))
        await asyncio.sleep(0)  # the three wait for the end of this turn
        cut.cancel()
        recorded = [await store.call(functools.partial(
            store.record_received, AGR, f"m{i}", "d", b"<x/>", 1.0)) for i in range(2)]
        later = await store.call(store.add_outgoing, item(4))  # alone: at the turn's end
        return [*recorded, *await asyncio.gather(ok, bad, return_exceptions=True), later]

    with SQLiteStore(tmp_path / "s.sqlite") as store:
        with counting(store) as writes:
            results = asyncio.run(run(store))
        assert results[:2] == ["new"] * 2 and isinstance(results[3], KeyError)
        assert isinstance(results[2], int) and isinstance(results[4], int)
        # the first record carried the two answers queued before it
        assert writes == ["record_received", "record_received", "group commit"]
        assert [i.message_id for i in store.outgoing()] == ["id-2", "id-4"]
        assert [m for _, m, _ in store.unhandled()] == ["m0", "m1"]


def test_pack_is_exact_for_mangled_envelopes():
    """Whatever an envelope holds (a body cut short, bytes changed, quotes and Body=
    repeated, whitespace): what comes back is what went in. 3,000 cases, seeded."""
    import random

    envelope, xml, _ = sealed_offer(4)
    rng = random.Random(23)
    cuts = [b'"', b"'", b" Body=\"", b"=", b"\n", b"A", b"\x00", b"Body='x'"]
    for _ in range(3000):
        mangled = bytearray(envelope)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(mangled))
            choice = rng.random()
            if choice < 0.4:
                mangled[at:at] = rng.choice(cuts)
            elif choice < 0.7:
                mangled[at] = rng.randrange(256)
            else:
                del mangled[at:at + rng.randint(1, 200)]
        data = bytes(mangled)
        for payload in (xml, xml[rng.randrange(len(xml)):], b""):
            assert signed.unpack(signed.pack(data, payload)) == (payload, data)


def test_group_commit_across_event_loops(tmp_path):
    """A loop that ends with an answer still waiting (its flush never ran) does not hold up
    the next loop's calls."""
    async def queue_one(store: SQLiteStore) -> None:
        store.call(store.add_outgoing, item(1)).send(None)  # queued, its flush scheduled

    async def next_one(store: SQLiteStore) -> int:
        return await asyncio.wait_for(store.call(store.add_outgoing, item(2)), 5)

    with SQLiteStore(tmp_path / "s.sqlite") as store:
        loop = asyncio.new_event_loop()
        loop.create_task(queue_one(store))
        loop.call_soon(loop.stop)  # stops before the flush the task schedules
        loop.run_forever()
        loop.close()
        assert isinstance(asyncio.run(next_one(store)), int)
        assert "id-2" in [i.message_id for i in store.outgoing()]
