"""The inbox under a failing store, hostile log text and replays (#16.1, #16.4, replays).

Real services on 127.0.0.1, real SQLite files, real signatures; the one failing component
is a SQLite store whose journal writes fail while told to (a full disk, as the service sees
it), then work again.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web

from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery import Directory
from pyuftp.signing.envelope import open_envelope, open_message, seal_message, wrap
from pyuftp.exceptions import StoreError, excerpt, quote
from pyuftp.server.limits import Limits
from pyuftp.message.codec import create_message
from pyuftp.rules import Rules
from pyuftp.server.service import ShapeshifterDsoService
from pyuftp.store.sqlite import SQLiteStore

from conftest import fresh, run

# Every character str.splitlines() breaks a line at.
LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
PATH = "/shapeshifter/api/v3/message"
HEADERS = {"Content-Type": "text/xml; charset=utf-8"}


class FullDisk(SQLiteStore):
    """A real SQLite store whose journal writes fail while ``full`` is set."""

    full = False
    failed = 0

    def record_received(self, *args: Any, **kwargs: Any) -> str:
        if self.full:
            self.failed += 1
            raise StoreError("database or disk is full")
        return super().record_received(*args, **kwargs)


class Agr:
    """The AGR's endpoint: counts the responses it is sent, each verified."""

    def __init__(self) -> None:
        self.key, self.public = generate_keypair()
        self.dso_key, self.dso_public = generate_keypair()
        self.responses: list[dict[str, Any]] = []
        self.directory = Directory()
        self.runner: web.AppRunner | None = None

    async def answer(self, request: web.Request) -> web.Response:
        body = await request.read()
        received = open_message(open_envelope(body), self.dso_public, body)
        self.responses.append(received.payload)
        return web.Response(text="OK")

    async def __aenter__(self) -> "Agr":
        app = web.Application()
        app.router.add_post(PATH, self.answer)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{self.runner.addresses[0][1]}{PATH}"
        self.directory.add("agr.example.com", "AGR", self.public, url)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def service(self, **options: Any) -> ShapeshifterDsoService:
        dso = ShapeshifterDsoService("dso.example.com", self.dso_key, self.directory.key,
                                     self.directory.endpoint, port=0, **options)
        dso.add_handler("TestMessage", lambda payload: None)
        dso.add_handler("FlexOffer", lambda payload: None)
        return dso

    def test_message(self) -> bytes:
        payload = fresh("TestMessage", sender_domain="agr.example.com",
                        recipient_domain="dso.example.com")
        return seal_message("TestMessage", payload, self.key, "AGR")[0]

    async def wait_for(self, count: int, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while len(self.responses) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, str, float]:
    began = time.monotonic()
    async with session.post(url, data=body, headers=HEADERS) as reply:
        await reply.read()
        return reply.status, reply.headers.get("Retry-After", ""), time.monotonic() - began


# --- #16.1: a store that cannot record -----------------------------------------------------


def test_a_full_store_gets_503_at_once_and_service_resumes_by_itself(tmp_path):
    async def scenario() -> None:
        async with Agr() as agr:
            store = FullDisk(tmp_path / "dso.sqlite")
            dso = agr.service(store=store, max_pending=5,
                              limits=Limits(admission_timeout=3.0))
            async with dso, aiohttp.ClientSession() as session:
                store.full = True
                for n in range(20):  # four times the slots: a leak would show by the 6th
                    status, retry, took = await post(session, dso.url, agr.test_message())
                    assert (status, took < 1.5) == (503, True), (n, status, took)
                    assert retry.isdigit() and int(retry) > 0
                assert store.failed == 20
                store.full = False  # space freed: no restart needed
                for _ in range(8):
                    status, _, took = await post(session, dso.url, agr.test_message())
                    assert status == 200 and took < 1.5
                await agr.wait_for(8)
                assert len(agr.responses) == 8
                assert dso.inbox._admission.inside == 0

    run(scenario(), timeout=120)


# --- #16.4: log lines from sender data -------------------------------------------------------

