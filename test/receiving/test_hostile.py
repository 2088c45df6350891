"""Hostile input at a service, over real sockets on 127.0.0.1: each gets a clear 4xx, expands
nothing, reads nothing it should not, and the service goes on serving others."""
from __future__ import annotations

import asyncio
import base64
import logging
from contextlib import asynccontextmanager

import pytest

from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery import Directory
from pyuftp.signing.envelope import seal_message
from pyuftp.server.service import ShapeshifterDsoService

from conftest import fresh, run

WAIT = 10.0


@asynccontextmanager
async def service(**options):
    directory = Directory()
    dso_key, dso_public = generate_keypair()
    agr_key, agr_public = generate_keypair()
    handled: list[str] = []
    dso = ShapeshifterDsoService("dso.example.com", dso_key, directory.key, directory.endpoint,
                                 port=0, **options)
    dso.add_handler("TestMessage", lambda payload: handled.append(payload["message_id"]))
    async with dso:
        directory.add("dso.example.com", "DSO", dso_public, dso.url)
        directory.add("agr.example.com", "AGR", agr_public, None)
        yield dso, agr_key, handled


async def raw_request(port: int, head: bytes, body: bytes = b"", *, close_after: bool = True,
                      wait: float = WAIT) -> tuple[int, bytes]:
    """Send raw bytes as an HTTP request and read the status line that comes back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(65536), wait)
    finally:
        writer.close()
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
    return status, response


def head(path: str, length: int, content_type: str = "text/xml; charset=utf-8") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n").encode()


async def post(dso, body: bytes) -> tuple[int, bytes]:
    return await raw_request(dso.port, head(dso.path, len(body)), body)


async def still_serving(dso, agr_key, handled) -> None:
    payload = fresh("TestMessage", sender_domain="agr.example.com", recipient_domain="dso.example.com")
    data, sent = seal_message("TestMessage", payload, agr_key, "AGR")
    status, _ = await post(dso, data)
    assert status == 200
    for _ in range(200):
        if sent["message_id"] in handled:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the valid message after the hostile one was not handled")


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
               for i in range(1, 10))
    + b']><SignedMessage SenderDomain="agr.example.com" SenderRole="AGR" Body="&lol9;"/>'
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    b'<SignedMessage SenderDomain="agr.example.com" SenderRole="AGR" Body="&secret;"/>'
)
NETWORK_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/evil.dtd">'
    b'<SignedMessage SenderDomain="agr.example.com" SenderRole="AGR" Body="AAAA"/>'
)


@pytest.mark.parametrize(
    "name,body,status",
    [
        ("billion laughs", BILLION_LAUGHS, 400),
        ("external entity", EXTERNAL_ENTITY, 400),
        ("external DTD", NETWORK_ENTITY, 400),
        ("invalid base64", b'<SignedMessage SenderDomain="agr.example.com" SenderRole="AGR" Body="@@not base64@@"/>', 400),
        ("shorter than a signature",
         b'<SignedMessage SenderDomain="agr.example.com" SenderRole="AGR" Body="'
         + base64.b64encode(b"0123456789") + b'"/>', 401),
        ("non-UTF-8 bytes", b'<SignedMessage SenderDomain="agr.\xff\xfe.com" SenderRole="AGR" Body="AAAA"/>', 400),
        ("deeply nested", b"<SignedMessage>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</SignedMessage>", 400),
        ("huge invalid attribute", b'<SignedMessage SenderDomain="' + b"A" * 3_000_000
         + b'.com" SenderRole="AGR" Body="AAAA"/>', 400),
        ("huge valid domain", b'<SignedMessage SenderDomain="' + b"a" * 3_000_000
         + b'.com" SenderRole="AGR" Body="AAAA"/>', 419),
        ("empty body", b"", 400),
        ("unknown role", b'<SignedMessage SenderDomain="agr.example.com" SenderRole="BRP" Body="AAAA"/>', 400),
    ],
)
def test_hostile_bodies(name, body, status):
    async def scenario():
        async with service() as (dso, agr_key, handled):
            got, response = await post(dso, body)
            assert got == status, response[:300]
            assert b"root:" not in response  # no file content ever reflected
            assert len(response) < 2000  # nor the hostile input itself
            await still_serving(dso, agr_key, handled)
    run(scenario())


def test_oversized_body_is_refused_without_reading_it():
    async def scenario():
        async with service(max_body=64 * 1024) as (dso, agr_key, handled):
            # Announce 100 MB, send 1 KB: the answer must come at once, not after 100 MB.
            status, _ = await raw_request(dso.port, head(dso.path, 100_000_000), b"<" * 1024,
                                          wait=3.0)
            assert status == 413
            await still_serving(dso, agr_key, handled)
    run(scenario())


def test_a_body_in_pieces_within_the_read_timeout_is_taken():
    """(#23) A body that is all there when the handler starts is read without a timer; one
    still arriving is read within ``read_timeout``: both are taken (only one that does not
    finish in time is cut off, below)."""
    async def scenario():
        async with service(read_timeout=5.0) as (dso, agr_key, handled):
            payload = fresh("TestMessage", sender_domain="agr.example.com",
                            recipient_domain="dso.example.com")
            data, sent = seal_message("TestMessage", payload, agr_key, "AGR")
            reader, writer = await asyncio.open_connection("127.0.0.1", dso.port)
            try:
                writer.write(head(dso.path, len(data)) + data[:100])
                await writer.drain()
                await asyncio.sleep(0.3)  # the handler waits for the rest meanwhile
                writer.write(data[100:])
                await writer.drain()
                response = await asyncio.wait_for(reader.read(65536), WAIT)
            finally:
                writer.close()
            assert response.startswith(b"HTTP/1.1 200"), response[:200]
            for _ in range(200):
                if sent["message_id"] in handled:
                    break
                await asyncio.sleep(0.02)
            assert sent["message_id"] in handled
            await still_serving(dso, agr_key, handled)
    run(scenario())


def test_a_refusal_names_the_sender_the_envelope_gives(caplog):
    """(#23) Who sent a refused request is worked out only for the refusal: the answer
    and the log line still name the envelope's sender and role, bounded and escaped."""
    stranger_key, _ = generate_keypair()

    async def scenario():
        async with service() as (dso, agr_key, handled):
            payload = fresh("TestMessage", sender_domain="stranger.example.com",
                            recipient_domain="dso.example.com")
            data, _ = seal_message("TestMessage", payload, stranger_key, "AGR")
            with caplog.at_level(logging.WARNING, logger="pyuftp"):
                status, response = await post(dso, data)
            assert status == 419
            assert b"no public key found for stranger.example.com (AGR)" in response
            await still_serving(dso, agr_key, handled)
    run(scenario())
    refused = [r for r in caplog.records if "with HTTP 419" in r.getMessage()]
    assert len(refused) == 1
    assert "refused a request from stranger.example.com (AGR)" in refused[0].getMessage()
    assert (refused[0].counterparty, refused[0].role) == ("stranger.example.com", "AGR")


def test_a_request_that_never_finishes_is_cut_off():
    async def scenario():
        async with service(read_timeout=0.5) as (dso, agr_key, handled):
            started = asyncio.get_running_loop().time()
            status, _ = await raw_request(dso.port, head(dso.path, 5000), b"<SignedMessage ",
                                          wait=5.0)
            assert status == 408
            assert asyncio.get_running_loop().time() - started < 4.0
            await still_serving(dso, agr_key, handled)
    run(scenario())


def test_many_bad_requests_do_not_stop_good_ones():
    async def scenario():
        async with service() as (dso, agr_key, handled):
            bad = [post(dso, BILLION_LAUGHS) for _ in range(20)]
            bad += [post(dso, b"\x00" * 1000) for _ in range(20)]
            results = await asyncio.gather(*bad)
            assert {status for status, _ in results} == {400}
            await still_serving(dso, agr_key, handled)
    run(scenario())
