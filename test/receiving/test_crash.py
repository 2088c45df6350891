"""Nothing is lost and nothing is handled twice when a sender is killed (SIGKILL) mid-send."""
from __future__ import annotations

import pytest

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery import Directory
from pyuftp.server.service import ShapeshifterDsoService
from pyuftp.store import SQLiteStore

from procs import free_port, read_line, sender  # noqa: E402

pytestmark = pytest.mark.slow  # subprocesses, sockets or mypy: seconds each

HERE = Path(__file__).resolve().parents[1]  # test/: the helper scripts
COUNT = 1000
KILL_AFTER = 300  # committed messages before the kill


def test_sigkill_mid_send_then_restart_delivers_everything_exactly_once(tmp_path):
    store = str(tmp_path / "agr-outbox.sqlite")
    port = free_port()
    url = f"http://127.0.0.1:{port}/shapeshifter/api/v3/message"
    agr_key, agr_public = generate_keypair()

    # 1. The DSO is down; the AGR queues messages and is killed part-way through.
    first = sender(tmp_path / "first.log", "send", store, url, agr_key, str(COUNT))
    committed = []
    deadline = time.monotonic() + 60
    while len(committed) < KILL_AFTER:
        line = read_line(first, deadline)
        if not line:
            break
        committed.append(line.strip())
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert len(committed) == KILL_AFTER, (tmp_path / "first.log").read_text()[-3000:]
    assert first.returncode == -signal.SIGKILL

    # Everything printed was committed: the store holds at least that, nothing delivered.
    kept = SQLiteStore(store)
    stored = {item.message_id for item in kept.outgoing()}
    assert {item.state for item in kept.outgoing()} == {"pending"}
    kept.close()
    assert set(committed) <= stored and len(stored) < COUNT

    # 2. The DSO comes up; the AGR restarts and delivers what its outbox holds.
    handled: list[str] = []

    async def dso_side() -> tuple[int, str]:
        directory = Directory()
        dso_key, dso_public = generate_keypair()
        directory.add("agr.example.com", "AGR", agr_public, None)  # responses stay queued
        dso = ShapeshifterDsoService("dso.example.com", dso_key, directory.key,
                                     directory.endpoint, port=port, retry_for=5.0)
        dso.add_handler("TestMessage", lambda payload: handled.append(payload["message_id"]))
        async with dso:
            second = sender(tmp_path / "second.log", "resume", store, url, agr_key, "60")
            try:
                code = await asyncio.to_thread(second.wait, 90)
            finally:
                second.kill()
            await dso.drain(5.0)
            return code, second.stdout.read() + (tmp_path / "second.log").read_text()[-3000:]

    code, output = asyncio.run(dso_side())
    assert code == 0, output
    assert len(handled) == len(set(handled)), "a message was handled twice"
    assert set(handled) == stored, "lost: %d" % len(stored - set(handled))
    assert set(committed) <= set(handled)
    kept = SQLiteStore(store)
    assert {item.state for item in kept.outgoing()} == {"delivered"}
    kept.close()