# What XML and the entity-address pattern let through: the line separators beyond ASCII.
HOSTILE_POINT = "ea1.2026-11.grid:7\u2028INFO pyuftp.receiving.inbox: forged\x85WARNING x\u2029end"


def naive_rules(count: int) -> Rules:
    """A user's rule that quotes what it found raw, ``count`` times."""
    rules = Rules([])

    @rules.rule("user.naive", ["FlexOffer"], "quotes the congestion point raw")
    def naive(ctx: Any) -> list[str]:
        return [f"ISP {i} of {ctx.payload['congestion_point']} is out of the period"
                for i in range(count)]
    return rules


def test_log_lines_of_50000_problems_and_forged_separators_are_bounded(caplog):
    async def scenario() -> None:
        async with Agr() as agr:
            dso = agr.service(rules=naive_rules(50_000))
            payload = fresh("FlexOffer", sender_domain="agr.example.com",
                            recipient_domain="dso.example.com", congestion_point=HOSTILE_POINT)
            body = seal_message("FlexOffer", payload, agr.key, "AGR")[0]
            async with dso, aiohttp.ClientSession() as session:
                status, _, _ = await post(session, dso.url, body)
                assert status == 200
                await agr.wait_for(1)
        assert agr.responses[0]["result"] == "Rejected"
        assert len(agr.responses[0]["rejection_reason"]) <= 1000  # capped, as before

    caplog.set_level(logging.DEBUG, logger="pyuftp")
    run(scenario(), timeout=120)
    lines = [caplog.handler.format(r) for r in caplog.records if r.name.startswith("pyuftp")]
    rejecting = [line for line in lines if "rejecting FlexOffer" in line]
    assert rejecting, lines[-5:]
    assert "50000 problems" in rejecting[0]
    for line in lines:
        message = line.split("\nTraceback")[0]  # a traceback is ours, not the sender's
        assert len(message) <= 2000, message[:200]
        assert not set(message) & LINE_BREAKS, message[:300]


def test_excerpt_and_quote_escape_every_line_separator():
    for text in (HOSTILE_POINT + "\n\r\x0b\x0c\x1c\x1d\x1e", "x" * 10_000 + "\u2028"):
        for cut in (excerpt(text), quote(text), excerpt(text, 500), quote(text, 500)):
            assert len(cut) <= 500
            assert cut.splitlines() == [cut]

    class Forger:
        def __repr__(self) -> str:
            return "a\nINFO forged\u2028b"

        __str__ = __repr__
    assert quote(Forger()).splitlines() == [quote(Forger())]
    assert excerpt(Forger()).splitlines() == [excerpt(Forger())]


# --- replays of messages that are answered but not recorded ----------------------------------


def test_replayed_sender_mismatch_and_conflicting_id_are_answered_once():
    async def scenario() -> None:
        async with Agr() as agr:
            dso = agr.service()
            # Signed by agr.example.com, naming another sender inside: answered, not recorded.
            inner = fresh("TestMessage", sender_domain="other.example.com",
                          recipient_domain="dso.example.com")
            mismatch = wrap(create_message("TestMessage", inner), agr.key, "agr.example.com",
                            "AGR")
            first = fresh("TestMessage", sender_domain="agr.example.com",
                          recipient_domain="dso.example.com")
            original, sent = seal_message("TestMessage", first, agr.key, "AGR")
            other = dict(first, message_id=sent["message_id"], conversation_id=None)
            other.pop("conversation_id")
            conflict = seal_message("TestMessage", other, agr.key, "AGR")[0]
            async with dso, aiohttp.ClientSession() as session:
                assert (await post(session, dso.url, original))[0] == 200
                for _ in range(20):
                    assert (await post(session, dso.url, mismatch))[0] == 200
                    assert (await post(session, dso.url, conflict))[0] == 200
                await agr.wait_for(4, seconds=5.0)
                await asyncio.sleep(0.5)  # room for any further (wrong) answers
        # The original, one answer to the mismatch, one to the conflicting message.
        assert len(agr.responses) == 3, len(agr.responses)

    run(scenario(), timeout=120)
