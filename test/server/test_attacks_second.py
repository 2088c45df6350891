"""Issue #16, items 6 and 8 and two weaker spots, against a real service process on loopback:
one client address cannot take every connection, the cap is exact and refusals are 503s (not
resets), UTF-16 is refused, malformed HTTP makes few WARNING lines, and unknown senders cost
one key look-up each.

Several client addresses on one machine: 127.0.0.2, 127.0.0.3 ... are all loopback on Linux;
a client socket bound to one of them is "another client" to the service on 127.0.0.1. The
service process runs the pyuftp this test process imports (so ``PYTHONPATH=/work/before``
runs these tests against another tree).
"""
from __future__ import annotations

import pytest

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pyuftp
from pyuftp.signing.envelope import seal_message, wrap
from pyuftp.message.codec import build_message

from conftest import fresh, run

pytestmark = pytest.mark.slow  # subprocesses, sockets or mypy: seconds each

HERE = Path(__file__).resolve().parents[1]  # test/: the helper scripts
TREE = Path(pyuftp.__file__).resolve().parent.parent
DSO_KEY, DSO_PUBLIC = pyuftp.generate_keypair()
AGR_KEY, AGR_PUBLIC = pyuftp.generate_keypair()
STRANGER_KEY, _ = pyuftp.generate_keypair()
PATH = "/shapeshifter/api/v3/message"
HOSTILE, PROBE = "127.0.0.2", "127.0.0.3"


