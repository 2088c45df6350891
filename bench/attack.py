"""Attack bench: how a pyuftp DSO service holds up against hostile senders, in figures.

    python bench/attack.py [--tree PATH] [--only NAME ...] [--quick]

``--tree PATH`` is the source tree whose ``pyuftp`` is measured (put first on the path of
this process and of every child; default: the repository this script is in). ``--only``
runs some of the attacks (names below), in the order given. ``--quick`` uses smaller counts
and shorter waits (about 1.5 minutes instead of about 4 to 5).

A ``pyuftp.server.service.ShapeshifterDsoService`` for ``dso.example.com`` runs in a child process
on 127.0.0.1 (port 0), with only the constructor arguments every pyuftp version has. Its
``pyuftp.discovery.Directory`` knows ``agr.example.com`` (AGR), whose private key this
process holds; the AGR endpoint the service sends its responses to is a small aiohttp sink
in this process that answers every POST with 200. The child logs at INFO to a file (its
stderr). A *probe* is a TestMessage signed here (before the clock starts) and POSTed on a
new connection; its latency is connect + request + the whole response. Memory figures come
from ``/proc/PID/status`` of the child (VmRSS now, VmHWM the peak).

The attacks, each bounded in count and time, all on 127.0.0.1:

attributes     a SignedMessage with 20,000 / 40,000 / 100,000 extra attributes; probes every
               0.5 s while it is in flight: its status and time, the worst probe latency.
slow-headers   200 connections sending a request head at one byte per second: how many the
               service still holds open after 30 s, probe latency meanwhile.
idle           300 connections that send nothing: how many are still open after 30 s.
fd-exhaustion  a second service child limited to 256 file descriptors, 300 idle connections
               for 15 s: do probes get through, how many accept-error log lines, stderr size.
big-bodies     200 connections announcing a body of 4 MiB - 1 and sending all but its last
               byte: the child's RSS after the sending, its peak, its RSS 30 s after they
               close, and the statuses the service answered.
exceptions     signed envelopes (valid signature) whose payload carries xsi:schemaLocation,
               odd ISP-Durations, a 4,000-digit or negative price, a T24:00:00 time stamp:
               the HTTP status of each, tracebacks in the log, whether the service lives.
error-body     pyuftp's AGR->DSO client (in a child) against servers answering 500 with a
               300 MiB body, 503 with ``Retry-After: ²`` or ``999999999``, or never: the
               client's peak RSS, the exception it raises, how long the send takes.
log-size       a 100,000-byte garbage request line and an envelope with a 3 MB invalid
               SenderDomain: the longest line the service logs for each.
rules-duration (a DSO child with every rule and a SQLite store, which first sends a real AGR
               service here a FlexRequest) a FlexOffer naming that request with one ISP of
               Duration 10,000,000: its response, probes every 50 ms meanwhile, the child's
               peak RSS growth.
rules-period   (same child) FlexOffers for Period 9999-12-31 and 0001-01-01: a response or not.
rules-one-pass (same child) FlexOffers of 10,000 ISPs (2,000 with --quick): in order,
               reversed, one ISP each time, starts and durations near 2**31 - 1 (#23): the
               response and the child's CPU for each.
rules-prognosis (same child) 1,000 D-Prognoses of one day (300 with --quick), one at a time:
               median latency POST-to-response of the first and the last 100, child CPU.
bearer         a service that checks bearer tokens (in this process, its JWKS beside it):
               Authorization headers of 8,000 B, 8 KB + 1, 64 KB, 1 MB; 1,000 tokens naming
               made-up key ids (JWKS fetches counted: at most one a minute); a hypothesis
               fuzz (fixed seed, deadline) of the token check with hostile headers.
dns-flood      a service whose look-up chain asks DNS (a signed zone served here by
               test/dns_servers.py, answers delayed 20 ms) gets 3,000 signed messages from
               1,500 unknown domains, each twice, on 64 connections: the answers, the DNS
               queries it sent, the most outstanding at once, probe latency meanwhile.
hard-link      two processes writing a SQLite store, one by its path, one by a hard link:
               does the second start; PRAGMA quick_check of the file afterwards.
deleted-store  a service on a SQLite store whose file is unlinked under it: the statuses of
               the probes after that (200 means acknowledged into a lost file).
backlog-restart  a service on a SQLite store, max_backlog 100 (20 quick), the AGR endpoint
               down: probes until the first 503, then again after a restart on that file.
never-answered requests whose rule raises, whose handler raises, returns None for a
               FlexSettlement or an invalid Result, FlexOffers of Period 9999-12-31 and
               0001-01-01 (an AGR service child, and the DSO one): responses the sink gets.
store-full     a DSO child whose SQLite journal writes fail (30 requests), then work again
               (5): the statuses and latencies of each phase.
log-lines      a FlexOffer with 50,000 out-of-period ISPs, one with U+2028 and NEL in its
               congestion point: the longest log line, raw separators, forged lines.
replay-unrecorded  50 replays of a sender-mismatch message and of a conflicting-id one:
               the response POSTs the sink gets for each.
per-address    600 slow connections from 127.0.0.2 (a head at 1 byte/s, each reopened 0.1 s
               after it ends) for 30 s; probes from 127.0.0.3 every 0.25 s: probes answered,
               the most connections open and silent at once, 503s, resets, closes.
utf16          envelopes and signed payloads in UTF-16, UTF-32, Latin-1, sent as utf-8:
               the status of each (and of a UTF-8 control).
malformed-http 300 requests aiohttp cannot parse: pyuftp.http log lines, by level.
unknown-sender 50 signed messages from a sender without a key (a child whose key look-up
               logs each call): the look-ups made.

Every child is killed at the end, whatever happens; a failing attack prints its error and
the next one runs. The output is figures only, with a summary table at the end.
"""
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))

import argparse
import asyncio
import json
import re
import resource
import select
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import traceback
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

HOST = "127.0.0.1"
PATH = "/shapeshifter/api/v3/message"
AGR = "agr.example.com"
DSO = "dso.example.com"
CONTENT_TYPE = "text/xml; charset=utf-8"
ROOT = os.path.dirname(_HERE)
ATTACKS = ("attributes", "slow-headers", "idle", "fd-exhaustion", "big-bodies", "exceptions",
           "error-body", "log-size",
           "hard-link",
           "deleted-store",
           "backlog-restart",
           )
# The second hardening round (#16): one line per case, one block per part.
ATTACKS += (
    "per-address",
    "utf16",
    "malformed-http",
    "unknown-sender",
)
ATTACKS += (
    "never-answered",
    "store-full",
    "log-lines",
    "replay-unrecorded",
)
ATTACKS += ("dns-flood",)  # #19: discovery by DNS
ATTACKS += ("bearer",)  # #19: OAuth2 bearer tokens in
ATTACKS += (
    "rules-duration",
    "rules-period",
    "rules-prognosis",
)
CHILD_DEADLINE = 1200  # seconds: a child ends by itself after this, whatever happens


# =========================================================================================
# Child programs (run with ``python -c``, PYTHONPATH = the tree, cwd = a temporary dir)
# =========================================================================================

_CHILD_COMMON = r'''
import os, sys, threading

def _dead_man():
    # End when the parent goes away (our stdin closes) or after the deadline.
    timer = threading.Timer(float(os.environ["ATTACK_DEADLINE"]), lambda: os._exit(4))
    timer.daemon = True
    timer.start()
    try:
        while os.read(0, 4096):  # raw reads: no buffer lock held at interpreter shutdown
            pass
    finally:
        os._exit(3)

threading.Thread(target=_dead_man, daemon=True).start()
'''

CHILD_SERVICE = _CHILD_COMMON + r'''
import resource
nofile = int(os.environ.get("ATTACK_NOFILE") or 0)
if nofile > 0:
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

import asyncio, logging
logging.basicConfig(level=logging.INFO, stream=sys.stderr)

import pyuftp
from pyuftp.discovery import Directory
from pyuftp.server.service import ShapeshifterDsoService


async def main():
    directory = Directory()
    directory.add("agr.example.com", "AGR", os.environ["ATTACK_AGR_PUB"],
                  os.environ.get("ATTACK_AGR_URL") or None)
    service = ShapeshifterDsoService("dso.example.com", os.environ["ATTACK_DSO_KEY"],
                                     directory.key, directory.endpoint, port=0)

    @service.handler("TestMessage")
    async def on_test(payload):
        return None

    await service.start()
    sys.stdout.write("PORT %d %s\n" % (service.port, pyuftp.__file__))
    sys.stdout.flush()
    await asyncio.Event().wait()


asyncio.run(main())
'''

CHILD_CLIENT = _CHILD_COMMON + r'''
import asyncio, json, time
import pyuftp
from pyuftp.clients import ShapeshifterAgrDsoClient


def memory():
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                found[key] = int(value.split()[0])
    return found


async def main():
    client = ShapeshifterAgrDsoClient("agr.example.com", os.environ["ATTACK_AGR_KEY"],
                                      "dso.example.com", os.environ["ATTACK_URL"], attempts=1)
    before = memory()
    error = None
    start = time.perf_counter()
    try:
        await client.send_test_message({})
    except BaseException as exc:  # report whatever comes out
        error = exc
    elapsed = time.perf_counter() - start
    with_session = memory()
    try:
        await client.close()
    except Exception:
        pass
    sys.stdout.write(json.dumps({
        "elapsed": elapsed,
        "exc_type": type(error).__name__ if error is not None else None,
        "exc": str(error)[:100] if error is not None else "",
        "hwm_kib": with_session.get("VmHWM"),
        "rss_before_kib": before.get("VmRSS"),
        "pyuftp": pyuftp.__file__,
    }) + "\n")
    sys.stdout.flush()


asyncio.run(main())
'''


# =========================================================================================
# Small helpers
# =========================================================================================


def out(text: str = "") -> None:
    print(text, flush=True)


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1.0:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (KiB) of a process, {} once it is gone."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    found[key] = int(value.split()[0])
    except OSError:
        pass
    return found


def longest_line(data: bytes) -> int:
    return max((len(line) for line in data.splitlines()), default=0)


def post_request(port: int, body: bytes, content_type: str = CONTENT_TYPE,
                 content_length: int | None = None) -> bytes:
    length = len(body) if content_length is None else content_length
    head = (f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


@dataclass
class Reply:
    status: int | None = None
    elapsed: float = 0.0
    error: str | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        if self.status is not None:
            text = f"HTTP {self.status}"
            if self.error:
                text += f" ({self.error})"
            return text
        return self.error or "no answer"


async def http_exchange(port: int, raw: bytes, timeout: float, max_body: int = 4096) -> Reply:
    """Open a connection, send ``raw``, read one response (its first ``max_body`` bytes)."""
    reply = Reply()
    writer = None
    start = time.perf_counter()
    clean = False
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 20)
            writer.write(raw)  # not drained: the answer may come before the body is taken
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed without a response")
            reply.status = int(line.split(None, 2)[1])
            while True:
                header = await reader.readline()
                if header in (b"\r\n", b"\n", b""):
                    break
                key, _, value = header.decode("latin-1").partition(":")
                reply.headers[key.strip().lower()] = value.strip()
            length = reply.headers.get("content-length")
            if length is not None:
                reply.body = await reader.readexactly(min(int(length), max_body))
            else:
                reply.body = await reader.read(max_body)
            clean = True
    except TimeoutError:
        reply.error = "timeout"
    except Exception as exc:  # noqa: BLE001 - every failure is a figure here
        reply.error = f"{type(exc).__name__}: {exc}"[:120]
    finally:
        reply.elapsed = time.perf_counter() - start
        if writer is not None:
            if clean:
                writer.close()
            else:
                writer.transport.abort()
    return reply


# =========================================================================================
# Processes: the service children, the client children, the AGR sink
# =========================================================================================


class Child:
    """A pyuftp DSO service in a process of its own, its stderr in a file."""

    def __init__(self, ctx: "Ctx", label: str, nofile: int = 0) -> None:
        self.ctx = ctx
        self.label = label
        self.nofile = nofile
        ctx.child_count += 1
        self.err_path = os.path.join(ctx.tmp, f"{label}-{ctx.child_count}.stderr")
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.pyuftp_file = ""

    #: the program the child runs, and environment variables it gets besides the common ones
    program = CHILD_SERVICE
    extra_env: dict[str, str] = {}

    def start(self, timeout: float = 30.0) -> "Child":
        env = dict(os.environ, PYTHONPATH=self.ctx.tree, PYTHONUNBUFFERED="1",
                   ATTACK_DEADLINE=str(CHILD_DEADLINE), ATTACK_DSO_KEY=self.ctx.dso_priv,
                   ATTACK_AGR_PUB=self.ctx.agr_pub, ATTACK_AGR_URL=self.ctx.sink.url,
                   ATTACK_NOFILE=str(self.nofile), **self.extra_env)
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", self.program], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, env=env,
                                         cwd=self.ctx.tmp)
        self.ctx.procs.append(self.proc)
        line = b""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError(f"service child did not start: {self.stderr_tail()}")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    continue
                line += chunk
        parts = line.decode().split()
        self.port = int(parts[1])
        self.pyuftp_file = parts[2] if len(parts) > 2 else "?"
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def memory(self) -> dict[str, int]:
        return proc_memory(self.pid) if self.alive() else {}

    def stderr_size(self) -> int:
        try:
            return os.path.getsize(self.err_path)
        except OSError:
            return 0

    def stderr_since(self, offset: int) -> bytes:
        with open(self.err_path, "rb") as f:
            f.seek(offset)
            return f.read()

    def stderr_tail(self, size: int = 400) -> str:
        data = self.stderr_since(max(0, self.stderr_size() - size))
        return data.decode("utf-8", "replace").strip().replace("\n", " | ")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)


