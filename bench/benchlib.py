"""What bench/throughput.py and bench/soak.py share: the child processes and their control.

Each service runs in a process of its own, ``python bench/benchlib.py --serve KIND --config
JSON --lifetime S``, so that its CPU time and memory are its own. A child reads commands on
stdin (``stats``, ``quit``; end of input is ``quit``) and answers on stdout with lines that
start with ``@@``. Kinds:

* ``pyuftp``: a pyuftp ``ShapeshifterDsoService``; its FlexOffer handler only counts. The
  config may name a ``store``: a SQLite path, or ``{"memory": [max_received, max_kept]}``.
  Only constructor arguments that every pyuftp version has are used (``store=`` a path works
  in today's tree and in the old one), so it runs against another tree with
  ``PYTHONPATH=<tree>`` (see :class:`Child`). ``{"loop": "uvloop"}`` runs it on uvloop
  instead of asyncio's own loop.
* ``agr``: a pyuftp ``ShapeshifterAgrService`` that counts the FlexOfferResponses it receives
  (verified and parsed, like any message): the AGR endpoint of the pyuftp DSO service.
* ``peer``: shapeshifter-uftp's ``ShapeshifterDsoService`` (uvicorn + FastAPI), whose
  ``process_*`` methods do nothing (``process_flex_offer`` counts); no access log, its logger
  at WARNING. uvicorn picks uvloop by itself when it is installed (``loop="auto"``); the
  ``ready`` line's ``loop`` names the module of its listening server's class.
* ``bare``: a bare aiohttp server that reads a POST's body and answers 200: the floor under
  any aiohttp service (on uvloop with ``{"loop": "uvloop"}``).

Everything listens on 127.0.0.1 only. A child ends by itself when its stdin closes and,
whatever happens, after ``--lifetime`` seconds.
"""
from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
from typing import Any

HOST = "127.0.0.1"
AGR_DOMAIN = "agr.example.com"
DSO_DOMAIN = "dso.example.com"
PATH = "/shapeshifter/api/v3/message"
PREFIX = "@@"  # protocol lines from a child start with this
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# =========================================================================================
# In a child process
# =========================================================================================


def _emit(kind: str, **data: Any) -> None:
    sys.stdout.write(f"{PREFIX}{kind} {json.dumps(data)}\n")
    sys.stdout.flush()


def _status() -> dict[str, int]:
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "Threads"):
                found[key] = int(value.split()[0])
    return found


def _process_stats(handled: int, **extra: Any) -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    status = _status()
    return {"handled": handled, "cpu": usage.ru_utime + usage.ru_stime,
            "hwm_kib": status.get("VmHWM"), "rss_kib": status.get("VmRSS"),
            "anon_kib": status.get("RssAnon"), "threads": status.get("Threads"), **extra}


def _stdin_lines(callback) -> None:
    """Feed stdin lines to ``callback`` from a daemon thread; '' on EOF."""
    def pump() -> None:
        for line in sys.stdin:
            callback(line.strip())
        callback("")
    threading.Thread(target=pump, daemon=True, name="control").start()


def run_loop(coro, loop: str | None = None) -> Any:
    """Run ``coro`` to its end on a new event loop: asyncio's own, or uvloop's when ``loop``
    is "uvloop" (the config key ``loop`` of a pyuftp child; the bench's uvloop senders)."""
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


def _deadman(seconds: float) -> None:
    timer = threading.Timer(seconds, lambda: os._exit(3))
    timer.daemon = True
    timer.start()


async def _serve_async(start, count, **ready: Any) -> None:
    """Run ``start()`` (an async context manager factory) and answer commands."""
    loop = asyncio.get_running_loop()
    ready.setdefault("loop", type(loop).__module__ + "." + type(loop).__name__)
    commands: asyncio.Queue[str] = asyncio.Queue()
    _stdin_lines(lambda line: loop.call_soon_threadsafe(commands.put_nowait, line))
    async with start() as port:
        _emit("ready", port=port, **ready, **_process_stats(count()))
        while True:
            command = await commands.get()
            if command == "stats":
                _emit("stats", **_process_stats(count()))
            elif command in ("quit", ""):
                break
    _emit("bye", **_process_stats(count()))


class _Running:
    """``async with`` a pyuftp service: yields its port."""

    def __init__(self, service) -> None:
        self.service = service

    async def __aenter__(self) -> int:
        await self.service.start()
        return self.service.port

    async def __aexit__(self, *exc: Any) -> None:
        await self.service.stop()


