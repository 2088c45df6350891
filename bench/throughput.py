"""HTTP benchmark: how many signed 96-ISP FlexOffers per second one DSO service accepts.

    cd /work/main && PYTHONPATH=/work/main python3 bench/throughput.py [--seconds 5] [--senders 16]

One pyuftp DSO service, then one shapeshifter-uftp DSO service, each in a process of its own
on 127.0.0.1; the senders run in this process:

* "send": each sender is the library's own AGR->DSO client calling ``send_flex_offer``
  (fill in metadata, render, validate, sign, POST, wait for HTTP 200). pyuftp: one asyncio
  task and one keep-alive aiohttp session per sender. shapeshifter-uftp: one thread and one
  client per sender (its client opens a new connection per message: ``requests.post``).
* "pre-signed": the same service, fed FlexOffers signed beforehand (each with its own
  MessageID, each POSTed once) over keep-alive connections by the same aiohttp poster for
  both services (pyuftp's ``client.post``), so that the service rather than the senders is
  the limit.

pyuftp's DSO service answers every FlexOffer with a signed FlexOfferResponse POSTed to the
AGR's endpoint: that is a small pyuftp AGR service in this process (same event loop as the
senders), and its cost is part of what is measured. The peer's service sends nothing back
(its ``process_flex_offer`` is ours and only counts). See bench/README.md.
"""
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))

import asyncio
import importlib.util
import json
import logging
import resource
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# argparse and statistics are imported where the benchmark process needs them, not here: a
# service process imports this module too, and its memory should be the service's own.

HOST = "127.0.0.1"
AGR_DOMAIN = "agr.example.com"
DSO_DOMAIN = "dso.example.com"
TARGET_RATIO = 8.0
TARGET_MEDIAN_MS = 1.0
TARGET_RSS_MIB = 50.0
MAX_ERRORS = 20  # per scenario: stop sending after this many failed sends
PREFIX = "@@"  # protocol lines from a service process start with this


# =========================================================================================
# The service processes (this file run with --serve pyuftp|peer)
# =========================================================================================


def _emit(kind: str, **data: Any) -> None:
    sys.stdout.write(f"{PREFIX}{kind} {json.dumps(data)}\n")
    sys.stdout.flush()


def _process_stats(handled: int, **extra: Any) -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "Threads"):
                status[key] = int(value.split()[0])
    return {"handled": handled, "cpu": usage.ru_utime + usage.ru_stime,
            "maxrss_kib": usage.ru_maxrss, "hwm_kib": status.get("VmHWM"),
            "rss_kib": status.get("VmRSS"), "threads": status.get("Threads"), **extra}


def _stdin_lines(callback) -> None:
    """Feed stdin lines to ``callback`` from a daemon thread; '' on EOF."""
    def pump() -> None:
        for line in sys.stdin:
            callback(line.strip())
        callback("")
    threading.Thread(target=pump, daemon=True, name="control").start()


def _deadman(seconds: float) -> None:
    """Whatever happens, this process ends after ``seconds``."""
    timer = threading.Timer(seconds, lambda: os._exit(3))
    timer.daemon = True
    timer.start()


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def serve_pyuftp(config: dict[str, Any]) -> None:
    # What the libraries that pyuftp is built on take before any of pyuftp is imported (the
    # floor under the service's memory), then pyuftp itself.
    import aiohttp.web  # noqa: F401
    import jinja2  # noqa: F401
    import lxml.etree  # noqa: F401
    import nacl.bindings  # noqa: F401
    libraries_kib = _rss_kib()

    from pyuftp.discovery import Directory
    from pyuftp.service import ShapeshifterDsoService

    directory = Directory()
    directory.add(config["agr_domain"], "AGR", config["agr_public"], config["agr_endpoint"])
    service = ShapeshifterDsoService(config["dso_domain"], config["dso_private"], directory.key,
                                     directory.endpoint, host=HOST, port=0)
    handled = 0

    async def on_flex_offer(offer: dict[str, Any]) -> None:  # does nothing but count
        nonlocal handled
        handled += 1

    service.add_handler("FlexOffer", on_flex_offer)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[str] = asyncio.Queue()
        _stdin_lines(lambda line: loop.call_soon_threadsafe(commands.put_nowait, line))
        async with service:
            _emit("ready", port=service.port, libraries_kib=libraries_kib,
                  **_process_stats(handled))
            while True:
                command = await commands.get()
                if command == "stats":
                    _emit("stats", **_process_stats(handled, pending=len(getattr(service, "_tasks", ()))))
                elif command in ("quit", ""):
                    break

    asyncio.run(main())
    _emit("bye", **_process_stats(handled))