class Sink:
    """The AGR endpoint the service sends its responses to: 200 for every POST.

    It runs on an event loop of its own in a thread, so that it answers even while the
    attacks keep this process's main loop busy."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.runner: Any = None
        self.port = 0
        self.count = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{PATH}"

    def start(self) -> None:
        from aiohttp import web

        ready = threading.Event()
        loop = self.loop = asyncio.new_event_loop()

        async def answer(request: web.Request) -> web.Response:
            await request.read()
            self.count += 1
            return web.Response(text="OK")

        async def setup() -> None:
            app = web.Application(client_max_size=8 * 1024 * 1024)
            app.router.add_post(PATH, answer)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, HOST, 0)
            await site.start()
            self.port = self.runner.addresses[0][1]

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(setup())
            ready.set()
            loop.run_forever()

        self.thread = threading.Thread(target=run, name="agr-sink", daemon=True)
        self.thread.start()
        if not ready.wait(15):
            raise RuntimeError("the AGR sink did not start")

    def stop(self) -> None:
        if self.loop is None or self.thread is None:
            return
        if self.runner is not None:
            with suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Ctx:
    def __init__(self, tree: str, quick: bool, tmp: str) -> None:
        import pyuftp
        import pyuftp.signing.crypto
        import pyuftp.signing.envelope
        import pyuftp.message.examples

        self.pyuftp = pyuftp
        self.envelope = pyuftp.signing.envelope
        self.examples = pyuftp.message.examples
        self.tree = tree
        self.quick = quick
        self.tmp = tmp
        self.dso_priv, self.dso_pub = pyuftp.signing.crypto.generate_keypair()
        self.agr_priv, self.agr_pub = pyuftp.signing.crypto.generate_keypair()
        self.sink = Sink()
        self.procs: list[subprocess.Popen] = []
        self.child_count = 0
        self.main: Child | None = None
        self.rows: list[tuple[str, str, str]] = []

    def row(self, attack: str, figure: str, value: str) -> None:
        self.rows.append((attack, figure, value))

    def probe_body(self) -> bytes:
        data, _sent = self.envelope.seal_message(
            "TestMessage", {"sender_domain": AGR, "recipient_domain": DSO}, self.agr_priv, "AGR")
        return data

    def seal_xml(self, xml: str | bytes) -> bytes:
        raw = xml.encode("utf-8") if isinstance(xml, str) else xml
        return self.envelope.wrap(raw, self.agr_priv, AGR, "AGR")

    async def probe(self, port: int, timeout: float = 10.0) -> Reply:
        return await http_exchange(port, post_request(port, self.probe_body()), timeout)

    async def service(self) -> Child:
        """The shared service child, (re)started when it is gone or does not answer a probe."""
        if self.main is not None and self.main.alive():
            reply = await self.probe(self.main.port, timeout=5.0)
            if reply.status == 200:
                return self.main
            out(f"  (the service child does not answer a probe: {reply.describe()}; restarting it)")
            self.main.kill()
        self.main = Child(self, "service").start()
        return self.main

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with suppress(Exception):
                    proc.kill()
        for proc in self.procs:
            with suppress(Exception):
                proc.wait(10)


# =========================================================================================
# Probes and held connections
# =========================================================================================


class Probes:
    """Sequential probes (one every ``interval``) in the background until :meth:`finish`."""

    def __init__(self, ctx: Ctx, port: int, interval: float = 0.5, timeout: float = 10.0) -> None:
        self.ctx = ctx
        self.port = port
        self.interval = interval
        self.timeout = timeout
        self.results: list[Reply] = []
        self.unfinished: list[float] = []
        self._stop = asyncio.Event()
        self._inflight: float | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> "Probes":
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        while not self._stop.is_set():
            raw = post_request(self.port, self.ctx.probe_body())
            began = time.perf_counter()
            self._inflight = began
            reply = await http_exchange(self.port, raw, self.timeout)
            self._inflight = None
            self.results.append(reply)
            rest = self.interval - (time.perf_counter() - began)
            if rest > 0:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), rest)

    async def finish(self, grace: float = 5.0) -> "Probes":
        self._stop.set()
        assert self._task is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            inflight = self._inflight
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            if inflight is not None:
                self.unfinished.append(time.perf_counter() - inflight)
        return self

    def stats(self) -> dict[str, Any]:
        good = [r.elapsed for r in self.results if r.status == 200]
        everything = [r.elapsed for r in self.results] + self.unfinished
        worst = max(everything, default=None)
        problems = Counter(r.describe() for r in self.results if r.status != 200)
        if self.unfinished:
            problems["still waiting when stopped"] += len(self.unfinished)
        return {"sent": len(self.results) + len(self.unfinished), "answered": len(good),
                "median": statistics.median(good) if good else None, "worst": worst,
                "worst_unanswered": bool(self.unfinished) and worst == max(self.unfinished),
                "problems": problems}

    def line(self) -> str:
        s = self.stats()
        text = (f"probes: {s['sent']} sent, {s['answered']} answered 200, "
                f"median {fmt_time(s['median'])}, worst {fmt_time(s['worst'])}")
        if s["worst_unanswered"]:
            text += " (still unanswered)"
        if s["problems"]:
            text += "; " + ", ".join(f"{n}x {what}" for what, n in s["problems"].most_common(3))
        return text


class Conn:
    __slots__ = ("reader", "writer", "closed", "how", "closed_after", "received", "task")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closed = False
        self.how = ""
        self.closed_after: float | None = None
        self.received = b""
        self.task: asyncio.Task | None = None

    def status(self) -> str | None:
        if not self.received.startswith(b"HTTP/"):
            return None if not self.received else "non-HTTP data"
        parts = self.received.split(None, 2)
        return parts[1].decode("ascii", "replace") if len(parts) > 1 else "?"

    def watch(self, since: float) -> None:
        async def run() -> None:
            try:
                while True:
                    data = await self.reader.read(65536)
                    if not data:
                        self.how = "closed"
                        break
                    if len(self.received) < 512:
                        self.received += data[: 512 - len(self.received)]
            except Exception as exc:  # noqa: BLE001
                self.how = "reset" if isinstance(exc, ConnectionError) else type(exc).__name__
            self.closed = True
            self.closed_after = time.perf_counter() - since

        self.task = asyncio.get_running_loop().create_task(run())

    def write(self, data: bytes) -> None:
        if not self.closed and not self.writer.is_closing():
            with suppress(Exception):
                self.writer.write(data)

    async def close(self) -> None:
        with suppress(Exception):
            self.writer.transport.abort()
        if self.task is not None:
            self.task.cancel()
            with suppress(BaseException):
                await self.task


async def open_conns(port: int, count: int, timeout: float = 3.0,
                     parallel: int = 100) -> tuple[list[Conn], Counter]:
    gate = asyncio.Semaphore(parallel)
    errors: Counter = Counter()

    async def one() -> Conn | None:
        async with gate:
            try:
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_connection(HOST, port)
                return Conn(reader, writer)
            except TimeoutError:
                errors["connect timeout"] += 1
            except Exception as exc:  # noqa: BLE001
                errors[type(exc).__name__] += 1
            return None

    conns = await asyncio.gather(*(one() for _ in range(count)))
    return [c for c in conns if c is not None], errors


async def hold_connections(ctx: Ctx, port: int, count: int, seconds: float,
                           drip: bytes | None = None, probe_timeout: float = 10.0
                           ) -> tuple[dict[str, Any], Probes, list[Conn]]:
    """Open ``count`` connections, write ``drip`` one byte a second on each (or nothing),
    probe meanwhile; after ``seconds`` count what the service still holds open. The
    connections are returned open: the caller closes them."""
    conns, errors = await open_conns(port, count)
    start = time.perf_counter()
    for conn in conns:
        conn.watch(start)
    probes = Probes(ctx, port, timeout=probe_timeout).start()
    second = 0
    while time.perf_counter() - start < seconds:
        if drip is not None and second < len(drip):
            for conn in conns:
                conn.write(drip[second:second + 1])
        second += 1
        await asyncio.sleep(max(0.0, start + second - time.perf_counter()))
    held = sum(1 for c in conns if not c.closed)
    closed = [c for c in conns if c.closed]
    await probes.finish()
    result = {
        "opened": len(conns), "errors": errors, "held": held,
        "closed": Counter(c.how for c in closed),
        "statuses": Counter(c.status() for c in closed if c.status()),
        "median_close": statistics.median([c.closed_after for c in closed]) if closed else None,
        "elapsed": time.perf_counter() - start,
    }
    return result, probes, conns


def held_line(result: dict[str, Any]) -> str:
    text = (f"connections: {result['opened']} opened, {result['held']} still open after "
            f"{result['elapsed']:.0f} s")
    if result["closed"]:
        text += ", closed by the service: " + ", ".join(f"{n} {how}" for how, n in result["closed"].items())
        text += f" (median after {fmt_time(result['median_close'])})"
    if result["statuses"]:
        text += "; answers: " + ", ".join(f"{n}x HTTP {s}" for s, n in result["statuses"].items())
    if result["errors"]:
        text += "; not opened: " + ", ".join(f"{n}x {e}" for e, n in result["errors"].items())
    return text


# =========================================================================================
# The attacks
# =========================================================================================


async def attack_attributes(ctx: Ctx) -> None:
    counts = (10_000, 20_000, 40_000) if ctx.quick else (20_000, 40_000, 100_000)
    cap = 60.0 if ctx.quick else 150.0
    for n in counts:
        child = await ctx.service()
        attributes = " ".join(f'a{i}="1"' for i in range(n))
        body = (f'<SignedMessage SenderDomain="a.example.com" SenderRole="AGR" Body="AAAA" '
                f"{attributes}/>").encode("ascii")
        probes = Probes(ctx, child.port, timeout=cap + 10).start()
        await asyncio.sleep(0.25)  # one probe before the hostile request
        hostile = await http_exchange(child.port, post_request(child.port, body), cap)
        await probes.finish(grace=5.0)
        if hostile.error == "timeout":
            outcome = f"> {cap:.0f} s (no answer)"
        else:
            outcome = f"{hostile.describe()} after {fmt_time(hostile.elapsed)}"
        s = probes.stats()
        out(f"  N={n:>7,} ({len(body):,} bytes): {outcome}; {probes.line()}")
        ctx.row("attributes", f"N={n:,} answer", outcome)
        worst = fmt_time(s["worst"]) + (" (unanswered)" if s["worst_unanswered"] else "")
        ctx.row("attributes", f"N={n:,} worst probe", worst)
        if hostile.error == "timeout":
            child.kill()  # still busy with it: the next one gets a fresh service


async def attack_slow_headers(ctx: Ctx) -> None:
    seconds = 15.0 if ctx.quick else 30.0
    child = await ctx.service()
    head = (f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{child.port}\r\nContent-Type: {CONTENT_TYPE}\r\n"
            f"Content-Length: 100\r\nConnection: keep-alive\r\n\r\n").encode("ascii")
    result, probes, conns = await hold_connections(ctx, child.port, 200, seconds, drip=head)
    for conn in conns:
        await conn.close()
    out(f"  {held_line(result)}")
    out(f"  head: {len(head)} bytes at 1 byte/s per connection; {probes.line()}")
    ctx.row("slow-headers", f"open after {seconds:.0f} s", f"{result['held']} of {result['opened']}")
    ctx.row("slow-headers", "worst probe", fmt_time(probes.stats()["worst"]))


async def attack_idle(ctx: Ctx) -> None:
    seconds = 15.0 if ctx.quick else 30.0
    child = await ctx.service()
    result, probes, conns = await hold_connections(ctx, child.port, 300, seconds)
    for conn in conns:
        await conn.close()
    out(f"  {held_line(result)}")
    out(f"  {probes.line()}")
    ctx.row("idle", f"open after {seconds:.0f} s", f"{result['held']} of {result['opened']}")


async def attack_fd_exhaustion(ctx: Ctx) -> None:
    seconds = 10.0 if ctx.quick else 15.0
    child = Child(ctx, "fd-limited", nofile=256).start()
    try:
        before = await ctx.probe(child.port, timeout=5.0)
        out(f"  child with RLIMIT_NOFILE 256; probe before: {before.describe()} in {fmt_time(before.elapsed)}")
        result, probes, conns = await hold_connections(ctx, child.port, 300, seconds,
                                                       probe_timeout=5.0)
        for conn in conns:
            await conn.close()
        await asyncio.sleep(1.5)
        after = await ctx.probe(child.port, timeout=10.0)
        s = probes.stats()
        good = [r for r in probes.results if r.status == 200]
        first = (f"first answered after {fmt_time(good[0].elapsed)}" if good
                 else f"none answered; first error: {probes.results[0].describe() if probes.results else '-'}")
        await asyncio.sleep(0.5)
        log = child.stderr_since(0)
        lines = log.splitlines()
        resource_lines = sum(1 for line in lines if b"out of system resource" in line)
        accept_lines = sum(1 for line in lines if b"accept" in line.lower())
        emfile = sum(1 for line in lines if b"Too many open files" in line)
        out(f"  {held_line(result)}")
        out(f"  during the {seconds:.0f} s: {probes.line()}; {first}")
        out(f"  probe 1.5 s after closing them: {after.describe()} in {fmt_time(after.elapsed)}")
        out(f"  stderr: {len(log):,} bytes, {len(lines):,} lines; lines with 'out of system "
            f"resource': {resource_lines}, with 'accept': {accept_lines}, with 'Too many open "
            f"files': {emfile}; longest line {longest_line(log):,} bytes")
        ctx.row("fd-exhaustion", "probes answered during", f"{s['answered']} of {s['sent']}")
        ctx.row("fd-exhaustion", "probe after closing", f"{after.describe()} {fmt_time(after.elapsed)}")
        ctx.row("fd-exhaustion", "'out of system resource' lines", str(resource_lines))
        ctx.row("fd-exhaustion", "'accept' lines", str(accept_lines))
        ctx.row("fd-exhaustion", "stderr bytes", f"{len(log):,}")
    finally:
        child.kill()


async def attack_big_bodies(ctx: Ctx) -> None:
    count = 200
    length = 4 * 1024 * 1024 - 1
    hold = 15.0
    after_seconds = 10.0 if ctx.quick else 30.0
    child = Child(ctx, "big-bodies").start()
    try:
        await asyncio.sleep(0.5)
        start_rss = child.memory().get("VmRSS")
        head = (f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{child.port}\r\nContent-Type: {CONTENT_TYPE}\r\n"
                f"Content-Length: {length}\r\nConnection: keep-alive\r\n\r\n").encode("ascii")
        chunk = memoryview(b"A" * (256 * 1024))
        conns, errors = await open_conns(child.port, count)
        began = time.perf_counter()
        for conn in conns:
            conn.watch(began)
        write_errors: Counter = Counter()

        async def send(conn: Conn) -> None:
            try:
                conn.writer.write(head)
                left = length - 1
                while left > 0 and not conn.closed:
                    piece = chunk if left >= len(chunk) else chunk[:left]
                    conn.writer.write(piece)
                    left -= len(piece)
                    await conn.writer.drain()
            except Exception as exc:  # noqa: BLE001
                write_errors[type(exc).__name__] += 1

        try:
            async with asyncio.timeout(60):
                await asyncio.gather(*(send(c) for c in conns))
        except TimeoutError:
            write_errors["still sending after 60 s"] += 1
        sent_after = time.perf_counter() - began
        rss_sent = child.memory().get("VmRSS")
        top = rss_sent or 0
        hold_end = time.perf_counter() + hold
        while time.perf_counter() < hold_end and not all(c.closed or c.received for c in conns):
            await asyncio.sleep(0.5)
            top = max(top, child.memory().get("VmRSS") or 0)
        answered_by = time.perf_counter() - began
        statuses = Counter(c.status() or ("closed, no answer" if c.closed else "no answer yet")
                           for c in conns)
        for conn in conns:
            await conn.close()
        closed_at = time.perf_counter()
        while time.perf_counter() - closed_at < after_seconds:
            await asyncio.sleep(0.5)
            top = max(top, child.memory().get("VmRSS") or 0)
        mem = child.memory()
        out(f"  {len(conns)} connections opened" + (f" ({dict(errors)} not)" if errors else "")
            + f", {length - 1:,} of {length:,} body bytes each sent after {fmt_time(sent_after)}"
            + (f"; write errors: {dict(write_errors)}" if write_errors else ""))
        out(f"  child RSS: {fmt_mib(start_rss)} before, {fmt_mib(rss_sent)} after the sending, "
            f"highest sampled {fmt_mib(top)}, {fmt_mib(mem.get('VmRSS'))} {after_seconds:.0f} s "
            f"after closing; VmHWM {fmt_mib(mem.get('VmHWM'))}")
        out(f"  answers within {answered_by:.1f} s of the start: "
            + ", ".join(f"{n}x {'HTTP ' + s if s[0].isdigit() else s}" for s, n in statuses.most_common()))
        ctx.row("big-bodies", "RSS after sending", fmt_mib(rss_sent))
        ctx.row("big-bodies", "peak (VmHWM)", fmt_mib(mem.get("VmHWM")))
        ctx.row("big-bodies", f"RSS {after_seconds:.0f} s after closing", fmt_mib(mem.get("VmRSS")))
        ctx.row("big-bodies", "answers", ", ".join(f"{n}x {s}" for s, n in statuses.most_common()))
    finally:
        child.kill()


def _flex_offer_xml(ctx: Ctx) -> str:
    payload = ctx.examples.example("FlexOffer")
    for key in ("message_id", "conversation_id", "time_stamp"):
        payload.pop(key, None)  # filled in afresh: no duplicate, not too old
    payload["sender_domain"] = AGR
    payload["recipient_domain"] = DSO
    return ctx.pyuftp.create_message("FlexOffer", payload)


def _replace(xml: str, pattern: str, new: str) -> str:
    changed, n = re.subn(pattern, new, xml, count=1)
    if n != 1:
        raise RuntimeError(f"pattern {pattern!r} not found in the XML")
    return changed


def _exception_cases(ctx: Ctx) -> list[tuple[str, Callable[[], bytes]]]:
    def test_message() -> str:
        return ctx.pyuftp.create_message("TestMessage", {"sender_domain": AGR, "recipient_domain": DSO})

    def schema_location() -> bytes:
        xml = _replace(test_message(), r"<TestMessage ",
                       '<TestMessage xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                       'xsi:schemaLocation="x y" ')
        return ctx.seal_xml(xml)

    def duration(value: str) -> Callable[[], bytes]:
        return lambda: ctx.seal_xml(_replace(_flex_offer_xml(ctx), r'ISP-Duration="[^"]*"',
                                             f'ISP-Duration="{value}"'))

    def price(value: str) -> Callable[[], bytes]:
        return lambda: ctx.seal_xml(_replace(_flex_offer_xml(ctx), r' Price="[^"]*"',
                                             f' Price="{value}"'))

    def midnight() -> bytes:
        day = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
        return ctx.seal_xml(_replace(test_message(), r'TimeStamp="[^"]*"',
                                     f'TimeStamp="{day}T24:00:00+00:00"'))

    return [
        ("TestMessage xsi:schemaLocation", schema_location),
        ("FlexOffer ISP-Duration=P1000000000D", duration("P1000000000D")),
        ("FlexOffer ISP-Duration=-PT15M", duration("-PT15M")),
        ("FlexOffer ISP-Duration=PT0S", duration("PT0S")),
        ("FlexOffer Price of 4,000 digits", price("9" * 4000)),
        ("FlexOffer Price=-12.50", price("-12.50")),
        ("TestMessage TimeStamp T24:00:00", midnight),
        ("control: plain TestMessage", lambda: ctx.seal_xml(test_message())),
    ]


async def attack_exceptions(ctx: Ctx) -> None:
    child = await ctx.service()
    for name, build in _exception_cases(ctx):
        try:
            body = build()
        except Exception as exc:  # noqa: BLE001
            out(f"  {name}: cannot build it here: {type(exc).__name__}: {str(exc)[:100]}")
            ctx.row("exceptions", name, f"not built ({type(exc).__name__})")
            continue
        offset = child.stderr_size()
        reply = await http_exchange(child.port, post_request(child.port, body), 30.0)
        await asyncio.sleep(0.3)
        log = child.stderr_since(offset)
        tracebacks = log.count(b"Traceback")
        text = reply.body.decode("utf-8", "replace").strip().replace("\n", " ")[:90]
        note = " (taken: a functional rejection, if any, would come later as a response)" \
            if reply.status == 200 else ""
        out(f"  {name}: {reply.describe()} in {fmt_time(reply.elapsed)}{note}; tracebacks logged: "
            f"{tracebacks}" + (f"; body: {text!r}" if text and reply.status != 200 else ""))
        ctx.row("exceptions", name, f"{reply.describe()}, {tracebacks} traceback(s)")
    after = await ctx.probe(child.port, timeout=5.0)
    out(f"  probe afterwards: {after.describe()} in {fmt_time(after.elapsed)}")


class RawServer:
    """A one-trick HTTP server in this process: reads a request, answers per ``mode``."""

    def __init__(self, mode: str, size: int = 0) -> None:
        self.mode = mode
        self.size = size
        self.sent = 0
        self.requests = 0
        self.server: asyncio.base_events.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{PATH}"

    async def start(self) -> "RawServer":
        self.server = await asyncio.start_server(self._handle, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if match:
                await reader.readexactly(int(match.group(1)))
            self.requests += 1
            if self.mode == "silent":
                # Say nothing until the client gives up (bounded: aborted at stop() anyway).
                with suppress(TimeoutError):
                    async with asyncio.timeout(200):
                        while await reader.read(65536):
                            pass
                return
            if self.mode == "500":
                writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n" % self.size)
                chunk = memoryview(b"x" * (1 << 20))
                while self.sent < self.size:
                    piece = chunk if self.size - self.sent >= len(chunk) else chunk[: self.size - self.sent]
                    writer.write(piece)
                    self.sent += len(piece)
                    await writer.drain()
            else:
                retry_after = {"retry-sup2": "\u00b2".encode("utf-8"), "retry-huge": b"999999999"}[self.mode]
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: " + retry_after
                             + b"\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
                               b"Connection: close\r\n\r\nbusy")
            await writer.drain()
        except (Exception, asyncio.CancelledError):  # noqa: BLE001 - the client went away
            pass
        finally:
            with suppress(Exception):
                writer.close()

    async def stop(self) -> None:
        for writer in self.writers:
            with suppress(Exception):
                writer.transport.abort()
        if self.server is not None:
            self.server.close()
            with suppress(Exception):
                async with asyncio.timeout(5):
                    await self.server.wait_closed()


async def run_client_child(ctx: Ctx, url: str, cap: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=ctx.tree, PYTHONUNBUFFERED="1",
               ATTACK_DEADLINE=str(CHILD_DEADLINE), ATTACK_AGR_KEY=ctx.agr_priv, ATTACK_URL=url)
    ctx.child_count += 1
    err_path = os.path.join(ctx.tmp, f"client-{ctx.child_count}.stderr")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", CHILD_CLIENT], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, env=env, cwd=ctx.tmp)
    ctx.procs.append(proc)
    start = time.perf_counter()
    top = 0
    while proc.poll() is None and time.perf_counter() - start < cap + 10:  # + start-up
        top = max(top, proc_memory(proc.pid).get("VmHWM") or 0)
        await asyncio.sleep(0.1)
    outer = time.perf_counter() - start
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
        return {"timeout": True, "outer": outer, "hwm_kib": top or None}
    assert proc.stdout is not None
    lines = proc.stdout.read().decode("utf-8", "replace").strip().splitlines()
    if not lines:
        with open(err_path, "rb") as f:
            tail = f.read()[-300:].decode("utf-8", "replace")
        raise RuntimeError(f"client child ended with {proc.returncode} and no result: {tail}")
    result = json.loads(lines[-1])
    result["outer"] = outer
    return result


def _client_outcome(result: dict[str, Any], cap: float) -> str:
    if result.get("timeout"):
        return f"> {cap:.0f} s (still running; killed)"
    if result["exc_type"] is None:
        return f"returned after {fmt_time(result['elapsed'])}"
    return f"raised {result['exc_type']} after {fmt_time(result['elapsed'])}: {result['exc']!r}"


async def attack_error_body(ctx: Ctx) -> None:
    cap = 150.0
    size = 300 * 1024 * 1024
    servers: list[RawServer] = []
    try:
        silent = await RawServer("silent").start()
        servers.append(silent)
        # The never-answering server takes as long as the client waits: run it alongside.
        silent_task = asyncio.get_running_loop().create_task(run_client_child(ctx, silent.url, cap))

        small = await RawServer("500", size=2).start()
        servers.append(small)
        base = await run_client_child(ctx, small.url, cap)
        big = await RawServer("500", size=size).start()
        servers.append(big)
        result = await run_client_child(ctx, big.url, cap)
        out(f"  500 with a {size // (1024 * 1024)} MiB body: {_client_outcome(result, cap)}")
        out(f"    client child peak RSS (VmHWM) {fmt_mib(result.get('hwm_kib'))} (before sending "
            f"{fmt_mib(result.get('rss_before_kib'))}; against a 2-byte 500 body: "
            f"{fmt_mib(base.get('hwm_kib'))}); server wrote {big.sent / 2**20:.0f} MiB")
        ctx.row("error-body", "300 MiB 500: client VmHWM", fmt_mib(result.get("hwm_kib")))
        ctx.row("error-body", "2-byte 500: client VmHWM", fmt_mib(base.get("hwm_kib")))
        ctx.row("error-body", "300 MiB 500: raised", str(result.get("exc_type")))

        for mode, label in (("retry-sup2", "503 Retry-After: \u00b2"),
                            ("retry-huge", "503 Retry-After: 999999999")):
            server = await RawServer(mode).start()
            servers.append(server)
            result = await run_client_child(ctx, server.url, cap)
            out(f"  {label}: {_client_outcome(result, cap)}")
            ctx.row("error-body", label, (f"> {cap:.0f} s" if result.get("timeout") else
                                          f"{result['exc_type']}, {fmt_time(result['elapsed'])}"))

        result = await silent_task
        out(f"  server that never answers: {_client_outcome(result, cap)}")
        ctx.row("error-body", "never answers", (f"> {cap:.0f} s" if result.get("timeout") else
                                                f"{result['exc_type']}, {fmt_time(result['elapsed'])}"))
    finally:
        for server in servers:
            await server.stop()


async def attack_log_size(ctx: Ctx) -> None:
    child = await ctx.service()
    cases = [
        ("100,000-byte garbage request line", b"X" * 100_000 + b"\r\n\r\n"),
        ("3 MB invalid SenderDomain",
         post_request(child.port, b'<SignedMessage SenderDomain="' + b"!" * 3_000_000
                      + b'" SenderRole="AGR" Body="AAAA"/>')),
    ]
    for name, raw in cases:
        offset = child.stderr_size()
        reply = await http_exchange(child.port, raw, 60.0)
        await asyncio.sleep(0.5)
        log = child.stderr_since(offset)
        out(f"  {name}: {reply.describe()} in {fmt_time(reply.elapsed)}; logged {len(log):,} "
            f"bytes in {len(log.splitlines())} lines, longest line {longest_line(log):,} bytes")
        ctx.row("log-size", f"{name}: longest log line", f"{longest_line(log):,} bytes")
    after = await ctx.probe(child.port, timeout=5.0)
    out(f"  probe afterwards: {after.describe()} in {fmt_time(after.elapsed)}")


# =========================================================================================
# Issue #16 (items 6 and 8, malformed HTTP, unknown senders): per-address, utf16,
# malformed-http, unknown-sender
# =========================================================================================

HOSTILE_ADDRESS = "127.0.0.2"  # every 127.x address is loopback on Linux
PROBE_ADDRESS = "127.0.0.3"

# A service child whose key look-up logs each call ("key lookup DOMAIN ROLE"), to count them.
CHILD_COUNTING_SERVICE = _CHILD_COMMON + r"""
import asyncio, logging
logging.basicConfig(level=logging.INFO, stream=sys.stderr)

