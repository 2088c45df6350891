"""Soak test: many concurrent senders against one pyuftp DSO service with a SQLite store.

    python bench/soak.py [--seconds 60] [--senders 32] [--tree PATH]
    python bench/soak.py --compare /work/before [--pairs 1]
    python bench/soak.py --store postgresql://user@127.0.0.1:port/db [--processes 1,2,4]

One ``pyuftp.server.service.ShapeshifterDsoService`` in a process of its own on 127.0.0.1 (see
bench/benchlib.py), its store a SQLite file in a temporary directory; its FlexOffer handler
only counts and it answers every FlexOffer with a signed FlexOfferResponse to the AGR's
endpoint, a pyuftp AGR service in another process. ``--tree PATH`` runs the service with
that source tree's pyuftp (``PYTHONPATH=PATH``); the senders and the AGR service always run
this repository's pyuftp, so that the load is the same whatever tree is measured. In this
process: ``--senders`` asyncio tasks, each a ``ShapeshifterAgrDsoClient`` (own keep-alive
session, ``attempts=1``) calling ``send_flex_offer`` with a 96-ISP FlexOffer in a loop.

It prints a line per ``--every`` seconds (msg/s accepted and answered, p50/p99 latency of the
sends that ended in it, the response backlog, and the sends the service refused with 503 by
its back-pressure, counted apart from errors), then the totals. ``--compare PATH`` runs this
repository's tree and PATH one after the other (``--pairs N``: N times, in the order A B,
B A, ...) and prints both figures and their ratio. ``--store postgresql://…`` runs the SQLite
service first (the baseline, one process), then ``--processes`` service processes sharing one
PostgreSQL database (a fresh schema each run, dropped after), the senders split evenly between
them, and prints each run's figures beside the SQLite ones, with the database's round trips
(statements, from pg_stat_database) per message received and answered. See bench/README.md.
"""
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import argparse
import asyncio
import statistics
import tempfile
import time
from typing import Any

from benchlib import (AGR_DOMAIN, DSO_DOMAIN, ROOT, Child, close_client, cpu, dated_for_now,
                      memory, quantile)

WARM_UP_SENDS = 10  # per sender


