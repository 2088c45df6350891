"""A client's send, end to end over a socket on 127.0.0.1: the bytes POSTed are the same with
the message layer's speed-ups on, without the C extension, and plain (PYUFTP_PLAIN); the
shortcuts of the send path (headers without an auth, the plain-http check of the last URL,
the log line's fields) change nothing a peer or a log reader sees."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from aiohttp import web

import pyuftp
from pyuftp import ShapeshifterAgrDsoClient
from pyuftp.exceptions import FinalDeliveryError
from pyuftp.message import speed
from pyuftp.message.examples import flex_offer_96
from pyuftp.signing.envelope import open_envelope, open_message

from conftest import run

AGR_KEY, AGR_PUBLIC = pyuftp.generate_keypair()
AGR, DSO = "agr.example.com", "dso.example.com"
FIXED = {"message_id": "0b6f3a2e-9c1d-4e5f-8a7b-112233445566",
         "conversation_id": "1c7e4b3f-0d2e-4f60-9b8c-223344556677"}


async def _server(seen: list[tuple[dict[str, str], bytes]]) -> tuple[web.AppRunner, str]:
    async def receive(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.read()))
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_post("/m", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/m"


def _offer() -> dict[str, Any]:
    """The 96-ISP offer for tomorrow, its metadata fixed: the same bytes each time it is
    sealed (Ed25519 signatures are deterministic)."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    offer = dict(flex_offer_96(), **FIXED, time_stamp=now)
    for key in ("sender_domain", "recipient_domain"):
        offer.pop(key, None)
    offer["period"] = (now + dt.timedelta(days=1)).date()
    offer["expiration_date_time"] = now + dt.timedelta(hours=20)
    return offer


def test_the_posted_bytes_are_the_same_fast_without_c_and_plain(monkeypatch):
    seen: list[tuple[dict[str, str], bytes]] = []

    async def main() -> list[dict[str, Any]]:
        runner, url = await _server(seen)
        sent = []
        offer = _offer()
        try:
            async with ShapeshifterAgrDsoClient(AGR, AGR_KEY, DSO, url) as client:
                for enabled, native in ((True, True), (True, False), (False, False)):
                    monkeypatch.setattr(speed, "ENABLED", enabled)
                    monkeypatch.setattr(speed, "NATIVE", native)
                    sent.append(await client.send_flex_offer(offer))
        finally:
            await runner.cleanup()
        return sent

    sent = run(main())
    assert sent[0] == sent[1] == sent[2]
    bodies = [body for _, body in seen]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]
    received = open_message(open_envelope(bodies[0]), AGR_PUBLIC)
    assert received.payload == sent[0] and received.message_type == "FlexOffer"
    assert received.payload["message_id"] == FIXED["message_id"]
    headers = seen[0][0]
    assert headers["Content-Type"] == "text/xml; charset=utf-8"
    assert "Authorization" not in headers


def test_a_poster_that_posted_to_loopback_still_refuses_plain_http_elsewhere():
    seen: list[tuple[dict[str, str], bytes]] = []

    async def main() -> None:
        runner, url = await _server(seen)
        try:
            async with ShapeshifterAgrDsoClient(AGR, AGR_KEY, DSO, url) as client:
                poster = client.courier.poster
                assert await poster.post_once(b"<x/>", url) == 200
                assert await poster.post_once(b"<x/>", url) == 200
                with pytest.raises(FinalDeliveryError, match="plain http to 192.0.2.7"):
                    await poster.post_once(b"<x/>", "http://192.0.2.7/m")
                assert await poster.post_once(b"<x/>", url) == 200
                # 0.0.0.0 is no loopback address to the check, yet Linux connects it to
                # 127.0.0.1: the verdict on one URL follows the setting, both ways
                anywhere = url.replace("127.0.0.1", "0.0.0.0")
                poster.allow_plain_http = True
                assert await poster.post_once(b"<x/>", anywhere) == 200
                poster.allow_plain_http = False
                with pytest.raises(FinalDeliveryError, match="plain http to 0.0.0.0"):
                    await poster.post_once(b"<x/>", anywhere)
                poster.allow_plain_http = True
                assert await poster.post_once(b"<x/>", anywhere) == 200
        finally:
            await runner.cleanup()

    run(main())
    assert len(seen) == 5


def test_the_sent_line_is_logged_with_its_fields_at_info(caplog):
    seen: list[tuple[dict[str, str], bytes]] = []

    async def main() -> None:
        runner, url = await _server(seen)
        try:
            async with ShapeshifterAgrDsoClient(AGR, AGR_KEY, DSO, url) as client:
                caplog.set_level(logging.WARNING, logger="pyuftp")
                await client.send_flex_offer(_offer())
                assert not [r for r in caplog.records if r.getMessage().startswith("sent ")]
                caplog.set_level(logging.INFO, logger="pyuftp")
                await client.send_flex_offer(_offer())
        finally:
            await runner.cleanup()

    run(main())
    lines = [r for r in caplog.records if r.getMessage().startswith("sent ")]
    assert len(lines) == 1
    assert lines[0].message_id == FIXED["message_id"]  # type: ignore[attr-defined]
    assert lines[0].counterparty == DSO  # type: ignore[attr-defined]
    assert FIXED["conversation_id"] in lines[0].getMessage()
