"""The outbox over real sockets: retries and Retry-After, final failures, expiry, restarts,
slow peers that must not hold up others, and the per-peer limit.

Peers are aiohttp.web servers on 127.0.0.1; deliveries go through a real pyuftp client making
one attempt per call (``attempts=1``), as the outbox expects; stores are SQLite files.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from pyuftp.clients import ShapeshifterAgrDsoClient
from pyuftp.exceptions import FinalDeliveryError, TemporaryDeliveryError
from pyuftp.signing.crypto import generate_keypair
from pyuftp.sending import outbox as outbox_module
from pyuftp.exceptions import DeliveryExpired
from pyuftp.sending.outbox import Outbox
from pyuftp.store import MemoryStore, OutboxItem, SQLiteStore

from conftest import run

AGR_KEY = generate_keypair()[0]
FAST = {"first_backoff": 0.02, "max_backoff": 0.05, "poll_interval": 0.2}

Behaviour = Callable[[int, bytes], Awaitable[web.StreamResponse]]


async def ok(n: int, body: bytes) -> web.Response:
    return web.Response(text="")


class Peer:
    """A recipient's service: records each POST (time, body) and answers per ``behaviour``."""

    def __init__(self, behaviour: Behaviour = ok) -> None:
        self.behaviour = behaviour
        self.posts: list[tuple[float, bytes]] = []
        self.active = 0
        self.max_active = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.posts.append((time.monotonic(), body))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            return await self.behaviour(len(self.posts), body)
        finally:
            self.active -= 1

    async def start(self, port: int = 0) -> "Peer":
        app = web.Application()
        app.router.add_post("/message", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/message"

    def bodies(self) -> list[bytes]:
        return [body for _, body in self.posts]


@asynccontextmanager
async def serving(behaviour: Behaviour = ok) -> AsyncIterator[Peer]:
    peer = await Peer(behaviour).start()
    try:
        yield peer
    finally:
        await peer.stop()


def dead_port() -> int:
    """A port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Router:
    """``deliver`` for the outbox: a real client per recipient domain, one attempt per call."""

    def __init__(self, urls: dict[str, str], timeout: float = 5.0) -> None:
        self.clients = {
            domain: ShapeshifterAgrDsoClient("agr.example.com", AGR_KEY, domain, url,
                                             attempts=1, timeout=timeout)
            for domain, url in urls.items()
        }

    async def __call__(self, item: OutboxItem) -> None:
        client = self.clients[item.recipient_domain]
        await client.courier.poster.post_once(item.body, await client.endpoint())

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


def make_item(outbox: Outbox, n: int, recipient: str = "dso.example.com",
              body: bytes | None = None) -> OutboxItem:
    now = time.time()
    return OutboxItem(
        message_id=f"msg-{recipient}-{n}", message_type="FlexOffer",
        sender_domain="agr.example.com", recipient_domain=recipient, recipient_role="DSO",
        body=body if body is not None else b"<SignedMessage n='%d' to='%s'/>" % (n, recipient.encode()),
        created_at=now, expires_at=outbox.expires_at(now),
    )


async def deliver_and_wait(outbox: Outbox, *items: OutboxItem, timeout: float = 10.0) -> None:
    """Start the outbox, submit ``items``, wait (bounded) until it is idle, and stop it."""
    await outbox.start()
    try:
        for item in items:
            await outbox.submit(item)
        assert await outbox.wait_idle(timeout)
    finally:
        await outbox.stop()


async def until(condition: Callable[[], bool], timeout: float) -> None:
    """Wait (bounded) for ``condition``; fail the test if it does not come true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


# --- retries --------------------------------------------------------------------------------

def test_503_three_times_then_200_is_delivered_once_after_four_posts(tmp_path):
    async def flaky(n: int, body: bytes) -> web.Response:
        return web.Response(status=503 if n <= 3 else 200)

    async def main() -> None:
        store = SQLiteStore(tmp_path / "outbox.sqlite")
        async with serving(flaky) as peer:
            router = Router({"dso.example.com": peer.url})
            outbox = Outbox(store, router, **FAST)
            await outbox.start()
            try:
                item = make_item(outbox, 1)
                item_id = await outbox.submit(item)
                assert await outbox.wait_idle(10)
                await asyncio.sleep(0.2)  # no fifth POST comes later
            finally:
                await outbox.stop()
                await router.close()
        assert peer.bodies() == [item.body] * 4
        [stored] = store.outgoing()
        assert (stored.id, stored.state, stored.attempts, stored.last_status) \
            == (item_id, "delivered", 3, 503)
        store.close()

    run(main())


def test_retry_after_is_honoured(tmp_path):
    async def busy_once(n: int, body: bytes) -> web.Response:
        if n == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response()

    async def main() -> None:
        store = SQLiteStore(tmp_path / "outbox.sqlite")
        async with serving(busy_once) as peer:
            router = Router({"dso.example.com": peer.url})
            outbox = Outbox(store, router, first_backoff=0.01, max_backoff=0.02, poll_interval=0.1)
            try:
                await deliver_and_wait(outbox, make_item(outbox, 1))
            finally:
                await router.close()
        assert len(peer.posts) == 2
        gap = peer.posts[1][0] - peer.posts[0][0]
        assert 1.0 <= gap < 2.0, gap
        assert store.outgoing("delivered")
        store.close()

    run(main())


def test_unexpected_exception_in_deliver_is_logged_and_retried(tmp_path, caplog):
    calls: list[int] = []

    async def main() -> None:
        store = SQLiteStore(tmp_path / "outbox.sqlite")
        async with serving() as peer:
            router = Router({"dso.example.com": peer.url})

            async def buggy(item: OutboxItem) -> None:
                calls.append(1)
                if len(calls) <= 2:
                    raise RuntimeError("a bug in deliver")
                await router(item)

            outbox = Outbox(store, buggy, **FAST)
            try:
                await deliver_and_wait(outbox, make_item(outbox, 1))
            finally:
                await router.close()
        assert len(peer.posts) == 1 and len(calls) == 3
        [stored] = store.outgoing("delivered")
        assert stored.attempts == 2 and "RuntimeError" in (stored.last_error or "")
        store.close()

    with caplog.at_level(logging.ERROR, logger="pyuftp"):
        run(main())
    tracebacks = [r for r in caplog.records if r.exc_info and "unexpected error" in r.getMessage()]
    assert len(tracebacks) == 2


def test_backoff_doubles_with_jitter_and_caps():
    outbox = Outbox(MemoryStore(), ok_deliver, first_backoff=1.0, max_backoff=8.0)
    for attempts, base in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (10_000, 8.0)):
        delays = [outbox.backoff.delay(attempts) for _ in range(200)]
        assert all(base / 2 <= d <= base for d in delays), (attempts, min(delays), max(delays))
        assert max(delays) - min(delays) > base / 10  # really jittered
    assert outbox.backoff.delay(1, retry_after=30.0) == 30.0
    assert outbox.backoff.delay(1, retry_after=0.1) <= 1.0


