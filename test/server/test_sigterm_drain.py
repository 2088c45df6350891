"""SIGTERM drains a service run by ``service.run()`` in a real process: it stops accepting,
the handlers in flight finish and are answered within ``shutdown_grace``, it exits with 0;
a handler cut off by the grace period is handled after the restart (#21)."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

import pyuftp
from pyuftp.discovery import Directory
from pyuftp.server.service import ShapeshifterAgrService

from conftest import run

HERE = Path(__file__).resolve().parent.parent
DSO_KEY, DSO_PUBLIC = pyuftp.generate_keypair()
AGR_KEY, AGR_PUBLIC = pyuftp.generate_keypair()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


def start_dso(store: Path, port: int, agr_url: str, handler: float, grace: float,
              log) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, str(HERE / "drain_service.py"), str(store),
                             str(port), DSO_KEY, AGR_PUBLIC, agr_url, str(handler), str(grace)],
                            env=env, stdout=log, stderr=log)


async def ready(port: int, process: subprocess.Popen, within: float = 20.0) -> None:
    """Wait until the service answers GET /health with 200 (bounded)."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the service process ended"
            try:
                async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the service did not become ready")


async def delivered(agr: ShapeshifterAgrService, count: int, within: float = 15.0) -> None:
    """Wait until ``count`` of the AGR's messages got their HTTP 200 (bounded)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if len(agr.store.outgoing("delivered")) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} messages delivered")


def test_sigterm_answers_handlers_in_flight_refuses_new_connections_and_exits_0(tmp_path):
    async def scenario():
        directory = Directory()
        agr = ShapeshifterAgrService("agr.example.com", AGR_KEY, directory.key,
                                     directory.endpoint, port=0)
        await agr.start()
        port = free_port()
        directory.add("dso.example.com", "DSO", DSO_PUBLIC,
                      f"http://127.0.0.1:{port}/shapeshifter/api/v3/message")
        log = open(tmp_path / "dso.log", "wb")
        dso = start_dso(tmp_path / "dso.sqlite", port, agr.url, 2.0, 10.0, log)
        try:
            await ready(port, dso)
            requests = [asyncio.ensure_future(agr.request("dso.example.com", "DSO",
                                                          "TestMessage", {}, timeout=30))
                        for _ in range(3)]
            await delivered(agr, 3)  # answered 200: the handlers are running now
            dso.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 1.5
            while not refused(port) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert refused(port), "new connections are still accepted after SIGTERM"
            assert dso.poll() is None, "the process ended without finishing its handlers"
            answers = await asyncio.wait_for(asyncio.gather(*requests), 20)
            assert all(response["conversation_id"] == sent["conversation_id"]
                       for sent, response in answers) and len(answers) == 3
            assert await asyncio.to_thread(dso.wait, 20) == 0
        finally:
            if dso.poll() is None:
                dso.kill()
            dso.wait(10)
            log.close()
            await agr.stop()
        text = (tmp_path / "dso.log").read_text()
        assert text.count("handled ") == 3 and "run() returned" in text, text[-3000:]
    run(scenario())


def test_a_handler_cut_off_by_the_grace_period_is_handled_after_the_restart(tmp_path):
    async def scenario():
        directory = Directory()
        agr = ShapeshifterAgrService("agr.example.com", AGR_KEY, directory.key,
                                     directory.endpoint, port=0)
        await agr.start()
        port = free_port()
        directory.add("dso.example.com", "DSO", DSO_PUBLIC,
                      f"http://127.0.0.1:{port}/shapeshifter/api/v3/message")
        log = open(tmp_path / "dso.log", "wb")
        store = tmp_path / "dso.sqlite"
        dso = start_dso(store, port, agr.url, 30.0, 0.5, log)  # the handler outlasts the grace
        again = None
        try:
            await ready(port, dso)
            request = asyncio.ensure_future(agr.request("dso.example.com", "DSO",
                                                        "TestMessage", {}, timeout=40))
            await delivered(agr, 1)
            await asyncio.sleep(0.3)  # the handler is sleeping
            started = time.monotonic()
            dso.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(dso.wait, 15) == 0
            assert time.monotonic() - started < 10, "the grace period was not kept"
            assert not request.done()  # not answered: the message stays unhandled
            again = start_dso(store, port, agr.url, 0.0, 5.0, log)  # a quick handler now
            sent, response = await asyncio.wait_for(request, 30)
            assert response["conversation_id"] == sent["conversation_id"]
            again.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(again.wait, 20) == 0
        finally:
            for process in (dso, again):
                if process is not None and process.poll() is None:
                    process.kill()
                if process is not None:
                    process.wait(10)
            log.close()
            await agr.stop()
        text = (tmp_path / "dso.log").read_text()
        assert "handlers unfinished after 0.5 s were cancelled" in text, text[-3000:]
        assert "received before a restart" in text, text[-3000:]
    run(scenario(), timeout=90)
