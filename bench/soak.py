"""Soak test: many concurrent senders against one pyuftp DSO service with a SQLite store.

    cd /work/main && python3 bench/soak.py [--seconds 60] [--senders 32] [--max-messages 500000]

One ``pyuftp.service.ShapeshifterDsoService`` in a process of its own on 127.0.0.1, with its
store in a SQLite file in a temporary directory; its FlexOffer handler only counts, and it
answers every FlexOffer with a signed FlexOfferResponse to the AGR's endpoint. In this
process: ``--senders`` asyncio tasks, each a ``ShapeshifterAgrDsoClient`` (own keep-alive
session) calling ``send_flex_offer`` with a 96-ISP FlexOffer in a loop, and a small pyuftp
AGR service that receives the FlexOfferResponses. Prints progress every 10 s, then accepted
msg/s, latency, errors (target 0) and the service's memory at start and end (target: flat).
The service process is driven with bench/throughput.py's helpers (see bench/README.md).
"""
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))

import asyncio
import importlib.util
import json
import time
from typing import Any

REPORT_EVERY = 10.0  # seconds between progress lines
WARM_UP_SENDS = 10  # per sender, before the memory at start is taken
MAX_GROWTH = 0.10  # "flat": the service's RSS at the end at most 10 % above that at start


def memory(pid: int) -> dict[str, float]:
    """MiB from /proc/<pid>/status: VmRSS, VmHWM (peak), RssAnon (heap), RssFile, RssShmem."""
    with open(f"/proc/{pid}/status") as f:
        return {key: int(value.split()[0]) / 1024 for key, _, value in
                (line.partition(":") for line in f) if key.startswith(("VmRSS", "VmHWM", "Rss"))}


def _load_http_bench():
    """bench/throughput.py as a module (by file path: its name would shadow the stdlib's http)."""
    path = os.path.join(_HERE, "throughput.py")
    spec = importlib.util.spec_from_file_location("pyuftp_bench_http", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    # Its Child starts ``python <the module's __file__> --serve <kind> ...``: this script.
    module.__file__ = os.path.abspath(__file__)
    return module


hb = _load_http_bench()


# --- the service process (this file run with --serve soak) --------------------------------


def serve(config: dict[str, Any]) -> None:
    """bench/throughput.py's pyuftp DSO service process, with one change: a SQLite store."""
    import pyuftp.service

    class ServiceWithStore(pyuftp.service.ShapeshifterDsoService):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, store=config["store"], **kwargs)

    # throughput.py's serve_pyuftp imports the class from pyuftp.service when called: give it ours
    # (this process runs nothing else).
    pyuftp.service.ShapeshifterDsoService = ServiceWithStore
    hb.serve_pyuftp(config)


# --- the benchmark process --------------------------------------------------------------