async def ok_deliver(item: OutboxItem) -> None:
    return None


# --- final failures -------------------------------------------------------------------------

def test_final_400_fails_at_once_and_the_callback_is_told(tmp_path, caplog):
    told: list[tuple[OutboxItem, Exception]] = []

    async def picky(n: int, body: bytes) -> web.Response:
        return web.Response(status=400, text="no such thing") if b"bad" in body else web.Response()

    async def on_failed(item: OutboxItem, error: Exception) -> None:
        told.append((item, error))
        raise RuntimeError("the callback itself is broken")  # logged; the loop goes on

    async def main() -> None:
        store = SQLiteStore(tmp_path / "outbox.sqlite")
        async with serving(picky) as peer:
            router = Router({"dso.example.com": peer.url})
            outbox = Outbox(store, router, on_delivery_failed=on_failed, **FAST)
            await outbox.start()
            try:
                bad = make_item(outbox, 1, body=b"<bad/>")
                bad_id = await outbox.submit(bad)
                await until(lambda: bool(told), 5)
                assert len(peer.posts) == 1  # no retry
                good = make_item(outbox, 2)
                await outbox.submit(good)  # the broken callback did not stop the loop
                assert await outbox.wait_idle(10)
            finally:
                await outbox.stop()
                await router.close()
        assert peer.bodies() == [b"<bad/>", good.body]
        [(item, error)] = told
        assert item.id == bad_id and item.state == "failed" and item.message_id == bad.message_id
        assert isinstance(error, FinalDeliveryError) and error.status == 400
        failed = store.outgoing("failed")
        assert [(i.id, i.attempts, i.last_status) for i in failed] == [(bad_id, 0, 400)]
        assert "no such thing" in (failed[0].last_error or "")
        assert [i.message_id for i in store.outgoing("delivered")] == [good.message_id]
        store.close()

    with caplog.at_level(logging.ERROR, logger="pyuftp"):
        run(main())
    assert any("on_delivery_failed raised" in r.getMessage() for r in caplog.records)


