"""Several service processes on one PostgreSQL database, as behind a load balancer: messages
split between them are each handled once and answered, also when one instance is SIGKILLed
and nothing is restarted (the survivors take over its messages once its leases end); one
message POSTed to two instances at the same moment is handled once; a sender killed
mid-delivery leaves its outbox to another sender process on the same database.

Uses crash_answerer.py and crash_sender.py (test_crash.py's processes) with a PostgreSQL URL
for their store. A server: see pg.HOW."""
from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pg
from procs import free_port, read_line, sender

from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery import Directory
from pyuftp.server.service import ShapeshifterAgrService, ShapeshifterDsoService

pytestmark = pytest.mark.slow  # subprocesses, sockets or mypy: seconds each

HERE = Path(__file__).resolve().parents[1]  # test/: the helper scripts
UNDELIVERED = "SELECT count(*) FROM outbox WHERE state <> 'delivered'"
LEASE = 2.0  # seconds: the handling and outbox leases of the instances (short, for the test)


@pytest.fixture
def schema():
    pg.require()
    name = pg.new_schema()
    yield name
    pg.drop(name)


def count_rows(schema: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(pg.URL, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        row = conn.execute(sql).fetchone()
    return int(row[0])


class Cluster:
    """DSO instances (crash_answerer.py processes) on one database, and an AGR service in
    this process that sends them FlexOffers and collects the answers."""

    def __init__(self, tmp_path: Path, schema: str, instances: int) -> None:
        self.tmp_path, self.instances = tmp_path, instances
        self.store = pg.store_url(schema, handling_lease=LEASE)
        self.ports = [free_port() for _ in range(instances)]
        self.urls = [f"http://127.0.0.1:{p}/shapeshifter/api/v3/message" for p in self.ports]
        self.dso_key, self.dso_public = generate_keypair()
        self.agr_key, self.agr_public = generate_keypair()
        self.answers: dict[str, set[str]] = {}
        self.processes: list[subprocess.Popen] = []

    def start(self, agr_url: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep
                   + os.environ.get("PYTHONPATH", ""))
        for n, port in enumerate(self.ports):
            self.processes.append(subprocess.Popen(
                [sys.executable, str(HERE / "crash_answerer.py"), self.store, str(port),
                 self.dso_key, self.agr_public, agr_url, str(LEASE)], env=env,
                stdout=subprocess.PIPE, stderr=(self.tmp_path / f"dso{n}.log").open("a"),
                text=True))
        deadline = time.monotonic() + 60
        for n, process in enumerate(self.processes):
            assert read_line(process, deadline).strip() == "listening", self.log(n)

    def log(self, n: int) -> str:
        return (self.tmp_path / f"dso{n}.log").read_text()[-3000:]

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(10)

    def on_answer(self, response, received) -> None:
        self.answers.setdefault(response["flex_offer_message_id"], set()).add(
            response["message_id"])

    def offers(self, count: int) -> list[tuple[bytes, dict]]:
        from pyuftp.signing.envelope import seal_message

        from conftest import fresh

        return [seal_message("FlexOffer", fresh("FlexOffer", sender_domain="agr.example.com",
                                                recipient_domain="dso.example.com"),
                             self.agr_key, "AGR") for _ in range(count)]

    async def answered(self, count: int, seconds: float) -> None:
        """Until every offer has an answer (bounded), then a little longer: a second answer
        would come now."""
        for _ in range(int(seconds / 0.05)):
            if len(self.answers) >= count:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)


async def post(session, url: str, data: bytes) -> int:
    import aiohttp

    try:
        async with session.post(url, data=data, headers={
                "Content-Type": "text/xml; charset=utf-8"}) as response:
            return response.status
    except aiohttp.ClientError:
        return 0


@pytest.mark.parametrize("instances", [2, 3])
def test_instances_share_the_stream_and_survive_a_sigkill(tmp_path, schema, instances):
    import aiohttp

    count = 300
    cluster = Cluster(tmp_path, schema, instances)
    statuses: dict[int, int] = {}
    killed_at: list[int] = []

    async def scenario() -> None:
        directory = Directory()
        agr = ShapeshifterAgrService("agr.example.com", cluster.agr_key, directory.key,
                                     directory.endpoint, port=0)
        agr.add_handler("FlexOfferResponse", cluster.on_answer)
        async with agr, aiohttp.ClientSession() as session:
            directory.add("dso.example.com", "DSO", cluster.dso_public, cluster.urls[0])
            directory.add("agr.example.com", "AGR", cluster.agr_public, agr.url)
            await asyncio.to_thread(cluster.start, agr.url)
            turn = itertools.count()

            async def deliver(data: bytes) -> None:
                # a load balancer: the next instance in turn; one that fails, the next
                for _ in range(200):  # bounded
                    n = next(turn) % instances
                    status = await post(session, cluster.urls[n], data)
                    if status == 200:
                        statuses[n] = statuses.get(n, 0) + 1
                        return
                    await asyncio.sleep(0.02)
                raise AssertionError("no instance took a message")

            gate = asyncio.Semaphore(16)  # a stream: 16 requests in flight at most

            async def one(data: bytes) -> None:
                async with gate:
                    await deliver(data)

            stream = asyncio.gather(*[one(data) for data, _ in cluster.offers(count)])
            for _ in range(600):  # mid-stream: instance 0 took its share of messages so far
                if statuses.get(0, 0) >= count // (3 * instances) or stream.done():
                    break
                await asyncio.sleep(0.01)
            cluster.processes[0].send_signal(signal.SIGKILL)
            await asyncio.to_thread(cluster.processes[0].wait, 10)
            killed_at.append(sum(statuses.values()))
            await asyncio.wait_for(stream, 60)
            await cluster.answered(count, 60)
            # an answer the killed instance posted but had not marked delivered is posted
            # again by a survivor once its lease ends (the AGR drops the repeat): wait for the
            # outbox to settle while the survivors run (bounded)
            for _ in range(60):
                if await asyncio.to_thread(count_rows, schema, UNDELIVERED) == 0:
                    break
                await asyncio.sleep(0.25)

    try:
        asyncio.run(asyncio.wait_for(scenario(), 150))
    finally:
        cluster.stop()
    assert len(statuses) == instances, statuses  # every instance took a share
    assert 0 < killed_at[0] < count  # killed mid-stream
    missing = count - len(cluster.answers)
    assert missing == 0, f"{missing} offers unanswered\n{cluster.log(1)}"
    twice = {k: v for k, v in cluster.answers.items() if len(v) != 1}
    assert not twice, f"{len(twice)} offers answered more than once"
    assert count_rows(schema, "SELECT count(*) FROM received WHERE handled_at IS NULL") == 0
    assert count_rows(schema, "SELECT count(*) FROM outbox") == count  # one answer each
    assert count_rows(schema, UNDELIVERED) == 0


def test_one_message_posted_to_two_instances_at_once_is_handled_once(tmp_path, schema):
    import aiohttp

    count = 60
    cluster = Cluster(tmp_path, schema, 2)
    statuses: list[tuple[int, int]] = []

    async def scenario() -> None:
        directory = Directory()
        agr = ShapeshifterAgrService("agr.example.com", cluster.agr_key, directory.key,
                                     directory.endpoint, port=0)
        agr.add_handler("FlexOfferResponse", cluster.on_answer)
        async with agr, aiohttp.ClientSession() as session:
            directory.add("dso.example.com", "DSO", cluster.dso_public, cluster.urls[0])
            directory.add("agr.example.com", "AGR", cluster.agr_public, agr.url)
            await asyncio.to_thread(cluster.start, agr.url)
            for data, _ in cluster.offers(count):  # each one to both at the same moment
                statuses.append(tuple(await asyncio.gather(
                    post(session, cluster.urls[0], data), post(session, cluster.urls[1], data))))
            await cluster.answered(count, 30)

    try:
        asyncio.run(asyncio.wait_for(scenario(), 90))
    finally:
        cluster.stop()
    assert set(statuses) == {(200, 200)}  # a duplicate is acknowledged too
    assert len(cluster.answers) == count
    assert all(len(ids) == 1 for ids in cluster.answers.values()), "handled twice"
    assert count_rows(schema, "SELECT count(*) FROM received") == count
    assert count_rows(schema, "SELECT count(*) FROM outbox") == count


def test_a_sender_killed_mid_delivery_leaves_its_outbox_to_another(tmp_path, schema):
    count, kill_after = 400, 150
    # the lease of items stored and not yet claimed (the store's), as well as the outbox's
    store = pg.store_url(schema, handling_lease=LEASE)
    port = free_port()
    url = f"http://127.0.0.1:{port}/shapeshifter/api/v3/message"
    agr_key, agr_public = generate_keypair()
    handled: list[str] = []

    async def scenario() -> tuple[list[str], int, str]:
        directory = Directory()
        dso_key, _ = generate_keypair()
        directory.add("agr.example.com", "AGR", agr_public, None)  # responses stay queued
        dso = ShapeshifterDsoService("dso.example.com", dso_key, directory.key,
                                     directory.endpoint, port=port, retry_for=5.0)
        dso.add_handler("TestMessage", lambda payload: handled.append(payload["message_id"]))
        async with dso:
            first = sender(tmp_path / "first.log", "send", store, url, agr_key, str(count),
                           str(LEASE))
            committed: list[str] = []
            deadline = time.monotonic() + 60
            while len(committed) < kill_after:  # delivering meanwhile: the DSO is up
                line = await asyncio.to_thread(read_line, first, deadline)
                if not line:
                    break
                committed.append(line.strip())
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait, 10)
            second = sender(tmp_path / "second.log", "resume", store, url, agr_key, "60",
                            str(LEASE))
            try:
                code = await asyncio.to_thread(second.wait, 90)
            finally:
                second.kill()
            await dso.drain(5.0)
            return committed, code, (second.stdout.read()
                                     + (tmp_path / "second.log").read_text()[-3000:])

    committed, code, output = asyncio.run(asyncio.wait_for(scenario(), 150))
    assert len(committed) == kill_after, (tmp_path / "first.log").read_text()[-3000:]
    assert code == 0, output
    assert len(handled) == len(set(handled)), "a message was handled twice"
    stored = count_rows(schema, "SELECT count(*) FROM outbox")
    assert set(committed) <= set(handled) and len(handled) == stored
    assert count_rows(schema, "SELECT count(*) FROM outbox WHERE state <> 'delivered'") == 0