def test_a_service_killed_after_its_200_handles_the_message_after_restart(tmp_path):
    """Received, answered 200, killed mid-handling: the restarted service handles the message
    once (flagged ``recovered``) and sends its response; a resend is not handled again."""
    from pyuftp.signing.envelope import seal_message
    from pyuftp.message.examples import example
    from pyuftp.clients import ShapeshifterAgrDsoClient
    from pyuftp.server.service import ShapeshifterAgrService

    store = str(tmp_path / "dso.sqlite")
    port = free_port()
    url = f"http://127.0.0.1:{port}/shapeshifter/api/v3/message"
    dso_key, dso_public = generate_keypair()
    agr_key, agr_public = generate_keypair()
    handled: list[tuple[str, bool]] = []

    async def scenario() -> None:
        directory = Directory()
        directory.add("dso.example.com", "DSO", dso_public, url)
        agr = ShapeshifterAgrService("agr.example.com", agr_key, directory.key,
                                     directory.endpoint, port=0)
        responses: asyncio.Queue = asyncio.Queue()
        agr.add_handler("FlexOfferResponse", responses.put)
        async with agr:
            directory.add("agr.example.com", "AGR", agr_public, agr.url)
            env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep
                       + os.environ.get("PYTHONPATH", ""))
            first = subprocess.Popen(
                [sys.executable, str(HERE / "crash_service.py"), store, str(port), dso_key,
                 agr_public, agr.url], env=env, stdout=subprocess.PIPE,
                stderr=(tmp_path / "dso.log").open("w"), text=True)
            try:
                deadline = time.monotonic() + 30
                assert (await asyncio.to_thread(read_line, first, deadline)).strip() == "listening"
                now = dt.datetime.now(dt.timezone.utc)
                payload = {k: v for k, v in example("FlexOffer", now=now).items()
                           if k not in ("version", "message_id", "conversation_id", "time_stamp")}
                payload.update(sender_domain="agr.example.com", recipient_domain="dso.example.com")
                data, sent = seal_message("FlexOffer", payload, agr_key, "AGR")
                async with ShapeshifterAgrDsoClient("agr.example.com", agr_key, "dso.example.com",
                                                    url, attempts=1) as client:
                    await client.courier.poster.post_once(data, url)  # HTTP 200: the DSO has it now
                    line = await asyncio.to_thread(read_line, first, deadline)
                    assert line.split() == ["handling", sent["message_id"]]
                    first.send_signal(signal.SIGKILL)
                    first.wait(timeout=10)

                    dso = ShapeshifterDsoService("dso.example.com", dso_key, directory.key,
                                                 directory.endpoint, port=port, store=store)
                    dso.add_handler("FlexOffer", lambda offer, received: handled.append(
                        (offer["message_id"], received.recovered)))
                    async with dso:
                        response = await asyncio.wait_for(responses.get(), 10)
                        await client.courier.poster.post_once(data, url)  # the sender retries: a duplicate now
                        assert await dso.drain(10)
            finally:
                first.kill()
        assert handled == [(sent["message_id"], True)]
        assert response["flex_offer_message_id"] == sent["message_id"]
        assert response["result"] == "Accepted"
        assert responses.empty()

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_kills_mid_work_never_give_a_request_two_answers(tmp_path):
    """A DSO answering FlexOffers is SIGKILLed again and again while offers arrive; after
    its last restart every offer has exactly one answer (one distinct response MessageID),
    however often its handling was interrupted. Before, 10 kills in 2,000 messages gave 43
    requests two different FlexOfferResponses."""
    import random

    import aiohttp

    from pyuftp.signing.envelope import seal_message
    from pyuftp.server.service import ShapeshifterAgrService

    from conftest import fresh

    store = str(tmp_path / "dso.sqlite")
    port = free_port()
    url = f"http://127.0.0.1:{port}/shapeshifter/api/v3/message"
    dso_key, dso_public = generate_keypair()
    agr_key, agr_public = generate_keypair()
    count, kills = 600, 6
    answers: dict[str, set[str]] = {}

    def start_dso(agr_url: str) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep
                   + os.environ.get("PYTHONPATH", ""))
        process = subprocess.Popen(
            [sys.executable, str(HERE / "crash_answerer.py"), store, str(port), dso_key,
             agr_public, agr_url], env=env, stdout=subprocess.PIPE,
            stderr=(tmp_path / "dso.log").open("a"), text=True)
        assert read_line(process, time.monotonic() + 30).strip() == "listening", \
            (tmp_path / "dso.log").read_text()[-3000:]
        return process

    async def scenario() -> None:
        directory = Directory()
        directory.add("dso.example.com", "DSO", dso_public, url)
        agr = ShapeshifterAgrService("agr.example.com", agr_key, directory.key,
                                     directory.endpoint, port=0)

        def on_answer(response, received):
            answers.setdefault(response["flex_offer_message_id"], set()).add(response["message_id"])
        agr.add_handler("FlexOfferResponse", on_answer)
        offers = []
        for _ in range(count):
            payload = fresh("FlexOffer", sender_domain="agr.example.com",
                            recipient_domain="dso.example.com")
            offers.append(seal_message("FlexOffer", payload, agr_key, "AGR"))
        async with agr, aiohttp.ClientSession() as session:
            directory.add("agr.example.com", "AGR", agr_public, agr.url)

            async def deliver(data: bytes) -> None:
                for _ in range(600):  # bounded: until the DSO (restarted) answers 200
                    try:
                        async with session.post(url, data=data, headers={
                                "Content-Type": "text/xml; charset=utf-8"}) as response:
                            if response.status == 200:
                                return
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)
                raise AssertionError("the DSO never took a message")

            dso = await asyncio.to_thread(start_dso, agr.url)
            sending = asyncio.ensure_future(asyncio.gather(*[
                deliver(data) for data, _ in offers]))
            try:
                for _ in range(kills):
                    await asyncio.sleep(random.uniform(0.3, 0.8))
                    dso.kill()
                    await asyncio.to_thread(dso.wait, 10)
                    dso = await asyncio.to_thread(start_dso, agr.url)
                await asyncio.wait_for(sending, 60)
                for _ in range(400):  # bounded: until every offer has its answer
                    if len(answers) == count:
                        break
                    await asyncio.sleep(0.05)
            finally:
                dso.kill()
                dso.wait(10)
                sending.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 120))
    assert len(answers) == count, f"{count - len(answers)} offers unanswered"
    twice = {request: ids for request, ids in answers.items() if len(ids) != 1}
    assert not twice, f"{len(twice)} requests got more than one answer"