class Soak:
    def __init__(self, args: Any, store: str) -> None:
        from pyuftp.crypto import generate_keypair
        from pyuftp.examples import flex_offer_96

        self.args = args
        self.store = store
        self.agr_private, self.agr_public = generate_keypair()
        self.dso_private, self.dso_public = generate_keypair()
        offer = dict(flex_offer_96(), sender_domain=hb.AGR_DOMAIN, recipient_domain=hb.DSO_DOMAIN)
        # The client fills these in afresh for every send.
        self.payload = {k: v for k, v in offer.items()
                        if k not in ("version", "message_id", "conversation_id", "time_stamp")}
        self.attempts = 0  # sends tried, warm-up included: bounded by --max-messages
        self.accepted = 0  # HTTP 200s, warm-up included
        self.responses = 0  # FlexOfferResponses that reached our AGR service
        self.latencies: list[float] = []  # seconds per accepted send, in the window
        self.errors = 0
        self.error_texts: list[str] = []

    async def run(self) -> dict[str, Any]:
        from pyuftp.client import ShapeshifterAgrDsoClient
        from pyuftp.discovery import Directory
        from pyuftp.service import DEFAULT_PATH, ShapeshifterAgrService

        directory = Directory()
        directory.add(hb.DSO_DOMAIN, "DSO", self.dso_public)
        agr = ShapeshifterAgrService(hb.AGR_DOMAIN, self.agr_private, directory.key,
                                     directory.endpoint, host=hb.HOST, port=0)

        async def on_response(response: dict[str, Any]) -> None:
            self.responses += 1

        agr.add_handler("FlexOfferResponse", on_response)
        config = {"agr_domain": hb.AGR_DOMAIN, "dso_domain": hb.DSO_DOMAIN, "store": self.store,
                  "agr_public": self.agr_public, "dso_private": self.dso_private}
        lifetime = 4 * self.args.seconds + 300  # the service process ends by itself then
        async with agr:
            config["agr_endpoint"] = agr.url
            child = await asyncio.to_thread(hb.Child, "soak", config, lifetime)
            # attempts=1: a failed POST is an error here, not retried out of sight
            clients = [ShapeshifterAgrDsoClient(
                hb.AGR_DOMAIN, self.agr_private, hb.DSO_DOMAIN,
                f"http://{hb.HOST}:{child.port}{DEFAULT_PATH}", attempts=1)
                for _ in range(self.args.senders)]
            try:
                return await self._run(child, clients)
            finally:
                for client in clients:
                    await client.close()
                child.kill()

    async def _run(self, child, clients) -> dict[str, Any]:
        pid = child.proc.pid
        out: dict[str, Any] = {"pid": pid, "idle": memory(pid)}
        await self._send(clients, time.perf_counter() + 30, WARM_UP_SENDS, record=False)
        out["warm_up"] = first = self.accepted
        await self._drain(child, 30.0)
        out["start"], out["cpu0"] = memory(pid), (await asyncio.to_thread(child.stats))["cpu"]
        print(f"warm-up: {first} messages, {self.errors} errors; then service RSS "
              f"{out['start']['VmRSS']:.1f} MiB (the start value)", flush=True)
        self.errors, self.error_texts = 0, []  # the verdict is about the window

        began, done, cpu = time.perf_counter(), asyncio.Event(), hb._cpu()
        reporter = asyncio.create_task(self._report(child, began, done))
        try:
            await self._send(clients, began + self.args.seconds, None, record=True)
        finally:
            out["window"] = time.perf_counter() - began
            out["bench_cpu"] = hb._cpu() - cpu
            done.set()
            await reporter
        out["sent"] = self.accepted - first
        out["closed"] = memory(pid)  # as the window closed
        after = await asyncio.to_thread(child.stats)
        out["backlog"] = self.accepted - min(after["handled"], self.responses)
        out["window_cpu"] = after["cpu"] - out["cpu0"]
        out["drained"], out["drain"] = await self._drain(child, max(60.0, 2 * self.args.seconds))
        out["end"], out["cpu1"] = memory(pid), (await asyncio.to_thread(child.stats))["cpu"]
        await asyncio.to_thread(child.quit)
        child.log.seek(0)
        out["stderr"] = child.log.read().splitlines()
        return out

    async def _send(self, clients, deadline: float, quota: int | None, record: bool) -> None:
        async def one(client) -> None:
            n = 0
            while (time.perf_counter() < deadline and self.attempts < self.args.max_messages
                   and (quota is None or n < quota)):
                self.attempts += 1
                n += 1
                started = time.perf_counter()
                try:
                    await client.send_flex_offer(self.payload)
                except Exception as exc:  # counted and shown, never fatal
                    self.errors += 1
                    if len(self.error_texts) < 3:
                        self.error_texts.append(f"{type(exc).__name__}: {exc}"[:300])
                    continue
                self.accepted += 1
                if record:
                    self.latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(one(c) for c in clients))

    async def _report(self, child, began: float, done: asyncio.Event) -> None:
        """A progress line every REPORT_EVERY seconds, and one when ``done`` is set."""
        last_t, last_n, tick = began, self.accepted, 1
        while True:
            try:
                next_tick = began + tick * REPORT_EVERY
                await asyncio.wait_for(done.wait(), next_tick - time.perf_counter())
            except asyncio.TimeoutError:
                pass
            now, accepted = time.perf_counter(), self.accepted
            if now - last_t > 0.5:  # not again when the window closed just after a tick
                stats, mib = await asyncio.to_thread(child.stats), memory(child.proc.pid)
                print(f"{now - began:5.1f} s  accepted {len(self.latencies):>7}  "
                      f"{(accepted - last_n) / (now - last_t):6.0f} msg/s  service RSS "
                      f"{mib['VmRSS']:6.1f} MiB (anon {mib['RssAnon']:5.1f})  unhandled "
                      f"{max(0, accepted - stats['handled']):>5}  unanswered "
                      f"{accepted - self.responses:>6}  errors {self.errors}", flush=True)
            if done.is_set():
                return
            last_t, last_n, tick = now, accepted, tick + 1

    async def _drain(self, child, limit: float) -> tuple[bool, float]:
        """Wait (at most ``limit`` s) until the service handled every accepted message and
        its response reached us: (done, seconds waited)."""
        started = time.monotonic()
        while True:
            stats = await asyncio.to_thread(child.stats)
            done = stats["handled"] >= self.accepted and self.responses >= self.accepted
            if done or time.monotonic() - started > limit:
                return done, time.monotonic() - started
            await asyncio.sleep(0.1)