def test_expiry_with_a_dead_port(tmp_path, caplog):
    told: list[tuple[OutboxItem, Exception, float]] = []
    retry_for = 0.5

    def on_failed(item: OutboxItem, error: Exception) -> None:  # a plain function works too
        told.append((item, error, time.time()))

    async def main() -> None:
        store = SQLiteStore(tmp_path / "outbox.sqlite")
        router = Router({"dso.example.com": f"http://127.0.0.1:{dead_port()}/message"})
        outbox = Outbox(store, router, retry_for=retry_for, on_delivery_failed=on_failed,
                        first_backoff=0.02, max_backoff=0.1, poll_interval=0.1)
        await outbox.start()
        try:
            item = make_item(outbox, 1)
            assert item.expires_at == item.created_at + retry_for
            await outbox.submit(item)
            await until(lambda: bool(told), 5)
            assert await outbox.wait_idle(5)
        finally:
            await outbox.stop()
            await router.close()
        [(failed, error, when)] = told
        assert when >= item.expires_at  # retried for the whole window, not given up early
        assert when < item.expires_at + 1.0
        assert failed.state == "failed" and failed.attempts >= 3
        assert isinstance(error, DeliveryExpired) and isinstance(error, FinalDeliveryError)
        assert isinstance(error.last_error, TemporaryDeliveryError)
        assert error.__cause__ is error.last_error
        [stored] = store.outgoing()
        assert stored.state == "failed" and "gave up" in (stored.last_error or "")
        store.close()

    with caplog.at_level(logging.INFO, logger="pyuftp"):
        run(main())
    # one warning for the outage, not one per attempt; the retries are at INFO
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warnings] == ["cannot deliver to dso.example.com (DSO)"]
    assert sum("failed (attempt" in r.getMessage() for r in caplog.records) >= 3


# --- restarts -------------------------------------------------------------------------------

def test_items_of_a_stopped_outbox_are_delivered_after_a_restart(tmp_path):
    path = tmp_path / "outbox.sqlite"
    port = dead_port()
    url = f"http://127.0.0.1:{port}/message"

    async def first_run() -> list[bytes]:
        store = SQLiteStore(path)
        router = Router({"dso.example.com": url})
        outbox = Outbox(store, router, first_backoff=0.02, max_backoff=0.05, poll_interval=0.1)
        await outbox.start()
        try:
            items = [make_item(outbox, n) for n in range(5)]
            for item in items:
                await outbox.submit(item)
            # the peer is down: each is tried, and fails, at least once
            await until(lambda: all(i.attempts >= 1 for i in store.outgoing()), 5)
        finally:
            await outbox.stop()
            await router.close()
            store.close()
        # one more, committed by a process that never started its loop (and then "died")
        late_store = SQLiteStore(path)
        late = Outbox(late_store, router)
        items.append(make_item(late, 99))
        await late.submit(items[-1])
        late_store.close()
        return [item.body for item in items]

    async def second_run(expected: list[bytes]) -> None:
        store = SQLiteStore(path)  # the reopened file: a new process
        assert len(store.outgoing("pending")) == 6
        peer = await Peer().start(port)  # the peer is back
        router = Router({"dso.example.com": url})
        outbox = Outbox(store, router, first_backoff=0.02, max_backoff=0.05, poll_interval=0.1)
        try:
            await outbox.start()
            assert await outbox.wait_idle(10)
        finally:
            await outbox.stop()
            await router.close()
            await peer.stop()
        assert sorted(peer.bodies()) == sorted(expected)  # each exactly once
        assert [i.state for i in store.outgoing()] == ["delivered"] * 6
        store.close()

    bodies = run(first_run())
    run(second_run(bodies))


# --- slow peers and the per-peer limit ------------------------------------------------------