class Soak:
    def __init__(self, args: Any, tree: str, store: str, processes: int = 1) -> None:
        from pyuftp.signing.crypto import generate_keypair
        from pyuftp.message.examples import flex_offer_96

        self.args, self.tree, self.store, self.processes = args, tree, store, processes
        self.agr_private, self.agr_public = generate_keypair()
        self.dso_private, self.dso_public = generate_keypair()
        offer = dict(dated_for_now(flex_offer_96()), sender_domain=AGR_DOMAIN,
                     recipient_domain=DSO_DOMAIN)
        # the client fills these in afresh for every send
        self.payload = {k: v for k, v in offer.items()
                        if k not in ("version", "message_id", "conversation_id", "time_stamp")}
        self.accepted = 0  # HTTP 200s, warm-up included
        self.events: list[tuple[float, float]] = []  # (end time, latency) per accepted send
        self.errors = 0
        self.refused = 0  # 503s: the service's back-pressure said "later" (not an error)
        self.error_texts: list[str] = []

    def config(self, **extra: Any) -> dict[str, Any]:
        return {"agr_public": self.agr_public, "agr_private": self.agr_private,
                "dso_public": self.dso_public, "dso_private": self.dso_private, **extra}

    async def run(self) -> dict[str, Any]:
        from pyuftp.clients import ShapeshifterAgrDsoClient

        lifetime = 4 * self.args.seconds + 600
        agr = await asyncio.to_thread(Child, "agr", self.config(), lifetime)
        services: list[Child] = []
        try:
            for _ in range(self.processes):
                services.append(await asyncio.to_thread(
                    Child, "pyuftp", self.config(agr_endpoint=agr.url, store=self.store),
                    lifetime, None if self.tree == ROOT else self.tree))
            svc = Services(services)
            clients = [ShapeshifterAgrDsoClient(AGR_DOMAIN, self.agr_private, DSO_DOMAIN,
                                                services[n % len(services)].url, attempts=1)
                       for n in range(self.args.senders)]
            try:
                return await self._run(svc, agr, clients)
            finally:
                for client in clients:
                    await close_client(client)
                svc.kill()
        finally:
            for service in services:
                service.kill()
            agr.kill()

    async def _run(self, svc: Any, agr: Child, clients: list) -> dict[str, Any]:
        out: dict[str, Any] = {"pyuftp": svc.ready["pyuftp"], "idle": memory(svc.pid)}
        await self._send(clients, time.perf_counter() + 30, WARM_UP_SENDS)
        out["warm_up"] = first = self.accepted
        await self._drain(svc, agr, 60.0)
        out["start"] = memory(svc.pid)
        svc0, agr0 = await asyncio.to_thread(svc.stats), await asyncio.to_thread(agr.stats)
        self.errors, self.error_texts, self.events = 0, [], []
        self.refused = 0
        began, done = time.perf_counter(), asyncio.Event()
        trips0 = await asyncio.to_thread(round_trips, self.store)
        cpu0 = cpu()
        reporter = asyncio.create_task(self._report(agr, began, done, out))
        try:
            await self._send(clients, began + self.args.seconds, None)
        finally:
            out["window"] = time.perf_counter() - began
            out["bench_cpu"] = cpu() - cpu0
            done.set()
            await reporter
        closed_svc, closed_agr = (await asyncio.to_thread(svc.stats),
                                  await asyncio.to_thread(agr.stats))
        out["sent"] = self.accepted - first
        out["delivered"] = closed_agr["handled"] - agr0["handled"]
        out["backlog"] = self.accepted - closed_agr["handled"]
        out["unhandled"] = self.accepted - closed_svc["handled"]  # handler not (yet) run
        out["closed"] = memory(svc.pid)
        out["window_cpu"] = closed_svc["cpu"] - svc0["cpu"]
        out["drained"], out["drain"] = await self._drain(svc, agr, self.args.drain)
        await asyncio.sleep(1.0 if trips0 is not None else 0)  # the server's counters lag
        trips1 = await asyncio.to_thread(round_trips, self.store)
        out["round_trips"] = (None if trips0 is None or trips1 is None
                              else (trips1 - trips0) / max(1, out["sent"]))
        after_svc = await asyncio.to_thread(svc.stats)
        out["end"] = memory(svc.pid)
        out["cpu_all"] = after_svc["cpu"] - svc0["cpu"]
        out["responses"] = (await asyncio.to_thread(agr.stats))["handled"]
        await asyncio.to_thread(svc.quit)
        out["stderr"] = svc.stderr().splitlines()
        return out

    async def _send(self, clients: list, deadline: float, quota: int | None) -> None:
        async def one(client) -> None:
            n = 0
            while time.perf_counter() < deadline and (quota is None or n < quota):
                n += 1
                started = time.perf_counter()
                try:
                    await client.send_flex_offer(self.payload)
                except Exception as exc:  # counted and shown, never fatal
                    if getattr(exc, "status", None) == 503:  # back-pressure: later, please
                        self.refused += 1
                        await asyncio.sleep(0.01)
                        continue
                    self.errors += 1
                    if len(self.error_texts) < 3:
                        self.error_texts.append(f"{type(exc).__name__}: {exc}"[:300])
                    await asyncio.sleep(0.01)
                    continue
                ended = time.perf_counter()
                self.accepted += 1
                self.events.append((ended, ended - started))

        await asyncio.gather(*(one(c) for c in clients))

    async def _report(self, agr: Child, began: float, done: asyncio.Event,
                      out: dict[str, Any]) -> None:
        """A line every --every seconds, and one as the window closes."""
        windows = out["windows"] = []
        last_t, last_n, tick = began, self.accepted, 1
        last_r = (await asyncio.to_thread(agr.stats))["handled"]
        seen = 0
        while True:
            try:
                next_tick = began + tick * self.args.every
                await asyncio.wait_for(done.wait(), max(0.0, next_tick - time.perf_counter()))
            except asyncio.TimeoutError:
                pass
            now, accepted = time.perf_counter(), self.accepted
            if now - last_t > 0.5 or not windows:
                responses = (await asyncio.to_thread(agr.stats))["handled"]
                lat = [latency for _, latency in self.events[seen:]]
                seen = len(self.events)
                span = now - last_t
                w = {"t": now - began, "accepted": (accepted - last_n) / span,
                     "delivered": (responses - last_r) / span,
                     "p50": quantile(lat, 0.5) * 1e3, "p99": quantile(lat, 0.99) * 1e3,
                     "backlog": accepted - responses, "errors": self.errors}
                rate = (accepted - out["warm_up"]) / max(1e-9, now - began)
                w["backlog_s"] = w["backlog"] / rate if rate else float("nan")
                windows.append(w)
                print(f"  {w['t']:5.1f} s  accepted {w['accepted']:5.0f}/s  answered "
                      f"{w['delivered']:5.0f}/s  p50 {w['p50']:7.1f} ms  p99 {w['p99']:7.1f} ms  "
                      f"response backlog {w['backlog']:>6} ({w['backlog_s']:5.1f} s)  errors "
                      f"{self.errors}  refused {self.refused}", flush=True)
                last_r = responses
            if done.is_set():
                return
            last_t, last_n, tick = now, accepted, tick + 1

    async def _drain(self, svc: Any, agr: Child, limit: float) -> tuple[bool, float]:
        started = time.monotonic()
        while True:
            responses = (await asyncio.to_thread(agr.stats))["handled"]
            done = responses >= self.accepted  # every accepted message is answered
            if done or time.monotonic() - started > limit:
                return done, time.monotonic() - started
            await asyncio.sleep(0.1)


