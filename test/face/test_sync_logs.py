"""The blocking facade (pyuftp.sync) against real services on 127.0.0.1, and the JSON log
formatter (pyuftp.logs)."""
from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time

import pytest

import pyuftp
from pyuftp.clients import ShapeshifterAgrDsoClient
from pyuftp.discovery import Directory
from pyuftp.logs import JsonFormatter
from pyuftp.server.service import ShapeshifterAgrService, ShapeshifterDsoService
from pyuftp.sync import SyncClient, SyncService

from conftest import fresh

AGR, DSO = "agr.example.com", "dso.example.com"


def sync_threads() -> int:
    return sum(t.name.startswith("pyuftp-sync") for t in threading.enumerate())


@pytest.fixture
def parties():
    """An AGR and a DSO service, each on its own private loop, knowing each other."""
    directory = Directory()
    keys = {role: pyuftp.generate_keypair() for role in ("AGR", "DSO")}
    got: list[dict] = []
    agr = SyncService(ShapeshifterAgrService, AGR, keys["AGR"][0], directory.key,
                      directory.endpoint, port=0, timeout=30)
    dso = SyncService(ShapeshifterDsoService, DSO, keys["DSO"][0], directory.key,
                      directory.endpoint, port=0, timeout=30)
    dso.add_handler("FlexOffer", got.append)
    with agr, dso:
        directory.add(AGR, "AGR", keys["AGR"][1], agr.service.url)
        directory.add(DSO, "DSO", keys["DSO"][1], dso.service.url)
        yield agr, dso, keys, got


def test_sync_client_sends_without_an_event_loop(parties):
    agr, dso, keys, got = parties
    before = sync_threads()
    with SyncClient(ShapeshifterAgrDsoClient, AGR, keys["AGR"][0], DSO, dso.service.url,
                    timeout=30) as client:
        sent = client.send("FlexOffer", fresh("FlexOffer"))
        also = client.send_flex_offer(fresh("FlexOffer"))  # generated methods block too
        assert sync_threads() == before + 1
    assert sent["message_id"] != also["message_id"]
    deadline = time.monotonic() + 15
    while len(got) < 2 and time.monotonic() < deadline:  # bounded in time
        time.sleep(0.05)
    assert {p["message_id"] for p in got} == {sent["message_id"], also["message_id"]}
    assert sync_threads() == before  # close ended the private thread
    with pytest.raises(RuntimeError, match="closed"):
        client.send("FlexOffer", fresh("FlexOffer"))


def test_sync_service_request_waits_for_the_answer(parties):
    agr, dso, _, _ = parties
    sent, answer = agr.request(DSO, "DSO", "TestMessage", {}, timeout=20)
    assert answer["conversation_id"] == sent["conversation_id"]
    assert answer["sender_domain"] == DSO


def test_sync_facade_refuses_a_running_loop(parties):
    agr, _, _, _ = parties

    async def inside() -> None:
        agr.request(DSO, "DSO", "TestMessage", {}, timeout=5)

    with pytest.raises(RuntimeError, match="running event loop"):
        asyncio.run(inside())


def test_sync_client_errors_arrive_as_they_are(parties):
    _, dso, keys, _ = parties
    with SyncClient(ShapeshifterAgrDsoClient, AGR, keys["AGR"][0], DSO, dso.service.url,
                    timeout=30) as client:
        with pytest.raises(pyuftp.ValidationError, match="power"):
            bad = fresh("FlexOffer")
            bad["offer_options"][0]["isps"][0]["power"] = "abc"
            client.send("FlexOffer", bad)


def record(message: str, **extra) -> logging.LogRecord:
    logger = logging.getLogger("pyuftp.test")
    return logger.makeRecord(logger.name, logging.WARNING, __file__, 1, message, (), None,
                             extra=extra)


def test_json_formatter_writes_one_object_per_line_with_the_message_fields():
    formatter = JsonFormatter()
    line = formatter.format(record("refused %s" % "x", message_type="FlexOffer",
                                   message_id="m-1", conversation_id="c-1",
                                   counterparty="agr.example.com"))
    data = json.loads(line)
    assert data["level"] == "WARNING" and data["logger"] == "pyuftp.test"
    assert data["message"] == "refused x" and data["time"].endswith("Z")
    assert [k for k in data if k in ("message_type", "message_id", "conversation_id",
                                     "counterparty")] == ["message_type", "message_id",
                                                          "conversation_id", "counterparty"]
    assert "message_type" not in json.loads(formatter.format(record("plain")))


def test_json_formatter_bounds_and_escapes_what_a_peer_wrote():
    formatter = JsonFormatter(max_length=100)
    hostile = "ok\n{\"level\":\"CRITICAL\"}\r\x1b[31m\u2028" + "A" * 10_000
    line = formatter.format(record(hostile, message_id=hostile))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line.isascii() and len(line) < 600
    data = json.loads(line)
    assert data["message"].startswith("ok\n{") and "more characters" in data["message"]
    try:
        raise ValueError("boom")
    except ValueError:
        with_exc = record("failed")
        with_exc.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(formatter.format(with_exc))["exception"]
    with pytest.raises(ValueError):
        JsonFormatter(max_length=5)