import pyuftp
from pyuftp.discovery import Directory
from pyuftp.server.service import ShapeshifterDsoService


async def main():
    directory = Directory()
    directory.add("agr.example.com", "AGR", os.environ["ATTACK_AGR_PUB"],
                  os.environ.get("ATTACK_AGR_URL") or None)

    def key_lookup(domain, role):
        logging.getLogger("bench").info("key lookup %s %s", domain, role)
        return directory.key(domain, role)

    service = ShapeshifterDsoService("dso.example.com", os.environ["ATTACK_DSO_KEY"],
                                     key_lookup, directory.endpoint, port=0)
    await service.start()
    sys.stdout.write("PORT %d %s\n" % (service.port, pyuftp.__file__))
    sys.stdout.flush()
    await asyncio.Event().wait()


asyncio.run(main())
"""


class _CountingChild(Child):
    """A service child running CHILD_COUNTING_SERVICE instead of CHILD_SERVICE."""

    def start(self, timeout: float = 30.0) -> "Child":
        global CHILD_SERVICE
        saved = CHILD_SERVICE
        CHILD_SERVICE = CHILD_COUNTING_SERVICE  # Child.start reads the module's program
        try:
            return super().start(timeout)
        finally:
            CHILD_SERVICE = saved


async def _exchange_from(port: int, raw: bytes, source: str, timeout: float) -> Reply:
    """:func:`http_exchange` from the local address ``source``."""
    reply = Reply()
    writer = None
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
            writer.write(raw)
            answer = await reader.read(65536)
            while len(answer) < 65536:
                more = await reader.read(65536)
                if not more:
                    break
                answer += more
            if not answer.startswith(b"HTTP/"):
                raise ConnectionError("closed without a response")
            reply.status = int(answer.split(None, 2)[1])
            head, _, reply.body = answer.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n")[1:]:
                key, _, value = line.decode("latin-1").partition(":")
                reply.headers[key.strip().lower()] = value.strip()
    except TimeoutError:
        reply.error = "timeout"
    except Exception as exc:  # noqa: BLE001 - every failure is a figure here
        reply.error = f"{type(exc).__name__}: {exc}"[:120]
    finally:
        reply.elapsed = time.perf_counter() - start
        if writer is not None:
            writer.transport.abort()
    return reply


def _socket_fds(pid: int) -> int:
    """Socket descriptors a process has open now (0 once it is gone)."""
    count = 0
    with suppress(OSError):
        for name in os.listdir(f"/proc/{pid}/fd"):
            with suppress(OSError):
                count += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
    return count


async def attack_per_address(ctx: Ctx) -> None:
    """600 slow connections from one address (a request head at one byte a second), each
    reopened 0.1 s after the service closes or refuses it; probes from another address."""
    seconds = 15.0 if ctx.quick else 30.0
    slots = 600
    child = await ctx.service()
    port = child.port
    head = (f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: {CONTENT_TYPE}\r\n"
            f"Content-Length: 100\r\nConnection: keep-alive\r\n\r\n").encode("ascii")
    deadline = time.perf_counter() + seconds
    outcomes: Counter = Counter()
    # slot -> when its connection opened, while open with nothing received; one silent for
    # over 2 s is held by the service (a refusal comes at once; this busy process may take a
    # moment to read it)
    silent: dict[int, float] = {}
    peak = [0, 0]  # held (seen by the client), socket descriptors of the service

    async def slot(number: int) -> None:
        while time.perf_counter() < deadline:
            try:
                async with asyncio.timeout(3.0):
                    reader, writer = await asyncio.open_connection(
                        HOST, port, local_addr=(HOSTILE_ADDRESS, 0))
            except Exception as exc:  # noqa: BLE001
                outcomes[f"not opened: {type(exc).__name__}"] += 1
                await asyncio.sleep(0.1)
                continue
            silent[number] = time.perf_counter()
            reading = asyncio.ensure_future(reader.read(512))
            sent = 0
            try:
                while time.perf_counter() < deadline and not reading.done():
                    await asyncio.wait([reading], timeout=1.0)
                    if not reading.done() and sent < len(head):
                        writer.write(head[sent:sent + 1])
                        sent += 1
                silent.pop(number, None)
                if reading.done():
                    error = reading.exception()
                    data = b"" if error is not None else reading.result()
                    if isinstance(error, ConnectionError):
                        outcomes["reset"] += 1
                    elif error is not None:
                        outcomes[type(error).__name__] += 1
                    elif data.startswith(b"HTTP/"):
                        status = data.split(None, 2)[1].decode("ascii", "replace")
                        retry = b"retry-after" in data.lower()
                        outcomes[f"HTTP {status}" + (" + Retry-After" if retry else "")] += 1
                    else:
                        outcomes["closed, no answer"] += 1
            finally:
                silent.pop(number, None)
                reading.cancel()
                with suppress(BaseException):
                    await reading
                writer.transport.abort()
            await asyncio.sleep(0.1)

    async def sample() -> None:
        while time.perf_counter() < deadline:
            now = time.perf_counter()
            peak[0] = max(peak[0], sum(1 for t in list(silent.values()) if now - t > 2.0))
            peak[1] = max(peak[1], _socket_fds(child.pid))
            await asyncio.sleep(0.25)

    tasks = [asyncio.ensure_future(slot(n)) for n in range(slots)]
    sampler = asyncio.ensure_future(sample())
    await asyncio.sleep(min(3.0, seconds / 4))  # the attack is in place before the probes
    probes: list[Reply] = []
    while time.perf_counter() < deadline - 1.0:
        began = time.perf_counter()
        probes.append(await _exchange_from(port, post_request(port, ctx.probe_body()),
                                           PROBE_ADDRESS, 10.0))
        await asyncio.sleep(max(0.0, 0.25 - (time.perf_counter() - began)))
    await asyncio.gather(*tasks, sampler, return_exceptions=True)
    good = [r.elapsed for r in probes if r.status == 200]
    problems = Counter(r.describe() for r in probes if r.status != 200)
    refused = {k: v for k, v in outcomes.items()}
    out(f"  {slots} slow connections from {HOSTILE_ADDRESS} for {seconds:.0f} s, reopened "
        f"0.1 s after each close; most held at once: {peak[0]} (open, silent for > 2 s); most "
        f"sockets the service had open: {peak[1]} (listener, lingering 503s, clients included)")
    out("  how the service ended them: " + ", ".join(f"{n}x {k}" for k, n in
                                                      Counter(refused).most_common()))
    out(f"  probes from {PROBE_ADDRESS}: {len(probes)} sent, {len(good)} answered 200, median "
        f"{fmt_time(statistics.median(good) if good else None)}"
        + ("; " + ", ".join(f"{n}x {w}" for w, n in problems.most_common(3)) if problems else ""))
    ctx.row("per-address", "probes answered", f"{len(good)} of {len(probes)}")
    ctx.row("per-address", "most held at once", str(peak[0]))
    ctx.row("per-address", "most service sockets", str(peak[1]))
    ctx.row("per-address", "503 answers", str(sum(n for k, n in outcomes.items()
                                                    if k.startswith("HTTP 503"))))
    ctx.row("per-address", "resets", str(outcomes.get("reset", 0)))
    ctx.row("per-address", "closed, no answer", str(outcomes.get("closed, no answer", 0)))


async def attack_utf16(ctx: Ctx) -> None:
    """Envelopes and signed payloads in UTF-16, UTF-32 and Latin-1, all sent as utf-8."""
    child = await ctx.service()
    payload = {"sender_domain": AGR, "recipient_domain": DSO}
    from pyuftp.message.codec import build_message
    xml, _ = build_message("TestMessage", payload)
    xml = re.sub(r"^<\?xml[^>]*\?>", "", xml if isinstance(xml, str) else xml.decode())
    envelope = re.sub(r"^<\?xml[^>]*\?>", "", ctx.probe_body().decode("utf-8"))
    cases = [
        ("UTF-16 envelope (BOM)", envelope.encode("utf-16")),
        ("UTF-16 envelope (declared)",
         ('<?xml version="1.0" encoding="UTF-16"?>' + envelope).encode("utf-16-le")),
        ("UTF-16 payload", ctx.seal_xml(xml.encode("utf-16"))),
        ("UTF-32 payload", ctx.seal_xml(xml.encode("utf-32"))),
        ("Latin-1 payload (declared)",
         ctx.seal_xml(b'<?xml version="1.0" encoding="ISO-8859-1"?>' + xml.encode("ascii"))),
        ("UTF-8 payload (control)", ctx.seal_xml(xml.encode("utf-8"))),
    ]
    for name, body in cases:
        reply = await http_exchange(child.port, post_request(child.port, body), 10.0)
        text = reply.body.decode("utf-8", "replace")[:90]
        out(f"  {name}: {reply.describe()} {text!r}")
        ctx.row("utf16", name, reply.describe())


async def attack_malformed_http(ctx: Ctx) -> None:
    """300 requests aiohttp cannot parse: the log lines of pyuftp.http, by level."""
    child = await ctx.service()
    malformed = [
        b"POST / HTTP/1.1\r\nHost: x\r\nA header without a colon\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
    ]
    offset = child.stderr_size()
    statuses: Counter = Counter()
    for n in range(300):
        statuses[(await http_exchange(child.port, malformed[n % 3], 5.0)).describe()] += 1
    await asyncio.sleep(0.5)
    lines = [line for line in child.stderr_since(offset).splitlines() if b"pyuftp.http" in line]
    levels = Counter(line.split(b":", 1)[0].decode("ascii", "replace") for line in lines)
    out(f"  answers: {dict(statuses)}; pyuftp.http lines: {len(lines)} "
        f"({dict(levels)}), {sum(len(x) for x in lines):,} bytes")
    ctx.row("malformed-http", "pyuftp.http lines for 300", str(len(lines)))
    ctx.row("malformed-http", "of them ERROR", str(levels.get("ERROR", 0)))


async def attack_unknown_sender(ctx: Ctx) -> None:
    """50 signed messages from a sender the service has no key for: key look-ups made."""
    child = _CountingChild(ctx, "counting").start()
    try:
        stranger, _public = ctx.pyuftp.signing.crypto.generate_keypair()
        statuses: Counter = Counter()
        began = time.perf_counter()
        for _ in range(50):
            data, _ = ctx.envelope.seal_message(
                "TestMessage", {"sender_domain": "stranger.example.com", "recipient_domain": DSO},
                stranger, "AGR")
            statuses[(await http_exchange(child.port, post_request(child.port, data),
                                          10.0)).describe()] += 1
        elapsed = time.perf_counter() - began
        await asyncio.sleep(0.3)
        lookups = child.stderr_since(0).count(b"key lookup stranger.example.com AGR")
        out(f"  50 messages from stranger.example.com in {fmt_time(elapsed)}: {dict(statuses)}; "
            f"key look-ups: {lookups}")
        ctx.row("unknown-sender", "key look-ups for 50", str(lookups))
    finally:
        child.kill()


# =========================================================================================
# #16: never-answered requests, store failures, log lines, replays
# =========================================================================================

CHILD_HARDENING = _CHILD_COMMON + r"""
import asyncio, logging
logging.basicConfig(level=logging.INFO, stream=sys.stderr)