@contextmanager
def attacked(tmp_path: Path, **options):
    """A DSO service process (attack_service.py, this process's pyuftp); yields (port, log)."""
    log = tmp_path / "service.log"
    env = dict(os.environ, PYTHONPATH=str(TREE))
    process = subprocess.Popen(
        [sys.executable, str(HERE / "attack_service.py"), json.dumps(options), DSO_KEY,
         AGR_PUBLIC],
        env=env, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    try:
        line = process.stdout.readline()
        assert line.strip().isdigit(), log.read_text()[-2000:]
        yield int(line), log
    finally:
        process.kill()
        process.wait(10)


def request(body: bytes, content_type: str = "text/xml; charset=utf-8") -> bytes:
    return (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


async def connect(port: int, source: str):
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 5.0)


async def exchange(port: int, raw: bytes, source: str = PROBE) -> tuple[int, bytes]:
    """Send ``raw`` from ``source``, read the whole answer: (status, answer); status 0 for
    no HTTP answer, -1 for a reset."""
    reader, writer = await connect(port, source)
    try:
        writer.write(raw)
        answer = await asyncio.wait_for(reader.read(), 10.0)
    except ConnectionResetError:
        return -1, b""
    finally:
        writer.close()
    return (int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0), answer


def probe_body() -> bytes:
    payload = fresh("TestMessage", sender_domain="agr.example.com",
                    recipient_domain="dso.example.com")
    return seal_message("TestMessage", payload, AGR_KEY, "AGR")[0]


async def held_or_refused(reader) -> str:
    """"held" when nothing comes within a moment, "503" when a whole 503 with Retry-After
    comes, else what happened."""
    try:
        answer = await asyncio.wait_for(reader.read(), 1.0)
    except asyncio.TimeoutError:
        return "held"
    except ConnectionResetError:
        return "reset"
    if answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer:
        return "503"
    return repr(answer[:40])


# --- 6. per-address fairness, an exact cap, 503s that arrive ----------------------------------


def test_one_address_cannot_take_every_connection(tmp_path):
    async def scenario():
        with attacked(tmp_path, limits={"max_connections": 40, "idle_timeout": 30.0}) as (port, _):
            hostile = await asyncio.gather(*[connect(port, HOSTILE) for _ in range(60)])
            outcomes = await asyncio.gather(*[held_or_refused(r) for r, _ in hostile])
            # The default share of one address is a quarter of the cap.
            assert outcomes.count("held") == 10, outcomes
            assert outcomes.count("503") == 50, outcomes
            for _ in range(5):  # another client is served meanwhile (before: 503 each time)
                status, answer = await exchange(port, request(probe_body()), PROBE)
                assert status == 200, answer[:200]
            for _, writer in hostile:
                writer.close()
    run(scenario())


def test_the_cap_is_exact_and_refused_clients_read_503_not_a_reset(tmp_path):
    async def scenario():
        with attacked(tmp_path, limits={"max_connections": 40, "idle_timeout": 30.0}) as (port, _):
            sources = [f"127.0.0.{n}" for n in range(10, 18)]  # 10 each: each within its share
            held = await asyncio.gather(*[connect(port, s) for s in sources for _ in range(10)])
            outcomes = await asyncio.gather(*[held_or_refused(r) for r, _ in held])
            assert outcomes.count("held") == 40, outcomes  # 80 at once, never one more
            assert outcomes.count("503") == 40, outcomes
            # Clients sending a whole request (64 KiB of body) while the cap is full read
            # the 503; the service closing with their request unread would reset them.
            body = probe_body() + b" " * 65536
            refused = await asyncio.gather(*[exchange(port, request(body), "127.0.0.20")
                                             for _ in range(20)])
            statuses = [status for status, _ in refused]
            assert statuses == [503] * 20, statuses
            assert all(b"Retry-After: 1" in answer for _, answer in refused)
            for _, writer in held:
                writer.close()
            await asyncio.sleep(0.3)
            status, _ = await exchange(port, request(probe_body()))
            assert status == 200  # every slot came back
    run(scenario())


# --- 8. UTF-8 only ------------------------------------------------------------------------------


def _utf16_envelope(with_bom: bool) -> bytes:
    text = probe_body().decode("utf-8")
    if with_bom:
        return text.encode("utf-16")
    declared = re.sub(r"^<\?xml[^>]*\?>", "", text)
    return ('<?xml version="1.0" encoding="UTF-16"?>' + declared).encode("utf-16-le")


def _sealed_payload(encode) -> bytes:
    payload = fresh("TestMessage", sender_domain="agr.example.com",
                    recipient_domain="dso.example.com")
    xml, _ = build_message("TestMessage", payload)
    xml = xml if isinstance(xml, str) else xml.decode("utf-8")
    xml = re.sub(r"^<\?xml[^>]*\?>", "", xml)
    return wrap(encode(xml), AGR_KEY, "agr.example.com", "AGR")


def test_utf16_and_other_encodings_are_refused_with_400(tmp_path):
    cases = {
        "UTF-16 envelope": _utf16_envelope(with_bom=True),
        "UTF-16 envelope, no BOM": _utf16_envelope(with_bom=False),
        "UTF-16 payload": _sealed_payload(lambda xml: xml.encode("utf-16")),
        "UTF-32 payload": _sealed_payload(lambda xml: xml.encode("utf-32")),
        "Latin-1 payload": _sealed_payload(
            lambda xml: b'<?xml version="1.0" encoding="ISO-8859-1"?>' + xml.encode("ascii")),
    }

    async def scenario():
        with attacked(tmp_path) as (port, _):
            for name, body in cases.items():
                status, answer = await exchange(port, request(body))
                assert status == 400, (name, answer[:300])
                assert b"must be UTF-8" in answer, (name, answer[-300:])
            # A UTF-8 payload with a UTF-8 byte order mark is still UTF-8.
            good = _sealed_payload(lambda xml: b"\xef\xbb\xbf" + xml.encode("utf-8"))
            status, answer = await exchange(port, request(good))
            assert status == 200, answer[-300:]
    run(scenario())


# --- malformed HTTP: warnings, rate-limited -----------------------------------------------------


def test_malformed_http_makes_a_few_warning_lines_not_errors(tmp_path):
    malformed = [
        b"POST / HTTP/1.1\r\nHost: x\r\nA header without a colon\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
    ]

    async def scenario():
        with attacked(tmp_path) as (port, log):
            for n in range(60):
                status, _ = await exchange(port, malformed[n % 3])
                assert status == 400
            await asyncio.sleep(0.3)
            lines = [line for line in log.read_text().splitlines() if "pyuftp.http" in line]
            assert lines, "nothing logged about 60 malformed requests"
            assert not [line for line in lines if line.startswith(("ERROR", "CRITICAL"))], lines
            assert 1 <= len(lines) <= 10, lines  # 60 before, all ERROR
            status, _ = await exchange(port, request(probe_body()))
            assert status == 200
    run(scenario())


# --- unknown senders: one key look-up each ------------------------------------------------------


def _stranger_message() -> bytes:
    payload = fresh("TestMessage", sender_domain="stranger.example.com",
                    recipient_domain="dso.example.com")
    return seal_message("TestMessage", payload, STRANGER_KEY, "AGR")[0]


def _lookups(log: Path, domain: str = "stranger.example.com") -> int:
    return log.read_text().count(f"key lookup {domain} AGR")


def test_fifty_messages_from_an_unknown_sender_cost_one_key_lookup(tmp_path):
    async def scenario():
        with attacked(tmp_path, log_lookups=True) as (port, log):
            statuses = [(await exchange(port, request(_stranger_message())))[0]
                        for _ in range(50)]
            assert statuses == [419] * 50
            await asyncio.sleep(0.2)
            assert _lookups(log) == 1  # 50 before
            status, _ = await exchange(port, request(probe_body()))
            assert status == 200  # a known sender is looked up as before
    run(scenario())


def test_a_remembered_unknown_sender_is_looked_up_again_after_the_ttl(tmp_path):
    async def scenario():
        with attacked(tmp_path, log_lookups=True, service={"unknown_key_ttl": 1.0}) as (port, log):
            for _ in range(3):
                assert (await exchange(port, request(_stranger_message())))[0] == 419
            await asyncio.sleep(0.1)
            assert _lookups(log) == 1
            await asyncio.sleep(1.2)
            assert (await exchange(port, request(_stranger_message())))[0] == 419
            await asyncio.sleep(0.1)
            assert _lookups(log) == 2
    run(scenario())


def test_the_negative_cache_can_be_turned_off(tmp_path):
    async def scenario():
        with attacked(tmp_path, log_lookups=True, service={"unknown_key_ttl": 0}) as (port, log):
            for _ in range(5):
                assert (await exchange(port, request(_stranger_message())))[0] == 419
            await asyncio.sleep(0.1)
            assert _lookups(log) == 5
    run(scenario())


def test_a_utf8_check_takes_time_linear_in_the_size():
    from pyuftp.signing.envelope import require_utf8
    from pyuftp.exceptions import MalformedXML

    body = b"<a>" + "é".encode() * 2_000_000 + b"</a>"
    started = time.perf_counter()
    require_utf8(body, "x")
    assert time.perf_counter() - started < 0.5
    try:
        require_utf8(body[:-5] + b"\xff</a>", "x")
    except MalformedXML as exc:
        assert "offset" in str(exc)
    else:
        raise AssertionError("invalid UTF-8 accepted")