def serve_peer(config: dict[str, Any]) -> None:
    import uvicorn
    from shapeshifter_uftp.service import ShapeshifterDsoService

    logging.getLogger("shapeshifter-uftp").setLevel(logging.WARNING)
    lock = threading.Lock()
    handled = 0

    def process_flex_offer(self, message) -> None:  # does nothing but count
        nonlocal handled
        with lock:
            handled += 1

    def nothing(self, *args) -> None:
        pass

    methods = {name: nothing for name in ShapeshifterDsoService.__abstractmethods__}
    methods["process_flex_offer"] = process_flex_offer
    Service = type("BenchDsoService", (ShapeshifterDsoService,), methods)

    with socket.socket() as probe:  # the peer takes a fixed port: find a free one
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    keys = {(config["agr_domain"], "AGR"): config["agr_public"]}
    service = Service(config["dso_domain"], config["dso_private"],
                      key_lookup_function=lambda domain, role: keys.get((domain, str(role))),
                      endpoint_lookup_function=lambda domain, role: None,
                      host=HOST, port=port)
    # Same terms as pyuftp's service, which keeps no access log: uvicorn's default would
    # write a line per request.
    service.server = uvicorn.Server(uvicorn.Config(app=service.app, host=HOST, port=port,
                                                   access_log=False, log_level="warning"))
    service.run_in_thread()
    _emit("ready", port=port, **_process_stats(handled))
    done = threading.Event()
    commands: list[str] = []
    cond = threading.Condition()

    def on_line(line: str) -> None:
        with cond:
            commands.append(line)
            cond.notify()

    _stdin_lines(on_line)
    while not done.is_set():
        with cond:
            while not commands:
                cond.wait()
            command = commands.pop(0)
        if command == "stats":
            with lock:
                count = handled
            _emit("stats", **_process_stats(count))
        elif command in ("quit", ""):
            done.set()
    service.stop()
    service.inbound_executor.shutdown(wait=True)
    service.outbound_executor.shutdown(wait=True)
    _emit("bye", **_process_stats(handled))


# =========================================================================================
# The benchmark process
# =========================================================================================