import pyuftp
from pyuftp.discovery import Directory
from pyuftp.exceptions import StoreError
from pyuftp.rules import DEFAULT_RULES
from pyuftp.server.service import ShapeshifterAgrService, ShapeshifterDsoService
from pyuftp.store.sqlite import SQLiteStore

MODE = os.environ["ATTACK_A_MODE"]
FLAG = os.environ.get("ATTACK_A_FLAG", "")


class FullDisk(SQLiteStore):
    # A real SQLite store whose journal writes fail while the flag file exists.
    def record_received(self, *args, **kwargs):
        if FLAG and os.path.exists(FLAG):
            raise StoreError("database or disk is full")
        return super().record_received(*args, **kwargs)


async def main():
    directory = Directory()
    if MODE == "answers":  # an AGR service; the bench signs as the DSO
        directory.add("dso.example.com", "DSO", os.environ["ATTACK_DSO_PUB"],
                      os.environ["ATTACK_AGR_URL"])
        rules = DEFAULT_RULES.stateless()

        @rules.rule("bench.raises", ["FlexRequest"], "a rule that raises")
        def raises(ctx):
            raise OverflowError("date value out of range")

        service = ShapeshifterAgrService("agr.example.com", os.environ["ATTACK_AGR_KEY"],
                                         directory.key, directory.endpoint, port=0,
                                         rules=rules)

        def broken(payload):
            raise RuntimeError("the handler broke")

        service.add_handler("FlexOrder", broken)
        service.add_handler("FlexSettlement", lambda payload: None)
        service.add_handler("FlexReservationUpdate", lambda payload: {"result": "Perhaps"})
        service.add_handler("FlexRequest", lambda payload: None)
    else:  # "store": a DSO service whose store fails while told to
        directory.add("agr.example.com", "AGR", os.environ["ATTACK_AGR_PUB"],
                      os.environ["ATTACK_AGR_URL"])
        service = ShapeshifterDsoService("dso.example.com", os.environ["ATTACK_DSO_KEY"],
                                         directory.key, directory.endpoint, port=0,
                                         store=FullDisk(os.environ["ATTACK_A_DB"]),
                                         max_pending=20)
        service.add_handler("TestMessage", lambda payload: None)
    await service.start()
    sys.stdout.write("PORT %d %s\n" % (service.port, pyuftp.__file__))
    sys.stdout.flush()
    await asyncio.Event().wait()


asyncio.run(main())
"""


class HardeningChild(Child):
    program = CHILD_HARDENING

    def __init__(self, ctx: Ctx, mode: str, **env: str) -> None:
        super().__init__(ctx, f"hardening-{mode}")
        self.extra_env = dict(env, ATTACK_A_MODE=mode, ATTACK_AGR_KEY=ctx.agr_priv,
                              ATTACK_DSO_PUB=ctx.dso_pub)


def _fresh(ctx: Ctx, message_type: str, sender: str, recipient: str,
           **fields: Any) -> dict[str, Any]:
    """The example payload moved to now, new ids, with ``fields`` changed."""
    payload = ctx.examples.example(message_type, now=datetime.now(timezone.utc))
    for key in ("message_id", "conversation_id", "time_stamp"):
        payload.pop(key, None)
    payload.update(sender_domain=sender, recipient_domain=recipient, **fields)
    return payload


def _sealed(ctx: Ctx, message_type: str, payload: dict[str, Any], role: str) -> bytes:
    """Signed as ``role`` (AGR or DSO), without the sender-side business rules: the
    bench sends what a careless or hostile peer would."""
    xml = ctx.pyuftp.create_message(message_type, payload, rules=False)
    key = ctx.agr_priv if role == "AGR" else ctx.dso_priv
    return ctx.envelope.wrap(xml.encode("utf-8"), key, payload["sender_domain"], role)


async def _responses_after(ctx: Ctx, before: int, expected: int, wait: float = 8.0) -> int:
    """The sink's POSTs since ``before``: wait for ``expected``, then a little for extras."""
    deadline = time.perf_counter() + wait
    while ctx.sink.count - before < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    return ctx.sink.count - before