def serve_pyuftp(config: dict[str, Any]) -> None:
    # What the libraries pyuftp is built on take before any of pyuftp is imported.
    import aiohttp.web  # noqa: F401
    import jinja2  # noqa: F401
    import lxml.etree  # noqa: F401
    import nacl.bindings  # noqa: F401
    libraries_kib = _status()["VmRSS"]

    import pyuftp
    from pyuftp.discovery import Directory
    from pyuftp.server.service import ShapeshifterDsoService

    directory = Directory()
    directory.add(AGR_DOMAIN, "AGR", config["agr_public"], config["agr_endpoint"])
    options: dict[str, Any] = {}
    store = config.get("store")
    if isinstance(store, dict):  # {"memory": cap}: every count bound of the MemoryStore at cap
        import inspect

        from pyuftp.store import MemoryStore
        bounds = [name for name in inspect.signature(MemoryStore).parameters
                  if name.startswith("max_")]
        store = MemoryStore(**{name: store["memory"] for name in bounds})
    if store is not None:
        options["store"] = store
    if config.get("metrics"):  # (#21) GET /metrics on, to measure what counting costs
        options["metrics"] = True
    service = ShapeshifterDsoService(DSO_DOMAIN, config["dso_private"], directory.key,
                                     directory.endpoint, host=HOST, port=0, **options)
    handled = 0

    async def on_flex_offer(offer: dict[str, Any]) -> None:  # does nothing but count
        nonlocal handled
        handled += 1

    service.add_handler("FlexOffer", on_flex_offer)
    run_loop(_serve_async(lambda: _Running(service), lambda: handled,
                          libraries_kib=libraries_kib, pyuftp=pyuftp.__file__,
                          store=repr(getattr(service, "store", store))), config.get("loop"))


def serve_agr(config: dict[str, Any]) -> None:
    import pyuftp
    from pyuftp.discovery import Directory
    from pyuftp.server.service import ShapeshifterAgrService

    directory = Directory()
    directory.add(DSO_DOMAIN, "DSO", config["dso_public"])
    service = ShapeshifterAgrService(AGR_DOMAIN, config["agr_private"], directory.key,
                                     directory.endpoint, host=HOST, port=0)
    received = 0

    async def on_response(response: dict[str, Any]) -> None:
        nonlocal received
        received += 1

    service.add_handler("FlexOfferResponse", on_response)
    # A response counts as delivered when the AGR service answers its POST with 200 (it is
    # then verified, valid and recorded), whether or not the AGR's rules then reject it.
    from aiohttp import web
    delivered = 0

    @web.middleware
    async def count(request, handler):
        nonlocal delivered
        response = await handler(request)
        if response.status == 200:
            delivered += 1
        return response

    service.app.middlewares.append(count)
    asyncio.run(_serve_async(lambda: _Running(service), lambda: delivered,
                             pyuftp=pyuftp.__file__))


def serve_bare(config: dict[str, Any]) -> None:
    from aiohttp import web

    count = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal count
        await request.read()
        count += 1
        return web.Response(text="OK")

    class Bare:
        async def __aenter__(self) -> int:
            app = web.Application(client_max_size=8 * 1024 * 1024)
            app.router.add_post(PATH, receive)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, HOST, 0)
            await site.start()
            return site._server.sockets[0].getsockname()[1]

        async def __aexit__(self, *exc: Any) -> None:
            await self.runner.cleanup()

    run_loop(_serve_async(Bare, lambda: count), config.get("loop"))


def serve_peer(config: dict[str, Any]) -> None:
    import logging

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
    keys = {(AGR_DOMAIN, "AGR"): config["agr_public"]}
    service = Service(DSO_DOMAIN, config["dso_private"],
                      key_lookup_function=lambda domain, role: keys.get((domain, str(role))),
                      endpoint_lookup_function=lambda domain, role: None,
                      host=HOST, port=port)
    # pyuftp's service keeps no access log; uvicorn's default would write a line per request.
    service.server = uvicorn.Server(uvicorn.Config(app=service.app, host=HOST, port=port,
                                                   access_log=False, log_level="warning"))
    service.run_in_thread()
    # uvicorn's loop="auto" (its default) picks uvloop when it is installed: say which it took
    servers = getattr(service.server, "servers", None) or [None]
    _emit("ready", port=port, loop=type(servers[0]).__module__, **_process_stats(0))
    cond = threading.Condition()
    commands: list[str] = []

    def on_line(line: str) -> None:
        with cond:
            commands.append(line)
            cond.notify()

    _stdin_lines(on_line)
    while True:
        with cond:
            while not commands:
                cond.wait()
            command = commands.pop(0)
        if command == "stats":
            with lock:
                count = handled
            _emit("stats", **_process_stats(count))
        elif command in ("quit", ""):
            break
    service.stop()
    service.inbound_executor.shutdown(wait=True)
    service.outbound_executor.shutdown(wait=True)
    _emit("bye", **_process_stats(handled))


