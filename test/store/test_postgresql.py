"""What only the PostgreSQL store has: several store objects (as several instances would) on
one database, the journal's handling leases, schema versions and migration, and a database
that goes away and comes back (through a TCP relay on loopback that the test cuts).

The shared behaviour runs on it in test_store.py and test_archive.py; the multi-process
tests are in test_postgresql_cluster.py. A server: see pg.HOW."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import pg
from test_store import item, names

from pyuftp.store import StoreError, open_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def schema():
    pg.require()
    name = pg.new_schema()
    yield name
    pg.drop(name)


def two(schema: str, **options: Any) -> tuple[Any, Any]:
    return (open_store(pg.store_url(schema, **options)), open_store(pg.store_url(schema,
                                                                                 **options)))


def test_two_instances_share_claims_and_the_journal(schema):
    a, b = two(schema, handling_lease=1)
    try:
        now = time.time()
        ids = [a.add_outgoing(item(n)) for n in range(10)]
        # a stored them, so a may deliver them at once: another instance does not get them
        assert b.claim_due(now) == [] and b.next_due_time() >= now + 1
        assert a.next_due_time() == 0.0  # a's own claim_due may take them now
        first = a.claim_due(now, limit=4, lease=60.0)
        a.release(ids[4:])  # a gives the rest up: anyone's now
        second = b.claim_due(now, limit=100, lease=60.0)
        assert names(first) == [f"id-{n}" for n in range(4)]
        assert names(second) == [f"id-{n}" for n in range(4, 10)]  # the rest, not a's
        assert b.claim_due(now + 59) == [] and a.claim_due(now + 59) == []
        b.mark_delivered(ids[0])  # another instance's verdict stands
        a.mark_retry(ids[0], 1, 0.0, "late", 503)
        assert a.outgoing("delivered")[0].id == ids[0]
        assert names(b.claim_due(now + 60, limit=2)) == ["id-1", "id-2"]  # a's lease ended
        assert b.pending_counts() == {("dso.example.com", "DSO"): 9}
        # an item a stored and never delivered (a died): b's once a's lease has ended
        late = a.add_outgoing(item(99))
        assert b.claim_due(time.time()) == []
        time.sleep(1.1)
        assert [i.id for i in b.claim_due(time.time())] == [late]
        # one message recorded by both: new once; the other sees a duplicate or conflict
        assert a.record_received("agr.example.com", "m1", "d", b"x", time.time()) == "new"
        assert b.record_received("agr.example.com", "m1", "d", b"x", time.time()) == "duplicate"
        assert b.record_received("agr.example.com", "m1", "e", b"y", time.time()) == "conflict"
    finally:
        a.close()
        b.close()


def test_a_message_is_handled_by_its_instance_until_its_lease_ends(schema):
    a, b = two(schema, handling_lease=1)
    try:
        now = time.time()
        a.record_received("agr.example.com", "live", "d", b"live", now)
        a.record_received("agr.example.com", "old", "d", b"old", now - 5)  # lease ended
        # a's own: unhandled() gives it everything unhandled of its own (a restart's view)
        assert [m for _, m, _ in a.unhandled()] == ["old", "live"]
        # b gets nothing a holds: unhandled() claimed "old" for a again
        assert b.unhandled() == [] and b.recover_unhandled() == []
        time.sleep(1.2)  # a "died": its leases end
        assert [m for _, m, _ in b.recover_unhandled()] == ["old", "live"]
        assert b.recover_unhandled() == [] and a.recover_unhandled() == []  # b's now
        b.mark_handled("agr.example.com", "old")
        assert [m for _, m, _ in b.unhandled()] == ["live"]
    finally:
        a.close()
        b.close()


def test_recovery_races_give_each_message_to_one_instance(schema):
    stores = [open_store(pg.store_url(schema, handling_lease=30)) for _ in range(4)]
    try:
        for n in range(200):
            stores[0].record_received("agr.example.com", f"m{n}", "d", b"x", time.time() - 60)
        got: list[list[str]] = [[] for _ in stores]
        start = threading.Barrier(len(stores))

        def sweep(k: int) -> None:
            start.wait(timeout=10)
            for _ in range(5):
                got[k] += [m for _, m, _ in stores[k].recover_unhandled()]

        threads = [threading.Thread(target=sweep, args=(k,)) for k in range(1, len(stores))]
        for thread in threads:
            thread.start()
        sweep(0)
        for thread in threads:
            thread.join(timeout=30)
        everything = [m for ms in got for m in ms]
        assert sorted(everything) == sorted(f"m{n}" for n in range(200))  # each once
    finally:
        for store in stores:
            store.close()


def test_schema_version_and_migration(schema):
    url = pg.store_url(schema)
    result = subprocess.run([sys.executable, "-m", "pyuftp", "store", "migrate", url],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0 and "schema up to date (was 0)" in result.stdout
    store = open_store(url)
    try:
        assert store.migrate() == 2  # done already
        import psycopg

        with psycopg.connect(pg.URL, autocommit=True) as conn:
            conn.execute(f"INSERT INTO {schema}.pyuftp_schema VALUES (99)")
        newer = open_store(url)
        with pytest.raises(StoreError, match="newer pyuftp .schema 99"):
            newer.unhandled()
        newer.close()
    finally:
        store.close()
    failed = subprocess.run([sys.executable, "-m", "pyuftp", "store", "migrate", url],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert failed.returncode == 1 and "newer pyuftp" in failed.stderr


class Relay:
    """A TCP relay on loopback to the test server, which the test can cut and restore: the
    database going away mid-use, for real."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            server = socket.create_connection(self.target, timeout=5)
            server.settimeout(None)
            with self.lock:
                self.sockets += [client, server]
            for one, other in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(one, other), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.open = False
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.sockets.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_a_database_that_goes_away_is_a_store_error_and_comes_back(schema):
    from urllib.parse import urlsplit

    target = urlsplit(pg.URL)
    relay = Relay(target.hostname or "127.0.0.1", target.port or 5432)
    url = pg.URL.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{relay.port}")
    store = open_store(f"{url}?schema={schema}&pool_timeout=2&pool_size=2")
    try:
        assert store.record_received("a", "m1", "d", b"x", time.time()) == "new"
        relay.cut()
        started = time.monotonic()
        for call in (lambda: store.record_received("a", "m2", "d", b"x", time.time()),
                     lambda: store.add_outgoing(item(1)), store.unhandled):
            with pytest.raises(StoreError, match="failed"):
                call()
        assert time.monotonic() - started < 20  # bounded by pool_timeout, not hanging
        relay.open = True  # the database is back: the pool reconnects by itself
        deadline = time.monotonic() + 20
        while True:
            try:
                assert store.record_received("a", "m2", "d", b"x", time.time()) == "new"
                break
            except StoreError:
                assert time.monotonic() < deadline, "the store did not reconnect"
                time.sleep(0.2)
        # nothing of the failed calls was written
        assert [m for _, m, _ in store.unhandled()] == ["m1", "m2"]
        assert store.outgoing() == []
    finally:
        store.close()
        relay.close()