def count_rows(path: str) -> dict[str, Any]:
    """What the service's SQLite file holds (read once the service process has ended)."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        received, unhandled = conn.execute(
            "SELECT COUNT(*), COUNT(*) - COUNT(handled_at) FROM received").fetchone()
        outbox = dict(conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state"))
    finally:
        conn.close()
    size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    return {"received": received, "unhandled": unhandled, "outbox": outbox, "bytes": size}


def report(soak: Soak, out: dict[str, Any], rows: dict[str, Any]) -> None:
    latencies = soak.latencies
    ms = [hb._quantile(latencies, q) * 1e3 for q in (0.5, 0.99)] + [max(latencies, default=0) * 1e3]
    start, end = out["start"]["VmRSS"], out["end"]["VmRSS"]
    growth = end - start
    missing = soak.accepted - soak.responses
    print()
    print(f"accepted: {out['sent']} messages in {out['window']:.1f} s = "
          f"{out['sent'] / out['window']:.0f} msg/s ({soak.args.senders} senders; plus "
          f"{out['warm_up']} in the warm-up)")
    print(f"latency per send_flex_offer: p50 {ms[0]:.2f} ms, p99 {ms[1]:.2f} ms, "
          f"max {ms[2]:.2f} ms")
    print(f"errors: {soak.errors}" + "".join(f"\n  {text}" for text in soak.error_texts))
    print(f"service memory (/proc/{out['pid']}/status): RSS at start {start:.1f} MiB (after the "
          f"warm-up; {out['idle']['VmRSS']:.1f} MiB when it began listening), at the end "
          f"{end:.1f} MiB (after the drain; {out['closed']['VmRSS']:.1f} MiB as the window "
          f"closed), peak (VmHWM) {out['end']['VmHWM']:.1f} MiB")
    print(f"memory growth: {growth:+.1f} MiB ({growth / start:+.1%}, "
          f"{growth * 2**20 / max(1, out['sent']):+.0f} B per message accepted); anonymous "
          f"memory (RssAnon) {out['start']['RssAnon']:.1f} -> {out['end']['RssAnon']:.1f} MiB")
    print(f"CPU in the window, share of one core: service {out['window_cpu'] / out['window']:.0%}, "
          f"this process (senders and AGR service) {out['bench_cpu'] / out['window']:.0%}; "
          f"service CPU per message over window + drain: "
          f"{(out['cpu1'] - out['cpu0']) / max(1, out['sent']) * 1e6:.0f} µs")
    print(f"backlog as the window closed: {out['backlog']} (not handled or not answered); drain: "
          f"{'done' if out['drained'] else 'NOT done'} after {out['drain']:.1f} s")
    print(f"FlexOfferResponses received: {soak.responses} of {soak.accepted} accepted "
          f"(warm-up included); still missing after the drain wait: {missing}")
    outbox = ", ".join(f"{n} {state}" for state, n in sorted(rows["outbox"].items())) or "empty"
    print(f"SQLite store: {rows['received']} rows in 'received' ({rows['unhandled']} not handled) "
          f"for {soak.accepted} messages accepted; outbox: {outbox}; "
          f"{rows['bytes'] / 2**20:.1f} MiB on disk")
    if out["stderr"]:
        print(f"service stderr: {len(out['stderr'])} lines; the first:")
        for line in out["stderr"][:5]:
            print(f"  {line[:300]}")
    print()
    print(f"errors: {soak.errors} (target 0): {'met' if soak.errors == 0 else 'NOT met'}")
    print(f"memory: start {start:.1f} MiB, end {end:.1f} MiB (target: flat, growth < "
          f"{MAX_GROWTH:.0%}): {'met' if end < start * (1 + MAX_GROWTH) else 'NOT met'}")
    recorded = rows["received"] == soak.accepted and not rows["unhandled"]
    print(f"recorded: {rows['received']} received rows for {soak.accepted} accepted, all handled: "
          f"{'met' if recorded else 'NOT met'}; responses missing: {missing}")


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:  # the service process: see bench/throughput.py's main()
        options = dict(zip(sys.argv[1::2], sys.argv[2::2]))
        hb._deadman(float(options["--lifetime"]))
        serve(json.loads(options["--config"]))
        return

    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="sending time (default 60)")
    parser.add_argument("--senders", type=int, default=32, help="concurrent senders (default 32)")
    parser.add_argument("--max-messages", type=int, default=500_000,
                        help="cap on sends in all, warm-up included (default 500000)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pyuftp-soak-") as tmp:
        store = os.path.join(tmp, "dso.sqlite")
        soak = Soak(args, store)
        print(f"pyuftp DSO service with a SQLite store, in its own process on {hb.HOST}; "
              f"{args.senders} senders for {args.seconds:g} s (or {args.max_messages} sends); "
              f"FlexOffer of {len(soak.payload['offer_options'][0]['isps'])} ISPs; "
              f"{os.cpu_count()} CPUs", flush=True)
        out = asyncio.run(soak.run())
        report(soak, out, count_rows(store))


if __name__ == "__main__":
    main()