async def attack_never_answered(ctx: Ctx) -> None:
    """Requests whose rule or handler fails: how many of them get a response."""
    each = 5
    child = HardeningChild(ctx, "answers").start()
    dso = await ctx.service()
    try:
        cases: list[tuple[str, Child, Callable[[], bytes]]] = []

        def as_dso(message_type: str, **fields: Any) -> Callable[[], bytes]:
            return lambda: _sealed(ctx, message_type,
                                   _fresh(ctx, message_type, DSO, AGR, **fields), "DSO")

        def as_agr(message_type: str, **fields: Any) -> Callable[[], bytes]:
            return lambda: _sealed(ctx, message_type,
                                   _fresh(ctx, message_type, AGR, DSO, **fields), "AGR")

        from datetime import date
        cases = [
            ("FlexRequest, a rule raises", child, as_dso("FlexRequest")),
            ("FlexOrder, the handler raises", child, as_dso("FlexOrder")),
            ("FlexSettlement, the handler returns None", child, as_dso("FlexSettlement")),
            ("FlexReservationUpdate, handler returns an invalid Result", child,
             as_dso("FlexReservationUpdate")),
            ("FlexOffer, Period 9999-12-31", dso, as_agr("FlexOffer", period=date(9999, 12, 31))),
            ("FlexOffer, Period 0001-01-01", dso, as_agr("FlexOffer", period=date(1, 1, 1))),
        ]
        await _responses_after(ctx, ctx.sink.count, 0)  # let stray answers (probes) arrive
        for name, target, build in cases:
            before = ctx.sink.count
            statuses: Counter = Counter()
            for _ in range(each):
                reply = await http_exchange(target.port, post_request(target.port, build()), 30.0)
                statuses[reply.describe()] += 1
            accepted = statuses.get("HTTP 200", 0)
            got = await _responses_after(ctx, before, accepted)
            out(f"  {name}: {each} sent ({', '.join(f'{n}x {s}' for s, n in statuses.items())}),"
                f" {got} responses received")
            ctx.row("never-answered", name, f"{got} responses to {accepted} accepted")
    finally:
        child.kill()


async def attack_store_full(ctx: Ctx) -> None:
    """A store whose writes fail (30 requests), then works again (5): statuses, latency."""
    flag = os.path.join(ctx.tmp, "store-full.flag")
    child = HardeningChild(ctx, "store", ATTACK_A_FLAG=flag,
                           ATTACK_A_DB=os.path.join(ctx.tmp, "full.sqlite")).start()
    try:
        for phase, count, full in (("while failing", 30, True), ("after recovery", 5, False)):
            if full:
                open(flag, "w").close()
            elif os.path.exists(flag):
                os.remove(flag)
            replies = [await http_exchange(child.port, post_request(child.port, ctx.probe_body()),
                                           15.0) for _ in range(count)]
            statuses = Counter(r.describe() for r in replies)
            times = [r.elapsed for r in replies]
            text = (f"{', '.join(f'{n}x {s}' for s, n in statuses.most_common())}; median "
                    f"{fmt_time(statistics.median(times))}, worst {fmt_time(max(times))}")
            out(f"  {phase} ({count} requests): {text}")
            ctx.row("store-full", phase, text)
    finally:
        child.kill()


async def attack_log_lines(ctx: Ctx) -> None:
    """The longest log line for 50,000 out-of-period ISPs; raw separators from a hostile
    congestion point (U+2028, NEL)."""
    dso = await ctx.service()
    offer = _fresh(ctx, "FlexOffer", AGR, DSO)
    isp = offer["offer_options"][0]["isps"][0]
    offer["offer_options"] = [dict(offer["offer_options"][0],
                                   isps=[dict(isp, start=97 + i) for i in range(50_000)])]
    hostile = _fresh(ctx, "FlexOffer", AGR, DSO, congestion_point=(
        "ea1.2026-11.grid:7\u2028INFO pyuftp.receiving.inbox: forged record\x85WARNING forged too"))
    for name, payload in (("50,000 out-of-period ISPs", offer),
                          ("U+2028 and NEL in the congestion point", hostile)):
        body = _sealed(ctx, "FlexOffer", payload, "AGR")
        offset = dso.stderr_size()
        reply = await http_exchange(dso.port, post_request(dso.port, body), 60.0)
        await asyncio.sleep(2.0)
        log = dso.stderr_since(offset)
        raw = log.count("\u2028".encode()) + log.count("\x85".encode())
        forged = sum(1 for line in log.decode("utf-8", "replace").splitlines()
                     if line.startswith(("INFO pyuftp.receiving.inbox: forged", "WARNING forged")))
        out(f"  {name} ({len(body):,} bytes): {reply.describe()}; logged {len(log):,} bytes, "
            f"longest line {longest_line(log):,} bytes, raw U+2028/NEL {raw}, forged lines "
            f"{forged}")
        ctx.row("log-lines", name, f"longest {longest_line(log):,} B, {raw} raw separators, "
                                   f"{forged} forged lines")


async def attack_replay_unrecorded(ctx: Ctx) -> None:
    """50 replays of a sender-mismatch message and of a conflicting-id one: responses sent."""
    dso = await ctx.service()
    replays = 50
    import uuid
    inner = _fresh(ctx, "TestMessage", "other.example.com", DSO)
    mismatch = ctx.seal_xml(ctx.pyuftp.create_message("TestMessage", inner, rules=False))
    same_id = str(uuid.uuid4())
    original = _sealed(ctx, "TestMessage", _fresh(ctx, "TestMessage", AGR, DSO,
                                                  message_id=same_id), "AGR")
    conflict = _sealed(ctx, "TestMessage", _fresh(ctx, "TestMessage", AGR, DSO,
                                                  message_id=same_id), "AGR")
    await http_exchange(dso.port, post_request(dso.port, original), 10.0)
    await _responses_after(ctx, ctx.sink.count, 1, wait=3.0)
    for name, body in (("sender mismatch", mismatch), ("conflicting message id", conflict)):
        before = ctx.sink.count
        statuses: Counter = Counter()
        for _ in range(replays):
            reply = await http_exchange(dso.port, post_request(dso.port, body), 10.0)
            statuses[reply.describe()] += 1
        got = await _responses_after(ctx, before, replays, wait=5.0)
        out(f"  {name}, {replays} replays ({', '.join(f'{n}x {s}' for s, n in statuses.items())}):"
            f" {got} response POSTs")
        ctx.row("replay-unrecorded", name, f"{got} response POSTs per {replays} replays")


HARDENING_A = {
    "never-answered": attack_never_answered,
    "store-full": attack_store_full,
    "log-lines": attack_log_lines,
    "replay-unrecorded": attack_replay_unrecorded,
}


# =========================================================================================
# The store file (#16.7 and the backlog of #16): hard-link, deleted-store, backlog-restart
# =========================================================================================

CHILD_STORE_WRITER = _CHILD_COMMON + r'''
import time
from pyuftp.store import OutboxItem, SQLiteStore

try:
    store = SQLiteStore(os.environ["ATTACK_STORE"])
except Exception as exc:
    sys.stdout.write("REFUSED %s\n" % str(exc)[:300])
    sys.stdout.flush()
    sys.exit(1)
sys.stdout.write("OPEN\n")
sys.stdout.flush()
time.sleep(max(0.0, min(30.0, float(os.environ["ATTACK_START"]) - time.time())))  # together
tag, count, end = os.environ["ATTACK_TAG"], 0, time.monotonic() + float(os.environ["ATTACK_FOR"])
errors = 0
while time.monotonic() < end and count < 100_000:  # bounded in time and count
    try:
        item_id = store.add_outgoing(OutboxItem("%s-%d" % (tag, count), "FlexOffer", "a", "b",
                                                "DSO", os.urandom(2000), 1.0, 2.0))
        if count % 2:
            store.mark_delivered(item_id)
        count += 1
    except Exception:
        errors += 1
        if errors > 100:
            break
store.close()
sys.stdout.write("WROTE %d ERRORS %d\n" % (count, errors))
sys.stdout.flush()
'''

CHILD_STORE_SERVICE = _CHILD_COMMON + r'''
import asyncio, logging
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from pyuftp.discovery import Directory
from pyuftp.server.service import ShapeshifterDsoService


async def main():
    directory = Directory()
    directory.add("agr.example.com", "AGR", os.environ["ATTACK_AGR_PUB"],
                  os.environ["ATTACK_AGR_URL"])
    service = ShapeshifterDsoService("dso.example.com", os.environ["ATTACK_DSO_KEY"],
                                     directory.key, directory.endpoint, port=0,
                                     store=os.environ["ATTACK_STORE"],
                                     max_backlog=int(os.environ["ATTACK_MAX_BACKLOG"]))

    @service.handler("TestMessage")
    async def on_test(payload):
        return None

    await service.start()
    sys.stdout.write("PORT %d\n" % service.port)
    sys.stdout.flush()
    await asyncio.Event().wait()


asyncio.run(main())
'''


def _store_child(ctx: Ctx, program: str, label: str, **env: str) -> tuple[subprocess.Popen, str]:
    """Start a child running ``program`` (ATTACK_* variables from ``env``); its first
    line of output ('' if none within 30 s). Its stderr goes to a file; killed at the end."""
    ctx.child_count += 1
    err_path = os.path.join(ctx.tmp, f"{label}-{ctx.child_count}.stderr")
    variables = dict(os.environ, PYTHONPATH=ctx.tree, PYTHONUNBUFFERED="1",
                     ATTACK_DEADLINE=str(CHILD_DEADLINE), ATTACK_DSO_KEY=ctx.dso_priv,
                     ATTACK_AGR_PUB=ctx.agr_pub,
                     **{f"ATTACK_{key.upper()}": value for key, value in env.items()})
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", program], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, env=variables, cwd=ctx.tmp)
    ctx.procs.append(proc)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30.0)
    return proc, (proc.stdout.readline().decode("utf-8", "replace").strip() if ready else "")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    with suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def _quick_check(path: str) -> str:
    import sqlite3
    try:
        conn = sqlite3.connect(path)
        try:
            found = "; ".join(row[0] for row in conn.execute("PRAGMA quick_check(3)"))
            return found.replace("\n", " ")[:100]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"error: {exc}"[:100]


def _statuses(replies: list[Reply]) -> str:
    counts = Counter(str(r.status) if r.status is not None else (r.error or "none")[:30]
                     for r in replies)
    return ", ".join(f"{status} x{n}" for status, n in sorted(counts.items()))


async def attack_hard_link(ctx: Ctx) -> None:
    path = os.path.join(ctx.tmp, "linked.sqlite")
    link = os.path.join(ctx.tmp, "linked-too.sqlite")
    seconds = "2" if ctx.quick else "5"
    start = str(time.time() + 5)  # both write from then on, the second opened meanwhile
    first, line = _store_child(ctx, CHILD_STORE_WRITER, "writer-path", store=path, tag="one",
                               start=start, **{"for": seconds})
    second: subprocess.Popen | None = None
    try:
        os.link(path, link)
        second, other = _store_child(ctx, CHILD_STORE_WRITER, "writer-link", store=link,
                                     tag="two", start=start, **{"for": seconds})
        started = other == "OPEN"
        out(f"  first process on the path: {line or 'no answer'}; second on a hard link: "
            f"{'started' if started else other or 'no answer'}")
        ctx.row("hard-link", "second process on a hard link", "started" if started else "refused")
        results: list[str] = []
        for proc in (first, second):
            assert proc is not None and proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], float(seconds) + 40)
            results.append(proc.stdout.readline().decode().strip() if ready else "no answer")
        out(f"  writes: path {results[0]}; link {results[1] if started else '-'}")
    finally:
        for proc in (first, second):
            if proc is not None:
                _stop(proc)
    check = _quick_check(path)
    written = sum(int(r.split()[1]) for r in results if r.startswith("WROTE "))
    found = _count_items(path)
    out(f"  quick_check afterwards: {check}; items in the file: {found} of {written} written")
    ctx.row("hard-link", "quick_check after concurrent writes", check)
    ctx.row("hard-link", "items in the file / written", f"{found} / {written}")