class Child:
    """A service process, driven over stdin/stdout; its stderr goes to a temporary file."""

    def __init__(self, kind: str, config: dict[str, Any], lifetime: float) -> None:
        self.kind = kind
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", kind,
             "--config", json.dumps(config), "--lifetime", str(lifetime)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            bufsize=1, cwd=os.path.dirname(_HERE),
        )
        self.lock = threading.Lock()
        self.ready = self._read("ready", timeout=60)
        self.port = self.ready["port"]

    def _read(self, kind: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        result: dict[str, Any] = {}

        def reader() -> None:
            for line in self.proc.stdout:
                if line.startswith(PREFIX + kind + " "):
                    result.update(json.loads(line[len(PREFIX) + len(kind) + 1:]))
                    return

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        thread.join(max(0.0, deadline - time.monotonic()))
        if not result:
            self.log.seek(0)
            tail = self.log.read()[-3000:]
            self.kill()
            raise RuntimeError(f"the {self.kind} service did not say {kind!r}; its stderr:\n{tail}")
        return result

    def stats(self) -> dict[str, Any]:
        with self.lock:
            self.proc.stdin.write("stats\n")
            self.proc.stdin.flush()
            return self._read("stats", timeout=30)

    def quit(self) -> dict[str, Any]:
        with self.lock:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                final = self._read("bye", timeout=30)
                self.proc.wait(timeout=30)
                return final
            finally:
                self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # only ever this benchmark's own child, by its Popen handle
            self.proc.wait(timeout=10)


@dataclass
class Result:
    label: str
    service: str
    senders: int
    sent: int = 0
    errors: int = 0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    service_cpu: float = 0.0  # CPU seconds of the service process, until drained
    bench_cpu: float = 0.0  # CPU seconds of this process during the sending window
    drained: bool = True
    exhausted: bool = False  # the pre-signed pool ran out before the time did
    backlog: int = 0  # accepted (HTTP 200) but not yet handled/answered when the window closed
    drain: float = 0.0  # seconds from the end of the window until all was handled/answered
    prior: int = 0  # messages the service had accepted before this scenario
    first_error: str = ""

    @property
    def rate(self) -> float:
        """Messages accepted (HTTP 200) per second of the window."""
        return self.sent / self.wall if self.wall else 0.0

    @property
    def done_rate(self) -> float:
        """Messages per second until all were handled (pyuftp: and answered)."""
        return self.sent / (self.wall + self.drain) if self.wall else 0.0


def _load_messages_bench():
    spec = importlib.util.spec_from_file_location("pyuftp_bench_messages",
                                                  os.path.join(_HERE, "messages.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, args: Any) -> None:
        import pyuftp
        from pyuftp.crypto import generate_keypair

        self.args = args
        self.seconds = args.seconds
        self.max_messages = args.max_messages
        self.agr_private, self.agr_public = generate_keypair()
        self.dso_private, self.dso_public = generate_keypair()
        messages = _load_messages_bench()
        offer, _, self.source = messages.payloads()
        offer = dict(offer, sender_domain=AGR_DOMAIN, recipient_domain=DSO_DOMAIN)
        # Each send gets a new MessageID, ConversationID and TimeStamp from the client.
        self.payload = {k: v for k, v in offer.items()
                        if k not in ("message_id", "conversation_id", "time_stamp")}
        self.full = pyuftp.parse_message(pyuftp.create_message("FlexOffer", self.payload))[1]
        self.peer_flex_offer = messages.peer_flex_offer
        self.results: list[Result] = []
        self.accepted = 0  # HTTP 200s from the current service so far
        self.responses = 0  # FlexOfferResponses received by pyuftp's AGR service
        self.cursor = 0  # the next unused pre-signed body
        self.memory: dict[str, dict[str, Any]] = {}
        self.lifetime = 20 * self.seconds + 240  # a service process ends by itself after this

    def config(self, agr_endpoint: str | None) -> dict[str, Any]:
        return {"agr_domain": AGR_DOMAIN, "dso_domain": DSO_DOMAIN, "agr_public": self.agr_public,
                "dso_private": self.dso_private, "agr_endpoint": agr_endpoint}

    # --- pyuftp ----------------------------------------------------------------------------

    async def run_pyuftp(self, bodies: list[bytes]) -> None:
        from pyuftp.client import ShapeshifterAgrDsoClient
        from pyuftp.discovery import Directory
        from pyuftp.service import ShapeshifterAgrService

        directory = Directory()
        directory.add(DSO_DOMAIN, "DSO", self.dso_public)
        agr = ShapeshifterAgrService(AGR_DOMAIN, self.agr_private, directory.key,
                                     directory.endpoint, host=HOST, port=0)
        self.responses = 0

        async def on_response(response: dict[str, Any]) -> None:
            self.responses += 1

        agr.add_handler("FlexOfferResponse", on_response)
        async with agr:
            child = await asyncio.to_thread(Child, "pyuftp", self.config(agr.url), self.lifetime)
            try:
                url = f"http://{HOST}:{child.port}/shapeshifter/api/v3/message"
                self.memory["pyuftp"] = {"idle_kib": child.ready["rss_kib"],
                                         "libraries_kib": child.ready.get("libraries_kib")}

                def client() -> ShapeshifterAgrDsoClient:
                    return ShapeshifterAgrDsoClient(AGR_DOMAIN, self.agr_private, DSO_DOMAIN, url)

                self.accepted = 0
                self.cursor = 0  # next unused pre-signed body
                await self._warm_up_pyuftp(client, child)
                for senders in (1, self.args.senders):
                    await self._pyuftp_scenario("send", senders, client, child, None)
                for senders in (1, self.args.senders):
                    await self._pyuftp_scenario("pre-signed", senders, client, child, bodies)
                final = await asyncio.to_thread(child.quit)
                self.memory["pyuftp"].update(final)
            finally:
                child.kill()

    async def _warm_up_pyuftp(self, client, child: Child) -> None:
        c = client()
        try:
            for _ in range(30):
                await c.send_flex_offer(self.payload)
                self.accepted += 1
        finally:
            await c.close()
        await self._drain(child, True)

    async def _pyuftp_scenario(self, label: str, senders: int, client, child: Child,
                               bodies: list[bytes] | None) -> None:
        """``senders`` pyuftp clients at once: ``send_flex_offer`` each (bodies None), or POST
        the next unused pre-signed body each."""
        await self._async_scenario(Result(label, "pyuftp", senders), client, child, bodies,
                                   responses=True)

    async def _async_scenario(self, result: Result, client, child: Child,
                              bodies: list[bytes] | None, responses: bool) -> None:
        quota = max(1, self.max_messages // result.senders)
        clients = [client() for _ in range(result.senders)]
        result.prior = self.accepted
        before = await asyncio.to_thread(child.stats)

        async def one(c) -> None:
            n = 0
            while n < quota and time.perf_counter() < deadline and result.errors < MAX_ERRORS:
                if bodies is not None and self.cursor >= len(bodies):
                    result.exhausted = True
                    break
                started = time.perf_counter()
                try:
                    if bodies is None:
                        await c.send_flex_offer(self.payload)
                    else:
                        self.cursor += 1  # every body is POSTed once: the ids stay unique
                        await c.post(bodies[self.cursor - 1])
                except Exception as exc:  # counted and shown, never fatal
                    result.errors += 1
                    result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
                    continue
                result.latencies.append(time.perf_counter() - started)
                n += 1
            result.sent += n

        try:
            cpu0, start = _cpu(), time.perf_counter()
            deadline = start + self.seconds
            await asyncio.gather(*(one(c) for c in clients))
            result.wall = time.perf_counter() - start
            result.bench_cpu = _cpu() - cpu0
        finally:
            for c in clients:
                await c.close()
        self.accepted += result.sent
        result.drained, first, after, result.drain = await self._drain(child, responses)
        result.backlog = self.accepted - first["handled"]
        if responses:
            result.backlog = max(result.backlog, self.accepted - first["responses"])
        result.service_cpu = after["cpu"] - before["cpu"]
        self._record(result)

    async def _drain(self, child: Child, responses: bool) -> tuple[bool, dict, dict, float]:
        """Wait (bounded) until the service handled, and answered, all accepted messages:
        (done, the service's stats right away, its stats at the end, seconds waited)."""
        started = time.monotonic()
        deadline = started + max(15.0, 3 * self.seconds)
        first = None
        while True:
            answered = self.responses
            stats = await asyncio.to_thread(child.stats)
            if first is None:
                first = dict(stats, responses=answered)
            done = stats["handled"] >= self.accepted and (
                not responses or self.responses >= self.accepted)
            if done or time.monotonic() > deadline:
                return done, first, stats, time.monotonic() - started
            await asyncio.sleep(0.02)

    # --- shapeshifter-uftp -------------------------------------------------------------------

    def run_peer(self, bodies: list[bytes]) -> None:
        child = Child("peer", self.config(None), self.lifetime)
        try:
            url = f"http://{HOST}:{child.port}/shapeshifter/api/v3/message"
            self.memory["peer"] = {"idle_kib": child.ready["rss_kib"]}
            self.accepted = 0
            self._peer_threads("warm-up", 1, url, child, quota=10, record=False)
            for senders in (1, self.args.senders):
                self._peer_threads("send", senders, url, child)
            asyncio.run(self._peer_presigned(url, child, bodies))
            self.memory["peer"].update(child.quit())
        finally:
            child.kill()

    def _peer_threads(self, label: str, senders: int, url: str, child: Child,
                      quota: int | None = None, record: bool = True) -> None:
        from shapeshifter_uftp.client import ShapeshifterAgrDsoClient as PeerClient

        logging.getLogger("shapeshifter-uftp").setLevel(logging.WARNING)
        result = Result(label, "shapeshifter-uftp", senders)
        quota = quota or max(1, self.max_messages // senders)
        go = threading.Event()
        counts = [0] * senders
        lock = threading.Lock()
        deadline = [0.0]

        def one(index: int) -> None:
            client = PeerClient(sender_domain=AGR_DOMAIN, signing_key=self.agr_private,
                                recipient_domain=DSO_DOMAIN, recipient_endpoint=url,
                                recipient_signing_key=self.dso_public)
            offer = self.peer_flex_offer(self.full)
            latencies = []
            go.wait(30)
            n = 0
            while n < quota and time.perf_counter() < deadline[0] and result.errors < MAX_ERRORS:
                # Fresh MessageID, ConversationID and TimeStamp, filled in by the client.
                offer.message_id = offer.conversation_id = offer.time_stamp = None
                started = time.perf_counter()
                try:
                    client.send_flex_offer(offer)
                except Exception as exc:  # counted and shown, never fatal
                    with lock:
                        result.errors += 1
                        result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
                    continue
                latencies.append(time.perf_counter() - started)
                n += 1
            with lock:
                counts[index] = n
                result.latencies.extend(latencies)

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(senders)]
        for thread in threads:
            thread.start()
        result.prior = self.accepted
        before = child.stats()
        time.sleep(0.2)  # let every thread build its client and message
        cpu0, start = _cpu(), time.perf_counter()
        deadline[0] = start + self.seconds
        go.set()
        for thread in threads:
            thread.join(self.seconds + 60)
        result.wall = time.perf_counter() - start
        result.bench_cpu = _cpu() - cpu0
        result.sent = sum(counts)
        self.accepted += result.sent
        drain_start = time.monotonic()
        drain_until = drain_start + max(15.0, 3 * self.seconds)
        first = None
        while True:
            after = child.stats()
            first = first or after
            if after["handled"] >= self.accepted or time.monotonic() > drain_until:
                break
            time.sleep(0.02)
        result.drain = time.monotonic() - drain_start
        result.backlog = self.accepted - first["handled"]
        result.drained = after["handled"] >= self.accepted
        result.service_cpu = after["cpu"] - before["cpu"]
        if record:
            self._record(result)

    async def _peer_presigned(self, url: str, child: Child, bodies: list[bytes]) -> None:
        from pyuftp.client import ShapeshifterAgrDsoClient

        def client() -> ShapeshifterAgrDsoClient:
            return ShapeshifterAgrDsoClient(AGR_DOMAIN, self.agr_private, DSO_DOMAIN, url)

        self.cursor = 0  # a new service process: the pool can be used again
        for senders in (1, self.args.senders):
            await self._async_scenario(Result("pre-signed", "shapeshifter-uftp", senders),
                                       client, child, bodies, responses=False)

    # --- reporting ---------------------------------------------------------------------------

    def _record(self, r: Result) -> None:
        import statistics

        self.results.append(r)
        median = statistics.median(r.latencies) * 1e3 if r.latencies else float("nan")
        p99 = _quantile(r.latencies, 0.99) * 1e3
        per_msg = r.service_cpu / r.sent * 1e6 if r.sent else float("nan")
        flags = []
        if r.errors:
            flags.append(f"{r.errors} errors, first: {r.first_error[:120]}")
        if not r.drained:
            flags.append("service had NOT caught up when the drain wait ran out")
        if r.exhausted:
            flags.append("pre-signed pool used up before the time (use --pool)")
        print(f"{r.service:<18} {r.label:<11} {r.senders:>3} {r.prior:>6} {r.sent:>6} "
              f"{r.rate:>6.0f} {r.done_rate:>6.0f} {median:>7.2f} {p99:>7.2f} {r.backlog:>7} "
              f"{r.drain:>6.2f} "
              f"{per_msg:>7.0f} {r.service_cpu / (r.wall + r.drain):>5.0%} "
              f"{r.bench_cpu / r.wall:>6.0%}"
              + ("   " + "; ".join(flags) if flags else ""), flush=True)

    def find(self, service: str, label: str, senders: int) -> Result:
        return next(r for r in self.results
                    if r.service == service and r.label == label and r.senders == senders)


def presign(bench: Bench, count: int) -> list[bytes]:
    """``count`` FlexOffers with distinct MessageIDs, each signed, for the pre-signed runs
    (services may refuse a MessageID they have seen). One FlexOffer is rendered and
    validated by pyuftp's AGR client; the copies differ in their MessageID only and are
    sealed and wrapped with pyuftp.envelope.wrap."""
    import uuid

    import pyuftp
    from pyuftp.client import ShapeshifterAgrDsoClient
    from pyuftp.envelope import wrap

    client = ShapeshifterAgrDsoClient(AGR_DOMAIN, bench.agr_private, DSO_DOMAIN, "http://unused/")
    first, sent = client.prepare("FlexOffer", bench.payload)
    xml = pyuftp.create_message("FlexOffer", sent)
    marker = f'MessageID="{sent["message_id"]}"'
    assert xml.count(marker) == 1
    return [first] + [wrap(xml.replace(marker, f'MessageID="{uuid.uuid4()}"'),
                           client.signing_key, AGR_DOMAIN, "AGR") for _ in range(count - 1)]


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:  # a service process: no argparse, see the imports
        options = dict(zip(sys.argv[1::2], sys.argv[2::2]))
        _deadman(float(options.get("--lifetime", 600)))
        config = json.loads(options["--config"])
        (serve_pyuftp if options["--serve"] == "pyuftp" else serve_peer)(config)
        return

    import argparse
    import statistics

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="sending time per scenario (default 5; 8 scenarios)")
    parser.add_argument("--senders", type=int, default=16, help="concurrent senders (default 16)")
    parser.add_argument("--max-messages", type=int, default=200_000,
                        help="cap on messages per scenario, whichever of time and count comes first")
    parser.add_argument("--pool", type=int, default=0,
                        help="pre-signed messages per service (default 3000 per second of "
                             "--seconds); both pre-signed runs of a service draw from it")
    args = parser.parse_args()

    began = time.perf_counter()
    try:
        import shapeshifter_uftp  # noqa: F401
    except ImportError as exc:
        sys.exit(f"the peer is not installed ({exc}); run: pip install '.[peer]'")
    logging.getLogger("shapeshifter-uftp").setLevel(logging.WARNING)
    bench = Bench(args)
    bodies = presign(bench, args.pool or int(3000 * args.seconds))
    print(f"one DSO service per library, each in its own process on {HOST}; senders in this "
          f"process; {args.seconds:g} s (or {args.max_messages} messages) per scenario; "
          f"{os.cpu_count()} CPUs")
    print(f"FlexOffer: 1 option x {len(bench.payload['offer_options'][0]['isps'])} ISPs "
          f"({bench.source}); pre-signed: {len(bodies)} distinct messages "
          f"of {len(bodies[0])} B per service, each POSTed once")
    print()
    print(f"{'service':<18} {'scenario':<11} {'snd':>3} {'prior':>6} {'msgs':>6} {'msg/s':>6} "
          f"{'done/s':>6} {'med ms':>7} {'p99 ms':>7} {'backlog':>7} {'drain':>6} {'svc µs':>7} {'svc%':>5} "
          f"{'bench%':>6}")
    print("-" * 113)
    asyncio.run(bench.run_pyuftp(bodies))
    bench.run_peer(bodies)
    print()
    print("prior: messages the service had accepted before the scenario; msgs, msg/s: HTTP 200s "
          "received in the window; done/s: msgs / (window + drain); med/p99 ms: per send "
          "(pre-signed: per POST) as the sender sees it;")
    print("backlog: accepted but not yet handled (pyuftp: or its response not yet at the AGR) "
          "when the window closed; drain: seconds until it was; svc µs: service process CPU "
          "per message, window + drain;")
    print("svc%: service process CPU over window + drain, as a share of one core; bench%: CPU "
          "of this process (senders, and pyuftp's AGR service) in the window, share of one core")
    print()

    n = args.senders
    for label in ("send", "pre-signed"):
        for senders in (1, n):
            ours = bench.find("pyuftp", label, senders)
            peer = bench.find("shapeshifter-uftp", label, senders)
            ratio = ours.rate / peer.rate if peer.rate else float("inf")
            done = ours.done_rate / peer.done_rate if peer.done_rate else float("inf")
            line = (f"{label}, {senders:>2} sender(s): pyuftp {ours.rate:.0f} msg/s, "
                    f"shapeshifter-uftp {peer.rate:.0f} msg/s, ratio {ratio:.1f}×")
            if label == "send" and senders == n:
                line += f" (target ≥ {TARGET_RATIO:.0f}×: {'met' if ratio >= TARGET_RATIO else 'NOT met'})"
            line += f"; until all handled: {ours.done_rate:.0f} vs {peer.done_rate:.0f}/s, {done:.1f}×"
            print(line)
            if label == "send" and senders == n and ours.sent:
                # The service is one process on one core: the target rate sets its CPU budget.
                needed = TARGET_RATIO * peer.rate
                service_us = ours.service_cpu / ours.sent * 1e6
                senders_us = ours.bench_cpu / ours.sent * 1e6
                cpus = os.cpu_count() or 1
                print(f"  the target needs {needed:.0f} msg/s: at most {1e6 / needed:.0f} µs of "
                      f"service CPU per message, which takes {service_us:.0f} µs; with the "
                      f"senders' process ({senders_us:.0f} µs per message) {cpus} CPUs allow at "
                      f"most {cpus * 1e6 / (service_us + senders_us):.0f} msg/s")
    one = bench.find("pyuftp", "send", 1)
    peer_one = bench.find("shapeshifter-uftp", "send", 1)
    median = statistics.median(one.latencies) * 1e3
    print(f"one sender, per send_flex_offer: pyuftp median {median:.2f} ms, p99 "
          f"{_quantile(one.latencies, 0.99) * 1e3:.2f} ms (target median < {TARGET_MEDIAN_MS:g} ms: "
          f"{'met' if median < TARGET_MEDIAN_MS else 'NOT met'}); shapeshifter-uftp median "
          f"{statistics.median(peer_one.latencies) * 1e3:.2f} ms, p99 "
          f"{_quantile(peer_one.latencies, 0.99) * 1e3:.2f} ms")
    for name, target in (("pyuftp", TARGET_RSS_MIB), ("peer", None)):
        m = bench.memory[name]
        peak = (m.get("hwm_kib") or m.get("maxrss_kib")) / 1024
        line = (f"{'pyuftp' if name == 'pyuftp' else 'shapeshifter-uftp'} service process: "
                f"peak RSS {peak:.1f} MiB (idle after start {m['idle_kib'] / 1024:.1f} MiB), "
                f"{m.get('threads')} threads at the end")
        if target:
            line += f" (target < {target:g} MiB: {'met' if peak < target else 'NOT met'})"
        print(line)
        if m.get("libraries_kib"):
            print(f"  of which the libraries pyuftp is built on (Python, asyncio, aiohttp, lxml, "
                  f"PyNaCl, Jinja2), imported before pyuftp: {m['libraries_kib'] / 1024:.1f} MiB")
    print(f"(whole run {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