def test_a_hanging_peer_does_not_delay_a_healthy_one(tmp_path):
    client_timeout = 3.0
    release = asyncio.Event()

    async def hang(n: int, body: bytes) -> web.Response:
        try:
            await asyncio.wait_for(release.wait(), 10)
        except asyncio.TimeoutError:
            pass
        return web.Response()

    async def main() -> None:
        store = SQLiteStore(tmp_path / "outbox.sqlite")
        async with serving(hang) as slow, serving() as healthy:
            router = Router({"slow.example.com": slow.url, "healthy.example.com": healthy.url},
                            timeout=client_timeout)
            # small batches, so the slow peer's backlog spans several reads and overflows
            options = dict(per_peer=2, batch_size=10, first_backoff=0.02, max_backoff=0.05,
                           poll_interval=0.2)
            outbox = Outbox(store, router, **options)
            await outbox.start()
            try:
                slow_items = [make_item(outbox, n, "slow.example.com") for n in range(40)]
                for item in slow_items:  # older: first in the store
                    await outbox.submit(item)
                await until(lambda: slow.active == 2, 5)
                started = time.monotonic()
                healthy_items = [make_item(outbox, n, "healthy.example.com") for n in range(5)]
                for item in healthy_items:
                    await outbox.submit(item)
                await until(lambda: len(healthy.posts) == 5, client_timeout)
                took = max(at for at, _ in healthy.posts) - started
                assert took < client_timeout / 3, took  # well before the slow one times out
                assert slow.max_active == 2 and slow.active == 2
                await outbox.stop(timeout=0.1)  # the slow ones in flight stay pending
            finally:
                await outbox.stop()
            assert len(store.outgoing("delivered")) == 5
            assert len(store.outgoing("pending")) == 40

            # a restart delivers the slow peer's backlog once it answers again
            release.set()
            outbox = Outbox(store, router, **options)
            await outbox.start()
            try:
                assert await outbox.wait_idle(10)
            finally:
                await outbox.stop()
                await router.close()
        assert len(store.outgoing("delivered")) == 45
        # at least once: the two cut off by the stop may have arrived twice
        assert set(slow.bodies()) == {item.body for item in slow_items}
        assert len(slow.posts) <= 42 and slow.max_active <= 2
        store.close()

    run(main())


def test_a_big_backlog_for_one_peer_is_not_read_into_memory(tmp_path):
    """A dead peer with 300 items waiting: the outbox holds at most its slots and a queue of
    them, and asks the store for the others only as the queue drains."""
    release = asyncio.Event()

    async def hang(n: int, body: bytes) -> web.Response:
        await asyncio.wait_for(release.wait(), 10)
        return web.Response()

    async def main() -> None:
        store = CountingStore(tmp_path / "outbox.sqlite")
        async with serving(hang) as slow:
            router = Router({"slow.example.com": slow.url})
            outbox = Outbox(store, router, per_peer=2, batch_size=50, **FAST)
            for n in range(300):  # stored before the start: all due at once
                await outbox.submit(make_item(outbox, n, "slow.example.com"))
            await outbox.start()
            try:
                await until(lambda: slow.active == 2, 5)
                await asyncio.sleep(0.5)  # several rounds of the loop
                queued = sum(len(q) for q in outbox._queued.values())
                assert queued == outbox._queue_cap  # 16, the rest stays in the store only
                assert store.rows_read <= 2 * 50  # not the whole backlog, round after round
                release.set()
                assert await outbox.wait_idle(20)
            finally:
                await outbox.stop()
                await router.close()
        assert len(store.outgoing("delivered")) == 300
        assert len(slow.posts) == 300
        store.close()

    run(main(), timeout=40)


def test_per_peer_limit(tmp_path):
    async def slowish(n: int, body: bytes) -> web.Response:
        await asyncio.sleep(0.05)
        return web.Response()

    async def main() -> None:
        store = SQLiteStore(tmp_path / "outbox.sqlite")
        async with serving(slowish) as one, serving(slowish) as two:
            router = Router({"one.example.com": one.url, "two.example.com": two.url})
            outbox = Outbox(store, router, per_peer=3, **FAST)
            await outbox.start()
            try:
                for n in range(15):
                    await outbox.submit(make_item(outbox, n, "one.example.com"))
                    await outbox.submit(make_item(outbox, n, "two.example.com"))
                assert await outbox.wait_idle(10)
            finally:
                await outbox.stop()
                await router.close()
        for peer in (one, two):
            assert len(peer.posts) == 15 and len(set(peer.bodies())) == 15
            assert peer.max_active == 3
        store.close()

    run(main())


def test_memory_store_and_items_submitted_before_start():
    async def main() -> None:
        store = MemoryStore()
        async with serving() as peer:
            router = Router({"dso.example.com": peer.url})
            outbox = Outbox(store, router, **FAST)
            try:
                for n in range(3):
                    await outbox.submit(make_item(outbox, n))
                assert not await outbox.wait_idle(0.1)  # not started: nothing moves
                assert peer.posts == []
                await outbox.start()
                await outbox.start()  # idempotent
                assert await outbox.wait_idle(5)
            finally:
                await outbox.stop()
                await router.close()
        assert len(peer.posts) == 3
        assert [i.state for i in store.outgoing()] == ["delivered"] * 3

    run(main())