class Services:
    """Several service processes (one database) seen as one: stats summed, memory of the
    first."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.ready, self.pid = children[0].ready, children[0].pid

    def stats(self) -> dict[str, Any]:
        each = [child.stats() for child in self.children]
        return {"handled": sum(s["handled"] for s in each), "cpu": sum(s["cpu"] for s in each)}

    def quit(self) -> None:
        for child in self.children:
            child.quit()

    def stderr(self) -> str:
        return "".join(child.stderr() for child in self.children)

    def kill(self) -> None:
        for child in self.children:
            child.kill()


def round_trips(store: str) -> int | None:
    """Statements the PostgreSQL server has run in this database so far (each store call is
    one round trip, in autocommit), or None for another store."""
    if not store.startswith(("postgresql://", "postgres://")):
        return None
    import psycopg

    from pyuftp.store.postgresql_schema import split_url

    with psycopg.connect(split_url(store)[0], autocommit=True) as conn:
        row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
    return int(row[0]) - 1  # this query


def count_pg_rows(store: str) -> dict[str, Any]:
    """What a PostgreSQL store holds (its schema), then the schema is dropped."""
    import psycopg

    from pyuftp.store.postgresql_schema import split_url

    url, options = split_url(store)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {options['schema']}")
        received, unhandled = conn.execute(
            "SELECT COUNT(*), COUNT(*) - COUNT(handled_at) FROM received").fetchone()
        outbox = dict(conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
        size = conn.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN "
                            "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
                            "AND c.relkind = 'r'", (options["schema"],)).fetchone()[0]
        conn.execute(f"DROP SCHEMA {options['schema']} CASCADE")
    return {"received": received, "unhandled": unhandled, "outbox": outbox,
            "bytes": int(size or 0), "kind": "PostgreSQL"}


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
    return {"received": received, "unhandled": unhandled, "outbox": outbox, "bytes": size,
            "kind": "SQLite"}


def figures(soak: Soak, out: dict[str, Any]) -> dict[str, float]:
    lat = [latency for _, latency in soak.events]
    p99s = [w["p99"] for w in out["windows"] if w["p99"] == w["p99"]]
    rate = out["sent"] / out["window"]
    return {
        "msg/s accepted (HTTP 200)": rate,
        "msg/s answered (responses at the AGR)": out["delivered"] / out["window"],
        "p50 latency ms": quantile(lat, 0.5) * 1e3,
        "p99 latency ms": quantile(lat, 0.99) * 1e3,
        "p99 first window ms": p99s[0] if p99s else float("nan"),
        "p99 last window ms": p99s[-1] if p99s else float("nan"),
        "p99 last / first window": p99s[-1] / p99s[0] if p99s and p99s[0] else float("nan"),
        "response backlog at the close (msgs)": out["backlog"],
        "response backlog at the close (s of traffic)": out["backlog"] / rate if rate else float("nan"),
        "service CPU µs/msg (window + drain)": out["cpu_all"] / max(1, out["sent"]) * 1e6,
        "service CPU, share of a core in the window": out["window_cpu"] / out["window"],
        "errors": soak.errors,
        "refused by back-pressure (503)": soak.refused,
        "service RSS start MiB": out["start"]["VmRSS"],
        "service RSS end MiB": out["end"]["VmRSS"],
        "DB round trips per message (received + answered)": (
            float("nan") if out.get("round_trips") is None else out["round_trips"]),
    }


def report(soak: Soak, out: dict[str, Any], rows: dict[str, Any]) -> dict[str, float]:
    f = figures(soak, out)
    print(f"  accepted {out['sent']} in {out['window']:.1f} s = {f['msg/s accepted (HTTP 200)']:.0f} "
          f"msg/s; answered in the window {out['delivered']} = "
          f"{f['msg/s answered (responses at the AGR)']:.0f} msg/s ({soak.args.senders} senders; "
          f"warm-up {out['warm_up']} before)")
    print(f"  latency per send_flex_offer: p50 {f['p50 latency ms']:.1f} ms, p99 "
          f"{f['p99 latency ms']:.1f} ms; p99 per window: "
          + ", ".join(f"{w['p99']:.0f}" for w in out["windows"]) + " ms")
    print(f"  response backlog at the close: {out['backlog']} messages = "
          f"{f['response backlog at the close (s of traffic)']:.1f} s of traffic (handler not run: "
          f"{out['unhandled']}); drain {'done' if out['drained'] else 'NOT done'} after "
          f"{out['drain']:.1f} s; responses {out['responses']} of {soak.accepted}")
    print(f"  CPU: service {f['service CPU, share of a core in the window']:.0%} of a core in the "
          f"window, {f['service CPU µs/msg (window + drain)']:.0f} µs per message; this process "
          f"(senders) {out['bench_cpu'] / out['window']:.0%}")
    print(f"  refused by back-pressure (HTTP 503, the sender tries later): {soak.refused}")
    print(f"  errors: {soak.errors}" + "".join(f"\n    {t}" for t in soak.error_texts))
    print(f"  service RSS: {out['idle']['VmRSS']:.1f} MiB listening, {out['start']['VmRSS']:.1f} "
          f"after the warm-up, {out['closed']['VmRSS']:.1f} as the window closed, "
          f"{out['end']['VmRSS']:.1f} after the drain; peak {out['end']['VmHWM']:.1f} MiB")
    outbox = ", ".join(f"{n} {s}" for s, n in sorted(rows["outbox"].items())) or "empty"
    if out.get("round_trips") is not None:
        print(f"  database round trips (statements) per message received and answered: "
              f"{out['round_trips']:.2f}")
    print(f"  {rows['kind']}: {rows['received']} received rows ({rows['unhandled']} not handled) for "
          f"{soak.accepted} accepted; outbox {outbox}; {rows['bytes'] / 2**20:.1f} MiB")
    if out["stderr"]:
        print(f"  service stderr: {len(out['stderr'])} lines; the first:")
        for line in out["stderr"][:3]:
            print(f"    {line[:240]}")
    return f


def one_run(args: Any, tree: str, store: str | None = None,
            processes: int = 1) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="pyuftp-soak-") as tmp:
        if store is None:
            store = os.path.join(tmp, "dso.sqlite")
        else:  # a fresh schema of its own in the database
            store += f"{'&' if '?' in store else '?'}schema=soak_{os.getpid()}_{time.time_ns()}"
        soak = Soak(args, tree, store, processes)
        out = asyncio.run(soak.run())
        print(f"  (service ran pyuftp from {out['pyuftp']})")
        rows = count_pg_rows(store) if round_trips(store) is not None else count_rows(store)
        return report(soak, out, rows)


def postgresql_runs(args: Any) -> None:
    """SQLite with one process, then PostgreSQL with each of --processes; a table."""
    runs = [("SQLite, 1 process", None, 1)] + [
        (f"PostgreSQL, {n} process{'es' if n > 1 else ''}", args.store, n)
        for n in args.processes]
    results = {}
    for name, store, n in runs:
        print(f"\n{name}:", flush=True)
        results[name] = one_run(args, os.path.abspath(args.tree), store, n)
    base = results[runs[0][0]]["msg/s accepted (HTTP 200)"]
    print(f"\n{'':<26} {'msg/s':>7} {'answered/s':>10} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'trips/msg':>9} {'vs SQLite':>9}")
    for name, f in results.items():
        rate = f["msg/s accepted (HTTP 200)"]
        print(f"{name:<26} {rate:>7.0f} {f['msg/s answered (responses at the AGR)']:>10.0f} "
              f"{f['p50 latency ms']:>7.1f} {f['p99 latency ms']:>7.1f} "
              f"{f['DB round trips per message (received + answered)']:>9.2f} "
              f"{rate / base:>9.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="sending time (default 60)")
    parser.add_argument("--senders", type=int, default=32, help="concurrent senders (default 32)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds per progress window")
    parser.add_argument("--drain", type=float, default=60.0,
                        help="longest wait after the window for the backlog to go (default 60)")
    parser.add_argument("--tree", default=ROOT, help="source tree of the service's pyuftp")
    parser.add_argument("--compare", metavar="PATH",
                        help="run this repository's tree and PATH, one after the other")
    parser.add_argument("--pairs", type=int, default=1, help="with --compare: runs per tree")
    parser.add_argument("--store", metavar="URL",
                        help="postgresql://…: SQLite, then --processes services on this database")
    parser.add_argument("--processes", default="1,2,4", type=lambda text: [
        int(n) for n in text.split(",")], help="with --store: service processes (default 1,2,4)")
    args = parser.parse_args()
    if args.store:
        if not args.store.startswith(("postgresql://", "postgres://")):
            parser.error("--store takes a postgresql:// URL (SQLite is the baseline)")
        print(f"pyuftp DSO service: SQLite, then PostgreSQL with {args.processes} processes on "
              f"127.0.0.1; {args.senders} senders for {args.seconds:g} s per run; 96-ISP "
              f"FlexOffer; {os.cpu_count()} CPUs", flush=True)
        postgresql_runs(args)
        return
    trees = [os.path.abspath(args.tree)]
    if args.compare:
        trees = [ROOT, os.path.abspath(args.compare)]
    for tree in trees:
        if not os.path.isfile(os.path.join(tree, "pyuftp", "__init__.py")):
            parser.error(f"{tree} has no pyuftp/__init__.py")
    print(f"pyuftp DSO service with a SQLite store, own process on 127.0.0.1; {args.senders} "
          f"senders for {args.seconds:g} s per run; 96-ISP FlexOffer; {os.cpu_count()} CPUs; "
          "senders and AGR service: this repository's pyuftp", flush=True)
    order = []
    for i in range(args.pairs if args.compare else 1):
        order += trees if i % 2 == 0 else trees[::-1]
    results: dict[str, list[dict[str, float]]] = {}
    for tree in order:
        print(f"\nservice tree {tree}:", flush=True)
        results.setdefault(tree, []).append(one_run(args, tree))
    if args.compare:
        a, b = trees
        print(f"\ncomparison (median of {args.pairs} run(s) each): A = {a}, B = {b}")
        print(f"  {'':<46} {'A':>10} {'B':>10} {'A/B':>7}")
        for key in results[a][0]:
            x = statistics.median(r[key] for r in results[a])
            y = statistics.median(r[key] for r in results[b])
            ratio = f"{x / y:.2f}" if y and x == x and y == y else "-"
            print(f"  {key:<46} {x:>10.1f} {y:>10.1f} {ratio:>7}")


if __name__ == "__main__":
    main()