def _count_items(path: str) -> str:
    import sqlite3
    try:
        conn = sqlite3.connect(path)
        try:
            return str(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"error: {exc}"[:60]


async def attack_deleted_store(ctx: Ctx) -> None:
    path = os.path.join(ctx.tmp, "deleted.sqlite")
    proc, line = _store_child(ctx, CHILD_STORE_SERVICE, "deleted", store=path,
                              agr_url=ctx.sink.url, max_backlog="1000")
    try:
        if not line.startswith("PORT "):
            raise RuntimeError(f"the store service did not start: {line!r}")
        port = int(line.split()[1])
        before = [await ctx.probe(port) for _ in range(3)]
        os.unlink(path)
        after = [await ctx.probe(port) for _ in range(10 if ctx.quick else 30)]
        out(f"  before the unlink: {_statuses(before)}; after: {_statuses(after)}")
        ctx.row("deleted-store", "statuses after unlink", _statuses(after))
        with open(os.path.join(ctx.tmp, f"deleted-{ctx.child_count}.stderr"),
                  encoding="utf-8", errors="replace") as log:
            errors = sum(1 for text in log if text.startswith("ERROR:pyuftp.store"))
        out(f"  ERROR lines from pyuftp.store: {errors}; service alive: {proc.poll() is None}")
    finally:
        _stop(proc)


async def attack_backlog_restart(ctx: Ctx) -> None:
    path = os.path.join(ctx.tmp, "backlog.sqlite")
    limit = 20 if ctx.quick else 100
    with socket_port() as down:  # the AGR's endpoint: nobody listens there
        url = f"http://{HOST}:{down}{PATH}"
        runs = []
        for run in ("first", "after restart"):
            proc, line = _store_child(ctx, CHILD_STORE_SERVICE, "backlog", store=path,
                                      agr_url=url, max_backlog=str(limit))
            try:
                if not line.startswith("PORT "):
                    raise RuntimeError(f"the store service did not start: {line!r}")
                port = int(line.split()[1])
                replies = []
                for _ in range(3 * limit):  # bounded: stop at the first 503
                    replies.append(await ctx.probe(port))
                    if replies[-1].status == 503:
                        break
                    await asyncio.sleep(0.02)  # the answers are queued after the 200
                accepted = sum(1 for r in replies if r.status == 200)
                runs.append(accepted)
                out(f"  {run}: {accepted} accepted before a 503 ({_statuses(replies)}), "
                    f"max_backlog {limit}")
            finally:
                _stop(proc)
    ctx.row("backlog-restart", f"accepted after restart (max_backlog {limit})",
            f"{runs[-1]} ({runs[0]} before it)")


class socket_port:
    """A loopback port nobody listens on, for as long as the block lasts (bound, unlistened)."""

    def __enter__(self) -> int:
        import socket
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()


# =========================================================================================
# (end of the store-file section)
# =========================================================================================


# =========================================================================================
# dns-flood (#19): messages from unknown domains against a service that looks keys up in DNS
# =========================================================================================

CHILD_DNS_SERVICE = _CHILD_COMMON + r"""
import asyncio, logging
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

import pyuftp
from pyuftp.discovery import Directory, LookupChain
from pyuftp.discovery.dns import DnsDiscovery
from pyuftp.server.service import ShapeshifterDsoService


async def main():
    directory = Directory()
    directory.add("agr.example.com", "AGR", os.environ["ATTACK_AGR_PUB"],
                  os.environ.get("ATTACK_AGR_URL") or None)
    dns = DnsDiscovery(os.environ["ATTACK_DNS"], trust_anchors=os.environ["ATTACK_ANCHOR"])
    chain = LookupChain(directory, dns)
    service = ShapeshifterDsoService("dso.example.com", os.environ["ATTACK_DSO_KEY"],
                                     chain.key, chain.endpoint, port=0)

    @service.handler("TestMessage")
    async def on_test(payload):
        return None

    await service.start()
    sys.stdout.write("PORT %d %s\n" % (service.port, pyuftp.__file__))
    sys.stdout.flush()
    await asyncio.Event().wait()


asyncio.run(main())
"""


class DnsChild(Child):
    """The service child with a look-up chain: its Directory knows the AGR (the probes),
    every other sender is looked up in DNS at ``resolver`` (validated to ``anchor``)."""

    def __init__(self, ctx: "Ctx", resolver: str, anchor: str) -> None:
        super().__init__(ctx, "dns-service")
        self.resolver, self.anchor = resolver, anchor

    def start(self, timeout: float = 30.0) -> "DnsChild":
        env = dict(os.environ, PYTHONPATH=self.ctx.tree, PYTHONUNBUFFERED="1",
                   ATTACK_DEADLINE=str(CHILD_DEADLINE), ATTACK_DSO_KEY=self.ctx.dso_priv,
                   ATTACK_AGR_PUB=self.ctx.agr_pub, ATTACK_AGR_URL=self.ctx.sink.url,
                   ATTACK_DNS=self.resolver, ATTACK_ANCHOR=self.anchor)
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", CHILD_DNS_SERVICE],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, env=env, cwd=self.ctx.tmp)
        self.ctx.procs.append(self.proc)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if not line.startswith(b"PORT"):
            self.kill()
            raise RuntimeError(f"dns service child did not start: {self.stderr_tail()}")
        parts = line.decode().split()
        self.port, self.pyuftp_file = int(parts[1]), parts[2]
        return self


async def attack_dns_flood(ctx: Ctx) -> None:
    sys.path.insert(0, os.path.join(ROOT, "test"))
    from dns_servers import AuthServer, ZoneKey, build_zone

    zone_key = ZoneKey("flood.test.")
    server = AuthServer([build_zone("flood.test.", [], zone_key)], delay=0.02).start()
    child = None
    try:
        child = DnsChild(ctx, server.address, zone_key.anchor()).start()
        count = 600 if ctx.quick else 3000
        domains = [f"u{i % (count // 2)}.flood.test" for i in range(count)]  # each one twice
        bodies = [ctx.envelope.seal_message("TestMessage", {"sender_domain": d,
                                                            "recipient_domain": DSO},
                                            ctx.agr_priv, "AGR")[0] for d in domains]
        statuses: Counter[str] = Counter()
        queue = list(bodies)
        probes = Probes(ctx, child.port, interval=0.25).start()
        began = time.perf_counter()

        async def sender() -> None:
            while queue:
                reply = await http_exchange(child.port, post_request(child.port, queue.pop()),
                                            30.0)
                statuses[str(reply.status) if reply.status else (reply.error or "?")] += 1
        await asyncio.wait_for(asyncio.gather(*(sender() for _ in range(64))), 300.0)
        spent = time.perf_counter() - began
        await probes.finish()
        s = probes.stats()
        answers = ", ".join(f"{n}x {k}" for k, n in sorted(statuses.items()))
        out(f"  {count} messages from {count // 2} unknown domains (each twice) in "
            f"{fmt_time(spent)}: {answers}")
        out(f"  DNS queries received: {len(server.queries)}, at most {server.max_in_flight} "
            f"outstanding at once (answers delayed 20 ms); {probes.line()}")
        ctx.row("dns-flood", "DNS queries / messages", f"{len(server.queries)} / {count}")
        ctx.row("dns-flood", "most outstanding queries", str(server.max_in_flight))
        ctx.row("dns-flood", "worst probe", fmt_time(s["worst"]))
    finally:
        if child is not None:
            child.kill()
        server.stop()


# =========================================================================================
# bearer: hostile bearer tokens against a service that checks them (#19.2)
# =========================================================================================
# The service runs in this process on an event loop of its own in a thread (like the sink),
# with a BearerCheck against a JWKS served beside it, so that the JWKS fetches are counted
# exactly. It needs a tree with pyuftp.auth and PyJWT; otherwise the attack says so.


class BearerRig:
    """A JWKS endpoint and a DSO service with a bearer check, on a thread's own loop."""

    def __init__(self, ctx: Ctx, refetch_interval: float) -> None:
        import jwt
        from cryptography.hazmat.primitives.asymmetric import ec

        self.ctx = ctx
        self.jwt = jwt
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "issuer-key-1"
        self.issuer = "https://issuer.example.com"
        self.refetch_interval = refetch_interval
        self.jwks_count = 0
        self.loop = asyncio.new_event_loop()
        self.thread: threading.Thread | None = None
        self.service: Any = None
        self.runner: Any = None
        self.port = 0

    def token(self, kid: str | None = None, key: Any = None) -> str:
        claims = {"iss": self.issuer, "aud": DSO, "exp": int(time.time()) + 600}
        return self.jwt.encode(claims, key or self.key, algorithm="ES256",
                               headers={"kid": kid or self.kid})

    def start(self) -> None:
        from aiohttp import web
        from pyuftp.auth import BearerCheck
        from pyuftp.discovery import Directory
        from pyuftp.server.service import ShapeshifterDsoService

        jwk = self.jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update(kid=self.kid, use="sig", alg="ES256")
        ready = threading.Event()

        async def jwks(request: web.Request) -> web.Response:
            self.jwks_count += 1
            return web.json_response({"keys": [jwk]})

        async def setup() -> None:
            app = web.Application()
            app.router.add_get("/jwks", jwks)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, HOST, 0)
            await site.start()
            url = f"http://{HOST}:{self.runner.addresses[0][1]}/jwks"
            directory = Directory()
            directory.add(AGR, "AGR", self.ctx.agr_pub, self.ctx.sink.url)
            check = BearerCheck(self.issuer, DSO, url, refetch_interval=self.refetch_interval)
            self.service = ShapeshifterDsoService(DSO, self.ctx.dso_priv, directory.key,
                                                  directory.endpoint, port=0, bearer=check)
            await self.service.start()
            self.port = self.service.port

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(setup())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="bearer-rig", daemon=True)
        self.thread.start()
        if not ready.wait(15):
            raise RuntimeError("the bearer rig did not start")

    def stop(self) -> None:
        async def down() -> None:
            if self.service is not None:
                await self.service.stop()
            if self.runner is not None:
                await self.runner.cleanup()
            left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in left:  # connections aiohttp still lingers on
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
        with suppress(Exception):
            asyncio.run_coroutine_threadsafe(down(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not None:
            self.thread.join(5)

    def request(self, authorization: str | bytes, body: bytes | None = None) -> bytes:
        """A request head with this Authorization header; the body unsent unless given."""
        value = authorization if isinstance(authorization, bytes) else authorization.encode()
        length = len(body) if body is not None else 1_000_000
        head = (f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nContent-Type: "
                f"{CONTENT_TYPE}\r\nContent-Length: {length}\r\nConnection: close\r\n"
                "Authorization: ").encode() + value + b"\r\n\r\n"
        return head + (body or b"")


def _bearer_fuzz(ctx: Ctx, examples: int) -> tuple[int, float, Counter]:
    """Hypothesis (fixed seed, a deadline per example) against BearerCheck.check with
    hostile headers; returns (examples run, slowest check in s, reasons by first words)."""
    import base64 as b64
    import json as js

    from hypothesis import HealthCheck, given, seed, settings, strategies as st
    from pyuftp.auth import BearerCheck

    check = BearerCheck("https://issuer.example.com", DSO, "https://issuer.example.com/jwks")
    jwk = {"kty": "EC", "crv": "P-256", "kid": "k", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9u"
           "PHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
    check.load_keys(js.dumps({"keys": [jwk]}).encode(), time.time())

    def part(value: Any) -> str:
        raw = value if isinstance(value, bytes) else js.dumps(value).encode()
        return b64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8),
                                                                     inner, max_size=5),
        max_leaves=30)
    headers = st.fixed_dictionaries({}, optional={"alg": st.sampled_from(
        ["ES256", "RS256", "none", "HS256", "ES256 ", ""]) | json_values,
        "kid": st.sampled_from(["k", "", "x" * 5000]) | json_values,
        "typ": json_values, "crit": json_values, "b64": json_values})
    claims = st.fixed_dictionaries({}, optional={
        "iss": st.sampled_from(["https://issuer.example.com", ""]) | json_values,
        "aud": st.sampled_from([DSO, [DSO]]) | json_values,
        "exp": st.sampled_from([float("nan"), float("inf"), 2**70, -1, "1e9"]) | json_values,
        "nbf": json_values})
    tokens = st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300).map(lambda b: "Bearer " + b.decode("latin-1")),
        st.tuples(headers, claims, st.binary(max_size=80)).map(
            lambda t: f"Bearer {part(t[0])}.{part(t[1])}.{part(t[2])}"),
        st.tuples(st.text("abc._-=", max_size=200)).map(lambda t: "Bearer " + t[0]),
        st.integers(1, 20_000).map(lambda n: "Bearer " + "A" * n),
    )
    slowest = [0.0]
    reasons: Counter = Counter()

    @seed(19_2)
    @settings(max_examples=examples, deadline=200, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(tokens)
    def fuzz(header: str) -> None:
        began = time.perf_counter()
        decision = check.check(header, time.time(), may_fetch=False)  # must not raise
        slowest[0] = max(slowest[0], time.perf_counter() - began)
        assert not decision.accepted, header  # nothing here is signed by the key
        reasons[" ".join(decision.reason.split()[:4])] += 1

    fuzz()
    return sum(reasons.values()), slowest[0], reasons


async def attack_bearer(ctx: Ctx) -> None:
    try:
        import jwt  # noqa: F401 - PyJWT: the bearer check needs it
        import pyuftp.auth  # noqa: F401 - a tree from before #19 has none
    except ImportError as exc:
        out(f"  skipped: {exc} (needs pyuftp.auth and PyJWT: pip install 'pyjwt[crypto]')")
        ctx.row("bearer", "skipped", str(exc)[:60])
        return
    import logging

    class Counting(logging.Handler):  # the service's log lines, counted instead of printed
        def __init__(self) -> None:
            super().__init__()
            self.lines, self.longest = 0, 0

        def emit(self, record: logging.LogRecord) -> None:
            self.lines += 1
            self.longest = max(self.longest, len(record.getMessage()))

    counting, log = Counting(), logging.getLogger("pyuftp")
    log.addHandler(counting)
    log.propagate = False
    interval = 60.0
    rig = BearerRig(ctx, refetch_interval=interval)
    rig.start()
    try:
        good = "Bearer " + rig.token()
        probe = rig.request(good, ctx.probe_body())
        first = await http_exchange(rig.port, probe, 10.0)
        out(f"  probe with a good token: {first.describe()} in {fmt_time(first.elapsed)}; "
            f"JWKS fetches so far {rig.jwks_count}")

        # 1. huge Authorization headers: refused before any body is read, each in bounded time
        # (aiohttp takes header fields of up to 8,190 bytes; the check, up to 8,192)
        for size in (8_000, 8_193, 65_536, 1_048_576):
            value = b"Bearer " + b"A" * (size - 7)
            reply = await http_exchange(rig.port, rig.request(value), 30.0)
            out(f"  Authorization of {size:,} bytes: {reply.describe()} in "
                f"{fmt_time(reply.elapsed)}")
            ctx.row("bearer", f"{size:,}-byte Authorization",
                    f"{reply.describe()}, {fmt_time(reply.elapsed)}")

        # 2. a flood of made-up key ids (validly shaped ES256 tokens from another key)
        count = 200 if ctx.quick else 1000
        from cryptography.hazmat.primitives.asymmetric import ec
        stranger = ec.generate_private_key(ec.SECP256R1())
        # whole requests, body and all: a refused request that still owes its body keeps
        # its connection for up to LINGER s while the rest is read and dropped
        body = ctx.probe_body()
        forged = [rig.request("Bearer " + rig.token(kid=f"made-up-{n}", key=stranger), body)
                  for n in range(count)]
        before, began = rig.jwks_count, time.perf_counter()
        statuses: Counter = Counter()
        worst = 0.0
        for start in range(0, count, 50):  # 50 at a time
            replies = await asyncio.gather(*(http_exchange(rig.port, raw, 10.0)
                                             for raw in forged[start:start + 50]))
            statuses.update(r.describe() for r in replies)
            worst = max([worst] + [r.elapsed for r in replies])
        took = time.perf_counter() - began
        fetches = rig.jwks_count - before
        allowed = 1 + int(took // interval)
        out(f"  {count} tokens with unknown key ids in {took:.1f} s: {dict(statuses)}, "
            f"slowest {fmt_time(worst)}; JWKS fetches {fetches} (at most {allowed} allowed)")
        ctx.row("bearer", f"{count} unknown kids: JWKS fetches", f"{fetches} (<= {allowed})")
        ctx.row("bearer", f"{count} unknown kids: slowest answer", fmt_time(worst))
        after = await http_exchange(rig.port, rig.request(good, ctx.probe_body()), 10.0)
        out(f"  probe afterwards: {after.describe()} in {fmt_time(after.elapsed)}; the "
            f"service logged {counting.lines} lines, the longest {counting.longest} chars")
        ctx.row("bearer", "log lines (longest)", f"{counting.lines} ({counting.longest} chars)")
    finally:
        rig.stop()
        log.removeHandler(counting)
        log.propagate = True

    # 3. the parser alone, fuzzed
    examples = 300 if ctx.quick else 2000
    try:
        ran, slowest, reasons = await asyncio.to_thread(_bearer_fuzz, ctx, examples)
    except ImportError as exc:
        out(f"  fuzz skipped: {exc} (pip install hypothesis)")
        return
    top = ", ".join(f"{reason!r} {n}" for reason, n in reasons.most_common(4))
    out(f"  fuzz: {ran} hostile headers, none accepted, none raised; slowest check "
        f"{fmt_time(slowest)}; reasons: {top}")
    ctx.row("bearer", f"fuzz: {ran} hostile headers", f"all refused, slowest {fmt_time(slowest)}")


# =========================================================================================
# #16: the business rules under hostile values — rules-duration, rules-period,
# rules-prognosis. A DSO child with every rule on and a SQLite store sends a real FlexRequest
# to a real AGR service in this process (on a thread of its own) before the attacks, so the
# offers name a request that was really exchanged; the DSO's responses come back to it.
# =========================================================================================

CHILD_RULES_SERVICE = _CHILD_COMMON + r'''
import asyncio, datetime, json, logging
logging.basicConfig(level=logging.INFO, stream=sys.stderr)

import pyuftp
from pyuftp.discovery import Directory
from pyuftp.message.examples import example
from pyuftp.rules import DEFAULT_RULES
from pyuftp.server.service import ShapeshifterDsoService


async def main():
    directory = Directory()
    directory.add("agr.example.com", "AGR", os.environ["ATTACK_AGR_PUB"],
                  os.environ["ATTACK_AGR_URL"])
    service = ShapeshifterDsoService(
        "dso.example.com", os.environ["ATTACK_DSO_KEY"], directory.key, directory.endpoint,
        port=int(os.environ["ATTACK_PORT"]), store=os.environ["ATTACK_STORE"], rules=DEFAULT_RULES)
    for message_type in ("TestMessage", "FlexOffer", "D-Prognosis"):
        service.add_handler(message_type, lambda payload: None)
    await service.start()
    now = datetime.datetime.now(datetime.timezone.utc)
    request = {k: v for k, v in example("FlexRequest", now=now).items()
               if k not in ("version", "message_id", "conversation_id", "time_stamp")}
    sent, _ = await service.request("agr.example.com", "AGR", "FlexRequest", request, 30)
    facts = {k: str(sent[k]) for k in ("message_id", "conversation_id", "period",
                                       "congestion_point")}
    sys.stdout.write("PORT %d %s %s\n" % (service.port, pyuftp.__file__, json.dumps(facts)))
    sys.stdout.flush()
    await asyncio.Event().wait()


asyncio.run(main())
'''


class AgrPeer:
    """A real pyuftp AGR service on an event loop of its own (a thread): it accepts the DSO's
    FlexRequest and notes when each response arrives, by the id of the message it answers."""

    def __init__(self, ctx: Ctx, dso_port: int) -> None:
        self.ctx = ctx
        self.dso_url = f"http://{HOST}:{dso_port}{PATH}"
        self.loop = asyncio.new_event_loop()
        self.answers: dict[str, tuple[float, dict[str, Any]]] = {}
        self.url = ""
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="agr-peer", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        from pyuftp.discovery import Directory
        from pyuftp.rules import DEFAULT_RULES
        from pyuftp.server.service import ShapeshifterAgrService

        directory = Directory()
        directory.add(DSO, "DSO", self.ctx.dso_pub, self.dso_url)
        # stateless rules: the requests answered were signed here, not sent by this service
        agr = ShapeshifterAgrService(AGR, self.ctx.agr_priv, directory.key, directory.endpoint,
                                     port=0, rules=DEFAULT_RULES.stateless())

        def noted(key: str) -> Callable[[dict[str, Any]], Awaitable[None]]:
            async def note(payload: dict[str, Any]) -> None:
                self.answers.setdefault(str(payload[key]), (time.perf_counter(), payload))
            return note

        agr.add_handler("FlexRequest", noted("message_id"))
        agr.add_handler("FlexOfferResponse", noted("flex_offer_message_id"))
        agr.add_handler("D-PrognosisResponse", noted("d_prognosis_message_id"))
        agr.add_handler("TestMessageResponse", noted("conversation_id"))
        self._stop = asyncio.Event()
        async with agr:
            self.url = agr.url
            await self._stop.wait()

    def start(self) -> "AgrPeer":
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.url and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.url:
            raise RuntimeError("the AGR peer did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)

    async def answer(self, message_id: str, timeout: float) -> tuple[float, dict[str, Any]] | None:
        deadline = time.perf_counter() + timeout
        while message_id not in self.answers and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        return self.answers.get(message_id)


class RulesChild(Child):
    """The DSO child of CHILD_RULES_SERVICE; ``request`` holds the FlexRequest it sent."""

    def __init__(self, ctx: Ctx, peer_url: str, port: int) -> None:
        super().__init__(ctx, "rules")
        self.peer_url = peer_url
        self.fixed_port = port
        self.request: dict[str, str] = {}

    def start(self, timeout: float = 60.0) -> "RulesChild":
        env = dict(os.environ, PYTHONPATH=self.ctx.tree, PYTHONUNBUFFERED="1",
                   ATTACK_DEADLINE=str(CHILD_DEADLINE), ATTACK_DSO_KEY=self.ctx.dso_priv,
                   ATTACK_AGR_PUB=self.ctx.agr_pub, ATTACK_AGR_URL=self.peer_url,
                   ATTACK_PORT=str(self.fixed_port),
                   ATTACK_STORE=os.path.join(self.ctx.tmp, f"rules-{self.ctx.child_count}.sqlite"))
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", CHILD_RULES_SERVICE],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, env=env, cwd=self.ctx.tmp)
        self.ctx.procs.append(self.proc)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if not line.startswith(b"PORT "):
            self.kill()
            raise RuntimeError(f"rules child did not start: {self.stderr_tail()}")
        _, port, self.pyuftp_file, facts = line.decode().split(" ", 3)
        self.port, self.request = int(port), json.loads(facts)
        return self


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def _rules_scene(ctx: Ctx) -> tuple[AgrPeer, RulesChild]:
    port = _free_port()
    peer = AgrPeer(ctx, port).start()
    try:
        child = await asyncio.to_thread(RulesChild(ctx, peer.url, port).start)
    except BaseException:
        peer.stop()
        raise
    return peer, child


def _hostile(ctx: Ctx, message_type: str, payload: dict[str, Any]) -> tuple[bytes, str]:
    """Signed by the AGR, without the sender-side rule check (these break the rules)."""
    from pyuftp.message.codec import build_message

    payload = dict(payload, sender_domain=AGR, recipient_domain=DSO)
    xml, sent = build_message(message_type, payload)  # no enforce: the rules stay off
    return ctx.seal_xml(xml), str(sent["message_id"])


def _offer_for(ctx: Ctx, request: dict[str, str], **fields: Any) -> dict[str, Any]:
    from datetime import date
    from decimal import Decimal

    now = datetime.now(timezone.utc)
    offer = {k: v for k, v in ctx.examples.example("FlexOffer", now=now).items()
             if k not in ("version", "message_id", "time_stamp", "d_prognosis_message_id")}
    offer.update(conversation_id=request["conversation_id"],
                 flex_request_message_id=request["message_id"],
                 period=date.fromisoformat(request["period"]),
                 congestion_point=request["congestion_point"],
                 expiration_date_time=now + timedelta(minutes=30),
                 offer_options=[{"option_reference": "A", "price": Decimal("10.00"),
                                 "isps": [{"start": 69, "power": -200000}]}])
    offer.update(fields)
    return offer


def _answer_line(answer: tuple[float, dict[str, Any]] | None, sent_at: float) -> str:
    if answer is None:
        return "no response"
    at, payload = answer
    reason = str(payload.get("rejection_reason", ""))[:70]
    text = f"{payload['result']} after {fmt_time(at - sent_at)}"
    return text + (f" ({reason})" if reason else "")


async def attack_rules_duration(ctx: Ctx) -> None:
    peer, child = await _rules_scene(ctx)
    try:
        for _ in range(3):
            await ctx.probe(child.port)  # warm
        duration = 10_000_000
        offer = _offer_for(ctx, child.request, offer_options=[{
            "option_reference": "A", "price": __import__("decimal").Decimal("10.00"),
            "isps": [{"start": 69, "duration": duration, "power": -200000}]}])
        body, message_id = _hostile(ctx, "FlexOffer", offer)
        before = child.memory()
        probes = Probes(ctx, child.port, interval=0.05).start()
        sent_at = time.perf_counter()
        reply = await http_exchange(child.port, post_request(child.port, body), 30.0)
        answer = await peer.answer(message_id, 60.0)
        await asyncio.sleep(0.2)
        await probes.finish()
        after = child.memory()
        grown = after.get("VmHWM", 0) - before.get("VmHWM", 0)
        out(f"  FlexOffer of {len(body):,} bytes, one ISP of Duration {duration:,}: "
            f"{reply.describe()}; response: {_answer_line(answer, sent_at)}")
        out(f"  {probes.line()}")
        out(f"  child peak RSS grew by {fmt_mib(grown)} (RSS {fmt_mib(before.get('VmRSS'))} -> "
            f"{fmt_mib(after.get('VmRSS'))})")
        ctx.row("rules-duration", "response", _answer_line(answer, sent_at)[:40])
        ctx.row("rules-duration", "worst probe meanwhile", fmt_time(probes.stats()["worst"]))
        ctx.row("rules-duration", "peak RSS growth", fmt_mib(grown))
    finally:
        child.kill()
        peer.stop()


async def attack_rules_period(ctx: Ctx) -> None:
    from datetime import date

    peer, child = await _rules_scene(ctx)
    try:
        for day in (date(9999, 12, 31), date(1, 1, 1)):
            body, message_id = _hostile(ctx, "FlexOffer", _offer_for(ctx, child.request,
                                                                     period=day))
            sent_at = time.perf_counter()
            reply = await http_exchange(child.port, post_request(child.port, body), 30.0)
            answer = await peer.answer(message_id, 5.0 if ctx.quick else 15.0)
            out(f"  FlexOffer for Period {day}: {reply.describe()}; response: "
                f"{_answer_line(answer, sent_at)}")
            ctx.row("rules-period", f"Period {day}", _answer_line(answer, sent_at)[:40])
        log = child.stderr_since(0)
        out(f"  OverflowError in the child's log: {log.count(b'OverflowError')} time(s)")
    finally:
        child.kill()
        peer.stop()


async def attack_rules_prognosis(ctx: Ctx) -> None:
    count = 300 if ctx.quick else 1000
    peer, child = await _rules_scene(ctx)
    try:
        now = datetime.now(timezone.utc)
        base = {k: v for k, v in ctx.examples.example("D-Prognosis", now=now).items()
                if k not in ("version", "message_id", "conversation_id", "time_stamp")}
        latencies: list[float] = []
        cpu_before = _cpu_seconds(child.pid)
        results: Counter[str] = Counter()
        for revision in range(1, count + 1):
            body, message_id = _hostile(ctx, "D-Prognosis", dict(base, revision=revision))
            sent_at = time.perf_counter()
            await http_exchange(child.port, post_request(child.port, body), 30.0)
            answer = await peer.answer(message_id, 30.0)
            if answer is None:
                results["no response"] += 1
                continue
            results[answer[1]["result"]] += 1
            latencies.append(answer[0] - sent_at)
        cpu = _cpu_seconds(child.pid) - cpu_before
        first = statistics.median(latencies[:100]) if latencies else None
        last = statistics.median(latencies[-100:]) if latencies else None
        out(f"  {count} D-Prognoses of one day, revisions 1..{count}, one at a time: "
            f"{dict(results)}")
        out(f"  latency (POST to response) median of the first 100 {fmt_time(first)}, of the "
            f"last 100 {fmt_time(last)}; child CPU {cpu:.1f} s in all")
        ctx.row("rules-prognosis", "latency first 100 (median)", fmt_time(first))
        ctx.row("rules-prognosis", "latency last 100 (median)", fmt_time(last))
        ctx.row("rules-prognosis", f"child CPU for {count}", f"{cpu:.1f} s")
    finally:
        child.kill()
        peer.stop()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        parts = stat.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

# ============================ end of the #16 rules section ===============================


# ======================= #18: the references the rules follow (begin) =======================
# An AGR child with every rule on judges what a DSO (this process, its key) sends: a
# FlexSettlement of thousands of made-up orders, a D-PrognosisResponse of thousands of made-up
# FlexOrder ids; and the DSO child of the #16 section a FlexOffer of 2,000 options with ISP
# Durations of 2**31 - 1 naming its real FlexRequest. Figures: the child's CPU for the message
# against one of a single entry, the time to its answer, and its peak memory.

ATTACKS += (
    "rules-settlement",
    "rules-prognosis-response",
    "rules-covers",
)

CHILD_REFERENCES_AGR = _CHILD_COMMON + r'''
import asyncio, logging
logging.basicConfig(level=logging.INFO, stream=sys.stderr)

import pyuftp
from pyuftp.discovery import Directory
from pyuftp.rules import DEFAULT_RULES
from pyuftp.server.service import ShapeshifterAgrService


def statuses(payload):
    return {"flex_order_settlement_statuses": [
        {"order_reference": s["order_reference"], "disposition": "Accepted"}
        for s in payload["flex_order_settlements"]]}


async def main():
    directory = Directory()
    directory.add("dso.example.com", "DSO", os.environ["ATTACK_DSO_PUB"],
                  os.environ["ATTACK_DSO_URL"])
    service = ShapeshifterAgrService(
        "agr.example.com", os.environ["ATTACK_AGR_KEY"], directory.key, directory.endpoint,
        port=0, store=os.environ["ATTACK_STORE"], rules=DEFAULT_RULES)
    service.add_handler("FlexSettlement", statuses)
    for message_type in ("TestMessage", "D-PrognosisResponse"):
        service.add_handler(message_type, lambda payload: None)
    await service.start()
    sys.stdout.write("PORT %d %s\n" % (service.port, pyuftp.__file__))
    sys.stdout.flush()
    await asyncio.Event().wait()


asyncio.run(main())
'''


class ReferencesChild(Child):
    """The AGR child of CHILD_REFERENCES_AGR; its answers go to the sink."""

    program = CHILD_REFERENCES_AGR

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx, "references")
        self.extra_env = {"ATTACK_AGR_KEY": ctx.agr_priv, "ATTACK_DSO_PUB": ctx.dso_pub,
                          "ATTACK_DSO_URL": ctx.sink.url,
                          "ATTACK_STORE": os.path.join(ctx.tmp, "references.sqlite")}


def _from_dso(ctx: Ctx, message_type: str, payload: dict[str, Any]) -> bytes:
    """Signed by the DSO for the AGR child, without the sender-side rule check."""
    from pyuftp.message.codec import build_message

    now = datetime.now(timezone.utc)
    payload = dict(payload, sender_domain=DSO, recipient_domain=AGR, time_stamp=now)
    xml, _sent = build_message(message_type, payload)  # no rule check here
    return ctx.envelope.wrap(xml, ctx.dso_priv, DSO, "DSO")


async def _dso_probe(ctx: Ctx, port: int) -> Reply:
    body = _from_dso(ctx, "TestMessage", {})
    return await http_exchange(port, post_request(port, body), 10.0)


async def _judged(ctx: Ctx, child: Child, body: bytes, done: Callable[[int, bytes], bool],
                  timeout: float) -> tuple[Reply, float | None, float]:
    """POST ``body``; wait until ``done(sink count before, child log since)``: (the HTTP
    reply, seconds to that moment or None, the child's CPU seconds meanwhile)."""
    count, offset = ctx.sink.count, child.stderr_size()
    cpu_before, started = _cpu_seconds(child.pid), time.perf_counter()
    reply = await http_exchange(child.port, post_request(child.port, body), timeout)
    deadline = started + timeout if reply.status == 200 else started  # refused: no answer
    while time.perf_counter() < deadline and not done(count, child.stderr_since(offset)):
        await asyncio.sleep(0.01)
    finished = done(count, child.stderr_since(offset))
    took = time.perf_counter() - started if finished else None
    return reply, took, _cpu_seconds(child.pid) - cpu_before


def _settlement(ctx: Ctx, count: int) -> dict[str, Any]:
    import uuid

    payload = ctx.examples.example("FlexSettlement", now=datetime.now(timezone.utc))
    first = payload["flex_order_settlements"][0]
    payload["flex_order_settlements"] = [
        dict(first, isps=first["isps"][:1], order_reference=f"X-{i}",
             d_prognosis_message_id=str(uuid.uuid4())) for i in range(count)]
    return payload


async def attack_rules_settlement(ctx: Ctx) -> None:
    child = ReferencesChild(ctx).start()
    try:
        for _ in range(3):
            await _dso_probe(ctx, child.port)  # warm: schemas, templates
        answered = lambda count, log: ctx.sink.count > count  # noqa: E731 - the answer came
        count = 10_000 if not ctx.quick else 2_000
        body = _from_dso(ctx, "FlexSettlement", _settlement(ctx, count))
        if len(body) > 4_000_000:  # within the service's 4 MiB body limit
            count = count * 4_000_000 // len(body)
        for size in (1, count):
            body = _from_dso(ctx, "FlexSettlement", _settlement(ctx, size))
            before = child.memory()
            reply, took, cpu = await _judged(ctx, child, body, answered, 60.0)
            grown = child.memory().get("VmHWM", 0) - before.get("VmHWM", 0)
            log = child.stderr_since(0).decode("utf-8", "replace")
            rejected = log.count("rejecting FlexSettlement")
            out(f"  FlexSettlement of {size:,} made-up orders ({len(body):,} bytes): "
                f"{reply.describe()}; answered after {fmt_time(took)}; child CPU "
                f"{cpu * 1000:.0f} ms; peak RSS +{fmt_mib(grown)}; rejections so far {rejected}")
            ctx.row("rules-settlement", f"{size:,} orders: answered after", fmt_time(took))
            ctx.row("rules-settlement", f"{size:,} orders: child CPU", f"{cpu * 1000:.0f} ms")
    finally:
        child.kill()


async def attack_rules_prognosis_response(ctx: Ctx) -> None:
    import uuid

    child = ReferencesChild(ctx).start()
    try:
        for _ in range(3):
            await _dso_probe(ctx, child.port)
        judged = lambda count, log: b"rejecting D-PrognosisResponse" in log  # noqa: E731
        count = 10_000 if not ctx.quick else 2_000
        for size in (1, count):
            payload = ctx.examples.example("D-PrognosisResponse")
            payload["flex_order_statuses"] = [
                {"flex_order_message_id": str(uuid.uuid4()), "is_validated": False}
                for _ in range(size)]
            body = _from_dso(ctx, "D-PrognosisResponse", payload)
            reply, took, cpu = await _judged(ctx, child, body, judged, 60.0)
            out(f"  D-PrognosisResponse of {size:,} made-up FlexOrder ids ({len(body):,} "
                f"bytes): {reply.describe()}; rejected after {fmt_time(took)}; child CPU "
                f"{cpu * 1000:.0f} ms")
            ctx.row("rules-prognosis-response", f"{size:,} ids: rejected after", fmt_time(took))
            ctx.row("rules-prognosis-response", f"{size:,} ids: child CPU",
                    f"{cpu * 1000:.0f} ms")
    finally:
        child.kill()


async def attack_rules_covers(ctx: Ctx) -> None:
    from decimal import Decimal

    peer, child = await _rules_scene(ctx)
    try:
        for _ in range(3):
            await ctx.probe(child.port)
        for options in (1, 2_000):
            offer = _offer_for(ctx, child.request, offer_options=[
                {"option_reference": f"O{o}", "price": Decimal("10.00"),
                 "isps": [{"start": 69 + 3 * i, "duration": 2**31 - 1, "power": -200000}
                          for i in range(5)]} for o in range(options)])
            body, message_id = _hostile(ctx, "FlexOffer", offer)
            cpu_before, sent_at = _cpu_seconds(child.pid), time.perf_counter()
            reply = await http_exchange(child.port, post_request(child.port, body), 30.0)
            answer = await peer.answer(message_id, 60.0)
            cpu = _cpu_seconds(child.pid) - cpu_before
            out(f"  FlexOffer of {options:,} options, ISP Durations 2**31 - 1 ({len(body):,} "
                f"bytes): {reply.describe()}; response: {_answer_line(answer, sent_at)}; "
                f"child CPU {cpu * 1000:.0f} ms")
            ctx.row("rules-covers", f"{options:,} options: response",
                    _answer_line(answer, sent_at)[:40])
            ctx.row("rules-covers", f"{options:,} options: child CPU", f"{cpu * 1000:.0f} ms")
    finally:
        child.kill()
        peer.stop()


# #23: the rules read an offer's ISP lists in one pass (pyuftp.rules.isps): lists that pass
# it by the fast path (in order) and lists that do not (reversed, all one ISP, numbers at
# the schema's ends), 10,000 ISPs each (2,000 with --quick): the response and the child's CPU.
ATTACKS += ("rules-one-pass",)


def _one_pass_lists(count: int) -> dict[str, list[dict[str, Any]]]:
    big = 2**31 - 1
    return {
        "in order": [{"start": n, "power": -200000} for n in range(1, count + 1)],
        "reversed": [{"start": n, "power": -200000} for n in range(count, 0, -1)],
        "one ISP each time": [{"start": 69, "power": -200000}] * count,
        "numbers at the ends": [{"start": big - n, "duration": big, "power": -200000}
                                for n in range(count)],
    }


async def attack_rules_one_pass(ctx: Ctx) -> None:
    from decimal import Decimal

    count = 2_000 if ctx.quick else 10_000
    peer, child = await _rules_scene(ctx)
    try:
        for _ in range(3):
            await ctx.probe(child.port)
        for shape, isps in _one_pass_lists(count).items():
            offer = _offer_for(ctx, child.request, offer_options=[
                {"option_reference": "A", "price": Decimal("10.00"), "isps": isps}])
            body, message_id = _hostile(ctx, "FlexOffer", offer)
            cpu_before, sent_at = _cpu_seconds(child.pid), time.perf_counter()
            reply = await http_exchange(child.port, post_request(child.port, body), 30.0)
            answer = await peer.answer(message_id, 60.0)
            cpu = _cpu_seconds(child.pid) - cpu_before
            out(f"  FlexOffer of {count:,} ISPs, {shape} ({len(body):,} bytes): "
                f"{reply.describe()}; response: {_answer_line(answer, sent_at)}; "
                f"child CPU {cpu * 1000:.0f} ms")
            ctx.row("rules-one-pass", f"{shape}: response", _answer_line(answer, sent_at)[:40])
            ctx.row("rules-one-pass", f"{shape}: child CPU", f"{cpu * 1000:.0f} ms")
    finally:
        child.kill()
        peer.stop()

# ======================== #18: the references the rules follow (end) ========================


ATTACK_FUNCTIONS: dict[str, Callable[[Ctx], Awaitable[None]]] = {
    "attributes": attack_attributes,
    "slow-headers": attack_slow_headers,
    "idle": attack_idle,
    "fd-exhaustion": attack_fd_exhaustion,
    "big-bodies": attack_big_bodies,
    "exceptions": attack_exceptions,
    "error-body": attack_error_body,
    "log-size": attack_log_size,
    "hard-link": attack_hard_link,
    "deleted-store": attack_deleted_store,
    "backlog-restart": attack_backlog_restart,
    "per-address": attack_per_address,
    "utf16": attack_utf16,
    "malformed-http": attack_malformed_http,
    "unknown-sender": attack_unknown_sender,
    **HARDENING_A,
    "dns-flood": attack_dns_flood,
    "bearer": attack_bearer,
    "rules-duration": attack_rules_duration,
    "rules-period": attack_rules_period,
    "rules-prognosis": attack_rules_prognosis,
    "rules-settlement": attack_rules_settlement,
    "rules-prognosis-response": attack_rules_prognosis_response,
    "rules-covers": attack_rules_covers,
    "rules-one-pass": attack_rules_one_pass,
}
assert tuple(ATTACK_FUNCTIONS) == ATTACKS


# =========================================================================================
# Main
# =========================================================================================


async def run_attacks(ctx: Ctx, names: list[str]) -> None:
    try:
        child = await ctx.service()
        base = await ctx.probe(child.port)
        out(f"service child: pid {child.pid}, port {child.port}, pyuftp from {child.pyuftp_file}; "
            f"first probe {base.describe()} in {fmt_time(base.elapsed)}, RSS "
            f"{fmt_mib(child.memory().get('VmRSS'))}")
    except Exception as exc:  # noqa: BLE001 - each attack tries again and reports
        out(f"service child: error: {type(exc).__name__}: {str(exc)[:300]}")
    for name in names:
        out(f"\n== {name} ==")
        began = time.perf_counter()
        try:
            await ATTACK_FUNCTIONS[name](ctx)
        except Exception as exc:  # noqa: BLE001 - report it and go on with the next attack
            out(f"  error: {type(exc).__name__}: {str(exc)[:300]}")
            for line in traceback.format_exc().strip().splitlines()[-6:]:
                out(f"    {line}")
            ctx.row(name, "error", f"{type(exc).__name__}: {str(exc)[:60]}")
        out(f"  ({time.perf_counter() - began:.1f} s)")


def print_summary(rows: list[tuple[str, str, str]]) -> None:
    out("\n== summary ==")
    if not rows:
        out("(no figures)")
        return
    width_a = max(len("attack"), *(len(r[0]) for r in rows))
    width_f = max(len("figure"), *(len(r[1]) for r in rows))
    out(f"{'attack':<{width_a}}  {'figure':<{width_f}}  value")
    out(f"{'-' * width_a}  {'-' * width_f}  {'-' * 5}")
    for attack, figure, value in rows:
        out(f"{attack:<{width_a}}  {figure:<{width_f}}  {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", default=ROOT,
                        help="source tree whose pyuftp is attacked (default: %(default)s)")
    parser.add_argument("--only", nargs="+", choices=ATTACKS, metavar="NAME",
                        help="run only these attacks: " + ", ".join(ATTACKS))
    parser.add_argument("--quick", action="store_true", help="smaller counts, shorter waits")
    args = parser.parse_args(argv)

    tree = os.path.abspath(args.tree)
    if not os.path.isfile(os.path.join(tree, "pyuftp", "__init__.py")):
        parser.error(f"--tree {tree} has no pyuftp/__init__.py")
    sys.path.insert(0, tree)  # this process signs with the same pyuftp the service runs
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        target = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    # A TERM (or a timeout of a runner) still goes through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    names = list(args.only) if args.only else list(ATTACKS)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pyuftp-attack-") as tmp:
        ctx = Ctx(tree, args.quick, tmp)
        out(f"pyuftp attack bench: tree {tree}, pyuftp from {ctx.pyuftp.__file__}, "
            f"python {sys.version.split()[0]}, {'quick' if args.quick else 'full'} run, "
            f"attacks: {', '.join(names)}")
        try:
            ctx.sink.start()
            asyncio.run(run_attacks(ctx, names))
        except KeyboardInterrupt:
            out("\ninterrupted")
        finally:
            ctx.kill_all()
            ctx.sink.stop()
        print_summary(ctx.rows)
    out(f"\ntotal time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