def test_submit_refuses_bad_items_before_storing(tmp_path):
    async def main() -> None:
        store = SQLiteStore(tmp_path / "outbox.sqlite")
        outbox = Outbox(store, ok_deliver)
        item = make_item(outbox, 1)
        item.body = "not bytes"  # type: ignore[assignment]
        with pytest.raises(TypeError, match="body"):
            await outbox.submit(item)
        assert store.outgoing() == []
        store.close()

    run(main())
    with pytest.raises(ValueError):
        Outbox(MemoryStore(), ok_deliver, per_peer=0)
    with pytest.raises(ValueError):
        Outbox(MemoryStore(), ok_deliver, first_backoff=2.0, max_backoff=1.0)


class CountingStore(SQLiteStore):
    """A real SQLite store that counts how often the loop reads the due items, and how many."""

    reads = 0
    rows_read = 0

    def claim_due(self, *args: Any, **kwargs: Any) -> list[OutboxItem]:
        self.reads += 1
        found = super().claim_due(*args, **kwargs)
        self.rows_read += len(found)
        return found


def test_no_busy_loop_when_idle_or_waiting_on_a_peer(tmp_path):
    hold = asyncio.Event()

    async def stuck(item: OutboxItem) -> None:
        await asyncio.wait_for(hold.wait(), 5)

    async def main() -> None:
        store = CountingStore(tmp_path / "outbox.sqlite")
        outbox = Outbox(store, stuck, poll_interval=0.1)
        await outbox.start()
        try:
            await asyncio.sleep(0.5)  # nothing to do
            assert store.reads <= 8, store.reads
            await outbox.submit(make_item(outbox, 1))  # in flight, due, excluded: no spinning
            store.reads = 0
            await asyncio.sleep(0.5)
            assert store.reads <= 8, store.reads
            hold.set()
            assert await outbox.wait_idle(5)
        finally:
            await outbox.stop()
        assert store.outgoing()[0].state == "delivered"
        store.close()

    run(main())


def test_delivered_items_are_forgotten_after_keep_delivered(monkeypatch):
    monkeypatch.setattr(outbox_module, "PRUNE_INTERVAL", 0.05)

    async def scenario():
        store = MemoryStore()
        delivered: list[str] = []

        async def deliver(item):
            delivered.append(item.message_id)
        outbox = Outbox(store, deliver, keep_delivered=0.0, poll_interval=0.05)
        await outbox.start()
        try:
            first, second = make_item(outbox, 1), make_item(outbox, 2)
            await outbox.submit(first)
            await outbox.submit(second)
            await until(lambda: len(delivered) == 2 and not store.outgoing(), 5.0)
            assert delivered == [first.message_id, second.message_id]
        finally:
            await outbox.stop()
    run(scenario())


def test_submitted_items_go_out_claimed_and_their_marks_ride_on_later_writes(tmp_path):
    """#23: an item submitted with a free slot (or room in its peer's queue) is stored
    claimed, so no claim_due takes it; delivered marks are committed with the next item or
    together, and all are committed by stop()."""
    async def main() -> None:
        posted: list[str] = []
        gate = asyncio.Event()

        async def deliver(item: OutboxItem) -> None:
            await gate.wait()
            posted.append(item.message_id)

        with SQLiteStore(tmp_path / "s.sqlite") as store:
            outbox = Outbox(store, deliver, per_peer=2)
            await outbox.start()
            for n in range(5):  # 2 in flight, 3 queued: all claimed, none due for claim_due
                await outbox.submit(make_item(outbox, n))
            assert store.claim_due(time.time() + 1) == []
            gate.set()
            assert await outbox.wait_idle(10)
            assert sorted(posted) == sorted(f"msg-dso.example.com-{n}" for n in range(5))
            assert len(store.outgoing("delivered")) == 5
            await outbox.stop()

    run(main())


def test_a_crash_between_post_and_mark_posts_again(tmp_path):
    """The marks are not committed before the next write or 50 ms: a process that dies in
    between (here: its store closed under it, the outbox never stopped) left the item
    pending, and the restarted process posts it again; the recipient drops the repeat."""
    path = tmp_path / "s.sqlite"
    posted: list[str] = []

    async def deliver(item: OutboxItem) -> None:
        posted.append(item.message_id)

    async def first() -> None:
        store = SQLiteStore(path)
        outbox = Outbox(store, deliver)
        await outbox.start()
        await outbox.submit(make_item(outbox, 1))
        while not posted:
            await asyncio.sleep(0)
        store.close()  # "dies": the mark was not committed yet
        outbox._loop_task.cancel()

    async def second() -> None:
        with SQLiteStore(path) as store:
            outbox = Outbox(store, deliver)
            await outbox.start()
            assert await outbox.wait_idle(10)
            await outbox.stop()
            assert [i.message_id for i in store.outgoing("delivered")] == [posted[0]]

    run(first())
    run(second())
    assert len(posted) == 2 and posted[0] == posted[1]