def test_a_request_is_settled_by_a_response_that_reaches_another_instance(schema):
    """AGR instances A and B share one database; the DSO answers to B (the AGR's published
    endpoint), yet A's request() returns the response: A finds it in the shared archive."""
    from conftest import fresh

    store = pg.store_url(schema)
    dso_key, dso_public = generate_keypair()
    agr_key, agr_public = generate_keypair()

    async def scenario() -> tuple[dict, dict, list[str]]:
        directory = Directory()
        a = ShapeshifterAgrService("agr.example.com", agr_key, directory.key,
                                   directory.endpoint, port=0, store=store)
        b = ShapeshifterAgrService("agr.example.com", agr_key, directory.key,
                                   directory.endpoint, port=0, store=store)
        dso = ShapeshifterDsoService("dso.example.com", dso_key, directory.key,
                                     directory.endpoint, port=0)
        at_b: list[str] = []
        b.add_handler("FlexOfferResponse", lambda response: at_b.append(
            response["flex_offer_message_id"]))
        dso.add_handler("FlexOffer", lambda offer: {"result": "Accepted"})
        async with a, b, dso:
            directory.add("dso.example.com", "DSO", dso_public, dso.url)
            directory.add("agr.example.com", "AGR", agr_public, b.url)  # answers go to B
            sent, response = await a.request("dso.example.com", "DSO", "FlexOffer",
                                             fresh("FlexOffer"), timeout=20)
            await b.drain(5)
        return sent, response, at_b

    sent, response, at_b = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert response["flex_offer_message_id"] == sent["message_id"]
    assert response["conversation_id"] == sent["conversation_id"]
    assert response["result"] == "Accepted"
    assert at_b == [sent["message_id"]]  # it did reach B, not A
