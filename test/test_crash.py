"""Nothing is lost and nothing is handled twice when a sender is killed (SIGKILL) mid-send."""
from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pyuftp.crypto import generate_keypair
from pyuftp.discovery import Directory
from pyuftp.service import ShapeshifterDsoService
from pyuftp.store import SQLiteStore

HERE = Path(__file__).resolve().parent
COUNT = 1000
KILL_AFTER = 300  # committed messages before the kill


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sender(log: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # stderr (retry warnings, plenty of them while the DSO is down) goes to a file: a pipe
    # nobody reads would fill up and stall the sender.
    return subprocess.Popen([sys.executable, str(HERE / "crash_sender.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True)


def read_line(process: subprocess.Popen, deadline: float) -> str:
    """The next line of the process's output, or '' once the deadline has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not select.select([process.stdout], [], [], remaining)[0]:
        return ""
    return process.stdout.readline()


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
    from pyuftp.envelope import seal_message
    from pyuftp.examples import example
    from pyuftp.client import ShapeshifterAgrDsoClient
    from pyuftp.service import ShapeshifterAgrService

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
                payload = {k: v for k, v in example("FlexOffer").items()
                           if k not in ("version", "message_id", "conversation_id", "time_stamp")}
                payload.update(sender_domain="agr.example.com", recipient_domain="dso.example.com")
                data, sent = seal_message("FlexOffer", payload, agr_key, "AGR")
                async with ShapeshifterAgrDsoClient("agr.example.com", agr_key, "dso.example.com",
                                                    url, attempts=1) as client:
                    await client.post(data)  # HTTP 200: the DSO has it now
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
                        await client.post(data)  # the sender retries: a duplicate now
                        assert await dso.drain(10)
            finally:
                first.kill()
        assert handled == [(sent["message_id"], True)]
        assert response["flex_offer_message_id"] == sent["message_id"]
        assert response["result"] == "Accepted"
        assert responses.empty()

    asyncio.run(asyncio.wait_for(scenario(), 90))
