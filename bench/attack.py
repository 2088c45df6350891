"""Attack bench: how a pyuftp DSO service holds up against hostile senders, in figures.

    python bench/attack.py [--tree PATH] [--only NAME ...] [--quick]

``--tree PATH`` is the source tree whose ``pyuftp`` is measured (put first on the path of
this process and of every child; default: the repository this script is in). ``--only``
runs some of the attacks (names below), in the order given. ``--quick`` uses smaller counts
and shorter waits (about 1.5 minutes instead of about 4 to 5).

A ``pyuftp.service.ShapeshifterDsoService`` for ``dso.example.com`` runs in a child process
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
rules-prognosis (same child) 1,000 D-Prognoses of one day (300 with --quick), one at a time:
               median latency POST-to-response of the first and the last 100, child CPU.

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
from pyuftp.service import ShapeshifterDsoService


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
from pyuftp.client import ShapeshifterAgrDsoClient


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

    def start(self, timeout: float = 30.0) -> "Child":
        env = dict(os.environ, PYTHONPATH=self.ctx.tree, PYTHONUNBUFFERED="1",
                   ATTACK_DEADLINE=str(CHILD_DEADLINE), ATTACK_DSO_KEY=self.ctx.dso_priv,
                   ATTACK_AGR_PUB=self.ctx.agr_pub, ATTACK_AGR_URL=self.ctx.sink.url,
                   ATTACK_NOFILE=str(self.nofile))
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", CHILD_SERVICE], stdin=subprocess.PIPE,
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
        import pyuftp.crypto
        import pyuftp.envelope
        import pyuftp.examples

        self.pyuftp = pyuftp
        self.envelope = pyuftp.envelope
        self.examples = pyuftp.examples
        self.tree = tree
        self.quick = quick
        self.tmp = tmp
        self.dso_priv, self.dso_pub = pyuftp.crypto.generate_keypair()
        self.agr_priv, self.agr_pub = pyuftp.crypto.generate_keypair()
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
# #16 (helper B): the business rules under hostile values — rules-duration, rules-period,
# rules-prognosis. A DSO child with every rule on and a SQLite store sends a real FlexRequest
# to a real AGR service in this process (on a thread of its own) before the attacks, so the
# offers name a request that was really exchanged; the DSO's responses come back to it.
# =========================================================================================

CHILD_RULES_SERVICE = _CHILD_COMMON + r'''
import asyncio, datetime, json, logging
logging.basicConfig(level=logging.INFO, stream=sys.stderr)

import pyuftp
from pyuftp.discovery import Directory
from pyuftp.examples import example
from pyuftp.rules import DEFAULT_RULES
from pyuftp.service import ShapeshifterDsoService


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
        from pyuftp.service import ShapeshifterAgrService

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
    from pyuftp.messaging import build_message

    payload = dict(payload, sender_domain=AGR, recipient_domain=DSO)
    xml, sent = build_message(message_type, payload, rules=False)
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


ATTACK_FUNCTIONS: dict[str, Callable[[Ctx], Awaitable[None]]] = {
    "attributes": attack_attributes,
    "slow-headers": attack_slow_headers,
    "idle": attack_idle,
    "fd-exhaustion": attack_fd_exhaustion,
    "big-bodies": attack_big_bodies,
    "exceptions": attack_exceptions,
    "error-body": attack_error_body,
    "log-size": attack_log_size,
    "rules-duration": attack_rules_duration,
    "rules-period": attack_rules_period,
    "rules-prognosis": attack_rules_prognosis,
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