def test_a_service_whose_database_is_away_answers_503_never_200(schema):
    """A message that cannot be recorded is refused with a temporary status (the sender
    keeps it and retries); once the database is back it is taken, handled and answered."""
    import asyncio
    from urllib.parse import urlsplit

    import aiohttp

    from conftest import fresh
    from pyuftp.signing.crypto import generate_keypair
    from pyuftp.discovery import Directory
    from pyuftp.signing.envelope import seal_message
    from pyuftp.server.service import ShapeshifterAgrService, ShapeshifterDsoService

    target = urlsplit(pg.URL)
    relay = Relay(target.hostname or "127.0.0.1", target.port or 5432)
    url = pg.URL.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{relay.port}")
    store = f"{url}?schema={schema}&pool_timeout=2"
    dso_key, dso_public = generate_keypair()
    agr_key, agr_public = generate_keypair()

    async def scenario() -> tuple[list[int], list[str], list[str]]:
        directory = Directory()
        dso = ShapeshifterDsoService("dso.example.com", dso_key, directory.key,
                                     directory.endpoint, port=0, store=store)
        agr = ShapeshifterAgrService("agr.example.com", agr_key, directory.key,
                                     directory.endpoint, port=0)
        handled: list[str] = []
        answers: list[str] = []
        dso.add_handler("FlexOffer", lambda offer: handled.append(offer["message_id"]))
        agr.add_handler("FlexOfferResponse", lambda r: answers.append(
            r["flex_offer_message_id"]))
        statuses = []
        async with dso, agr, aiohttp.ClientSession() as session:
            directory.add("dso.example.com", "DSO", dso_public, dso.url)
            directory.add("agr.example.com", "AGR", agr_public, agr.url)
            data, _ = seal_message("FlexOffer", fresh("FlexOffer", sender_domain="agr.example.com",
                                                      recipient_domain="dso.example.com"),
                                   agr_key, "AGR")
            headers = {"Content-Type": "text/xml; charset=utf-8"}
            relay.cut()
            for _ in range(3):
                async with session.post(dso.url, data=data, headers=headers) as response:
                    statuses.append(response.status)
                    assert response.status != 503 or response.headers["Retry-After"]
            assert handled == []
            relay.open = True
            for _ in range(100):  # bounded: the pool reconnects within seconds
                async with session.post(dso.url, data=data, headers=headers) as response:
                    statuses.append(response.status)
                if response.status == 200:
                    break
                await asyncio.sleep(0.2)
            assert await dso.drain(10)
            for _ in range(100):
                if answers:
                    break
                await asyncio.sleep(0.05)
        return statuses, handled, answers

    try:
        statuses, handled, answers = asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        relay.close()
    assert statuses[:3] == [503, 503, 503] and statuses[-1] == 200
    assert set(statuses[3:-1]) <= {503}
    assert len(handled) == 1 and answers == handled