SERVERS = {"pyuftp": serve_pyuftp, "agr": serve_agr, "peer": serve_peer, "bare": serve_bare}


# =========================================================================================
# In the benchmark process
# =========================================================================================


class Child:
    """A child process (see the module docstring), driven over stdin/stdout; its stderr goes
    to a temporary file. ``tree``: put that source tree first on the child's path."""

    def __init__(self, kind: str, config: dict[str, Any], lifetime: float,
                 tree: str | None = None) -> None:
        self.kind = kind
        self.log = tempfile.TemporaryFile(mode="w+")
        env = dict(os.environ)
        if tree:
            env["PYTHONPATH"] = tree + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "benchlib.py"), "--serve", kind,
             "--config", json.dumps(config), "--lifetime", str(lifetime)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            bufsize=1, cwd=tempfile.gettempdir(), env=env,
        )
        self.pid = self.proc.pid
        self.lock = threading.Lock()
        self.ready = self._read("ready", timeout=60)
        self.port = self.ready["port"]
        self.url = f"http://{HOST}:{self.port}{PATH}"

    def _read(self, kind: str, timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = {}

        def reader() -> None:
            for line in self.proc.stdout:
                if line.startswith(PREFIX + kind + " "):
                    result.update(json.loads(line[len(PREFIX) + len(kind) + 1:]))
                    return

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        thread.join(timeout)
        if not result:
            tail = self.stderr()[-3000:]
            self.kill()
            raise RuntimeError(f"the {self.kind} child did not say {kind!r}; its stderr:\n{tail}")
        return result

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()

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
                final = self._read("bye", timeout=60)
                self.proc.wait(timeout=30)
                return final
            finally:
                self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # only ever this benchmark's own child, by its Popen handle
            self.proc.wait(timeout=10)


def dated_for_now(offer: dict[str, Any]) -> dict[str, Any]:
    """The FlexOffer with its period moved to tomorrow and its expiry to a day from now: the
    clients fill in a fresh TimeStamp, and pyuftp's business rules (where the tree has them)
    refuse a period in the past or an expired offer."""
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    offer = dict(offer, period=(now + dt.timedelta(days=1)).date(),
                 expiration_date_time=now + dt.timedelta(hours=20))
    # No references to a FlexRequest or D-Prognosis that the DSO service never saw: its
    # stateful rules (where the tree has them) would reject every offer.
    # So it is an unsolicited offer.
    for key in ("flex_request_message_id", "d_prognosis_message_id"):
        offer.pop(key, None)
    offer["unsolicited"] = True
    return offer


def cpu() -> float:
    """CPU seconds (user + system) of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def memory(pid: int) -> dict[str, float]:
    """MiB from /proc/<pid>/status: VmRSS, VmHWM (peak), RssAnon, RssFile, RssShmem."""
    with open(f"/proc/{pid}/status") as f:
        return {key: int(value.split()[0]) / 1024 for key, _, value in
                (line.partition(":") for line in f) if key.startswith(("VmRSS", "VmHWM", "Rss"))}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(values: list[float], fmt: str = ".0f") -> str:
    """'median [min-max] n=N' of ``values``."""
    import statistics

    values = [v for v in values if v == v]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:{fmt}} (n=1)"
    return (f"{statistics.median(values):{fmt}} [{min(values):{fmt}}–{max(values):{fmt}}] "
            f"n={len(values)}")


async def close_client(client: Any) -> None:
    """Close a pyuftp client and its HTTP session (a client closes the Poster it made only
    through its courier, which leaves a Poster it was given open: close that too)."""
    await client.close()
    poster = getattr(getattr(client, "courier", None), "poster", None)
    if poster is not None:
        await poster.close()


def main() -> None:
    options = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    _deadman(float(options.get("--lifetime", 600)))
    SERVERS[options["--serve"]](json.loads(options["--config"]))


if __name__ == "__main__":
    main()
