"""HTTP benchmark: signed 96-ISP FlexOffers through one DSO service, pyuftp against the peer.

    python bench/throughput.py [--seconds 2] [--rounds 3] [--senders 16]
                               [--memory 100000] [--cap 20000] [--cap-messages 50000]
                               [--metrics] [--metrics-rounds 6]

One pyuftp DSO service and one shapeshifter-uftp DSO service, each in a process of its own
on 127.0.0.1 (bench/benchlib.py), both up for the whole run; pyuftp's FlexOfferResponses go
to a pyuftp AGR service in a third process. The senders run in this process. Scenarios:
"send" (the library's own client calls ``send_flex_offer``) and "pre-signed" (an aiohttp
poster POSTs FlexOffers signed beforehand), with 1 and with ``--senders`` senders. Each
scenario runs ``--rounds`` rounds per library, pyuftp and the peer alternating, and prints
medians with their spread. A pyuftp message counts when its FlexOfferResponse has reached
the AGR service; a peer message when its service has handled it (it sends no response).
Then the floors (lxml, XSD, Ed25519, a bare aiohttp POST), measured in the same run, and the
pyuftp service's memory after 10 %, 50 % and 100 % of ``--memory`` messages, with its
default store and with a store capped at ``--cap``. ``--metrics``: first, the service CPU per
message of pyuftp services with and without ``metrics=True`` (two processes, rounds
alternating), and what the metric hooks of one message cost on their own. ``--base TREE``:
a third service, pyuftp from another source tree (e.g. ``git worktree add /tmp/base <commit>``),
in the same rotation, so that a change is measured before and after in the same run;
``--no-peer`` leaves the peer's rounds out. ``--uvloop``: another pyuftp service (this tree)
on uvloop, its senders on a uvloop loop in a thread of this process, in the same rotation
(the peer's uvicorn takes uvloop by itself when it is installed; the run says which loop each
service runs). See bench/README.md.
"""
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import argparse
import asyncio
import base64
import importlib.util
import logging
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from benchlib import (AGR_DOMAIN, DSO_DOMAIN, Child, close_client, cpu, dated_for_now, memory,
                      quantile, run_loop, spread)

MAX_ERRORS = 20  # per round: stop sending after this many failed sends


def _load_messages_bench():
    spec = importlib.util.spec_from_file_location("pyuftp_bench_messages",
                                                  os.path.join(_HERE, "messages.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Round:
    impl: str
    label: str
    senders: int
    accepted: int = 0  # HTTP 200s in the window
    delivered: int = 0  # pyuftp: responses at the AGR in the window; peer: handled in the window
    errors: int = 0
    first_error: str = ""
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    service_cpu: float = 0.0  # service process, window + drain
    sender_cpu: float = 0.0  # this process, window
    agr_cpu: float = 0.0  # pyuftp's AGR process, window + drain
    backlog: int = 0  # accepted, response not yet delivered (peer: not handled) at the close
    drain: float = 0.0
    drained: bool = True
    exhausted: bool = False

    @property
    def rate(self) -> float:
        return self.delivered / self.wall if self.wall else float("nan")

    @property
    def accept_rate(self) -> float:
        return self.accepted / self.wall if self.wall else float("nan")

    def per_msg(self, seconds: float) -> float:
        return seconds / self.accepted * 1e6 if self.accepted else float("nan")


class Bench:
    def __init__(self, args: Any) -> None:
        import pyuftp
        from pyuftp.signing.crypto import generate_keypair

        self.args = args
        self.agr_private, self.agr_public = generate_keypair()
        self.dso_private, self.dso_public = generate_keypair()
        messages = _load_messages_bench()
        offer, response, self.source = messages.payloads()
        offer = dict(dated_for_now(offer), sender_domain=AGR_DOMAIN, recipient_domain=DSO_DOMAIN)
        self.payload = {k: v for k, v in offer.items()
                        if k not in ("message_id", "conversation_id", "time_stamp")}
        self.full = pyuftp.parse_message(pyuftp.create_message("FlexOffer", self.payload))[1]
        self.response_payload = dict(response, sender_domain=DSO_DOMAIN,
                                     recipient_domain=AGR_DOMAIN)
        self.peer_flex_offer = messages.peer_flex_offer
        self.rounds: list[Round] = []
        self.floors: dict[str, list[float]] = {}
        # HTTP 200s per service process so far ("base": pyuftp from --base TREE)
        self.accepted = {"pyuftp": 0, "peer": 0, "base": 0, "uvloop": 0}
        self.agr_expected = 0  # responses the AGR should have received in all
        self.lifetime = 3600.0
        from pyuftp.clients import ShapeshifterAgrDsoClient
        from pyuftp.signing.envelope import wrap
        self._signer = ShapeshifterAgrDsoClient(AGR_DOMAIN, self.agr_private, DSO_DOMAIN,
                                                "http://127.0.0.1:9/")
        self._wrap = wrap
        mid = str(uuid.uuid4())
        self.template_xml = pyuftp.create_message("FlexOffer", dict(self.payload, message_id=mid))
        self._marker = f'MessageID="{mid}"'
        assert self.template_xml.count(self._marker) == 1

    def body(self) -> bytes:
        """A FlexOffer signed now with a new MessageID (the rest as the template)."""
        return self._wrap(self.template_xml.replace(self._marker, f'MessageID="{uuid.uuid4()}"'),
                          self._signer.signing_key, AGR_DOMAIN, "AGR")

    def config(self, **extra: Any) -> dict[str, Any]:
        return {"agr_public": self.agr_public, "agr_private": self.agr_private,
                "dso_public": self.dso_public, "dso_private": self.dso_private, **extra}

    # --- one round ---------------------------------------------------------------------------

    async def async_round(self, r: Round, svc: Child, agr: Child | None,
                          bodies: list[bytes] | None) -> Round:
        """``r.senders`` asyncio senders: pyuftp clients calling ``send_flex_offer`` (bodies
        None), or POSTing pre-signed bodies with pyuftp's poster."""
        from pyuftp.clients import ShapeshifterAgrDsoClient

        clients = [ShapeshifterAgrDsoClient(AGR_DOMAIN, self.agr_private, DSO_DOMAIN, svc.url,
                                            attempts=1) for _ in range(r.senders)]
        cursor = [0]
        before = await asyncio.to_thread(svc.stats)
        agr_before = await asyncio.to_thread(agr.stats) if agr else None

        async def one(c) -> None:
            while time.perf_counter() < deadline and r.errors < MAX_ERRORS:
                if bodies is not None:
                    if cursor[0] >= len(bodies):
                        r.exhausted = True
                        return
                    cursor[0] += 1
                started = time.perf_counter()
                try:
                    if bodies is None:
                        await c.send_flex_offer(self.payload)
                    else:
                        await c.courier.poster.post_once(bodies[cursor[0] - 1], svc.url)
                except Exception as exc:  # counted and shown, never fatal
                    r.errors += 1
                    r.first_error = r.first_error or f"{type(exc).__name__}: {exc}"[:200]
                    continue
                r.latencies.append(time.perf_counter() - started)
                r.accepted += 1

        try:
            cpu0, start = cpu(), time.perf_counter()
            deadline = start + self.args.seconds
            await asyncio.gather(*(one(c) for c in clients))
            r.wall = time.perf_counter() - start
            r.sender_cpu = cpu() - cpu0
        finally:
            for c in clients:
                await close_client(c)
        await self._settle(r, svc, agr, before, agr_before)
        return r

    async def _settle(self, r: Round, svc: Child, agr: Child | None, before: dict,
                      agr_before: dict | None) -> None:
        """Counts at the close of the window, then a bounded wait until everything accepted
        is handled (and answered), and the CPU over window + drain."""
        impl = r.impl
        self.accepted[impl] += r.accepted
        if agr:
            self.agr_expected += r.accepted
        closed = await asyncio.to_thread(svc.stats)
        if agr:
            agr_closed = await asyncio.to_thread(agr.stats)
            r.delivered = agr_closed["handled"] - agr_before["handled"]
            r.backlog = self.agr_expected - agr_closed["handled"]
        else:
            r.delivered = closed["handled"] - before["handled"]
            r.backlog = self.accepted[impl] - closed["handled"]
        r.drained, r.drain, after, agr_after = await self.drain(svc, agr, impl)
        r.service_cpu = after["cpu"] - before["cpu"]
        if agr:
            r.agr_cpu = agr_after["cpu"] - agr_before["cpu"]

    async def drain(self, svc: Child, agr: Child | None, impl: str,
                    limit: float = 30.0) -> tuple[bool, float, dict, dict | None]:
        started = time.monotonic()
        while True:
            stats = await asyncio.to_thread(svc.stats)
            agr_stats = await asyncio.to_thread(agr.stats) if agr else None
            # pyuftp: every accepted message is answered (accepted or rejected): done when the
            # AGR has every answer; the peer: when its service has handled every message
            done = (agr_stats["handled"] >= self.agr_expected if agr_stats is not None
                    else stats["handled"] >= self.accepted[impl])
            if done or time.monotonic() - started > limit:
                return done, time.monotonic() - started, stats, agr_stats
            await asyncio.sleep(0.02)

    def peer_round(self, r: Round, svc: Child) -> Round:
        """``r.senders`` threads, each with the peer's own client (requests, a new connection
        per message) calling ``send_flex_offer``."""
        from shapeshifter_uftp.client import ShapeshifterAgrDsoClient as PeerClient

        logging.getLogger("shapeshifter-uftp").setLevel(logging.WARNING)
        go = threading.Event()
        lock = threading.Lock()
        deadline = [0.0]

        def one() -> None:
            client = PeerClient(sender_domain=AGR_DOMAIN, signing_key=self.agr_private,
                                recipient_domain=DSO_DOMAIN, recipient_endpoint=svc.url,
                                recipient_signing_key=self.dso_public)
            offer = self.peer_flex_offer(self.full)
            latencies, n = [], 0
            go.wait(30)
            while time.perf_counter() < deadline[0] and r.errors < MAX_ERRORS:
                offer.message_id = offer.conversation_id = offer.time_stamp = None
                started = time.perf_counter()
                try:
                    client.send_flex_offer(offer)
                except Exception as exc:  # counted and shown, never fatal
                    with lock:
                        r.errors += 1
                        r.first_error = r.first_error or f"{type(exc).__name__}: {exc}"[:200]
                    continue
                latencies.append(time.perf_counter() - started)
                n += 1
            with lock:
                r.accepted += n
                r.latencies.extend(latencies)

        threads = [threading.Thread(target=one, daemon=True) for _ in range(r.senders)]
        for thread in threads:
            thread.start()
        before = svc.stats()
        time.sleep(0.2)  # every thread builds its client and message
        cpu0, start = cpu(), time.perf_counter()
        deadline[0] = start + self.args.seconds
        go.set()
        for thread in threads:
            thread.join(self.args.seconds + 60)
        r.wall = time.perf_counter() - start
        r.sender_cpu = cpu() - cpu0
        asyncio.run(self._settle(r, svc, None, before, None))
        return r

    # --- floors --------------------------------------------------------------------------------

    def cpu_floors(self, seconds: float = 0.15) -> None:
        """lxml, XSD, Ed25519 (PyNaCl bindings) and the response's build, on this process."""
        import nacl.bindings as nb
        from lxml import etree

        import pyuftp
        import pyuftp.message.codec

        pk, sk = nb.crypto_sign_keypair()
        envelope = self.body()
        root = etree.fromstring(envelope)
        sealed = base64.b64decode(root.get("Body"))
        payload_xml = sealed[64:]
        sealed = nb.crypto_sign(payload_xml, sk)
        payload_root = etree.fromstring(payload_xml)
        xsd = pyuftp.message.codec.schema("3.1.0")
        assert xsd.validate(payload_root)
        response_full = dict(self.response_payload, flex_offer_message_id=str(uuid.uuid4()))
        response_xml = pyuftp.create_message("FlexOfferResponse", response_full).encode()
        signed_response = nb.crypto_sign(response_xml, sk)
        body = root.get("Body")
        payload_str = payload_xml.decode()
        parts: dict[str, Callable[[], Any]] = {
            "request: etree.fromstring(SignedMessage)": lambda: etree.fromstring(envelope),
            "request: base64 decode of the body": lambda: base64.b64decode(body),
            "request: crypto_sign_open": lambda: nb.crypto_sign_open(sealed, pk),
            "request: etree.fromstring(FlexOffer)": lambda: etree.fromstring(payload_xml),
            "request: XMLSchema.validate(FlexOffer)": lambda: xsd.validate(payload_root),
            "response: pyuftp.create_message(FlexOfferResponse)":
                lambda: pyuftp.create_message("FlexOfferResponse", response_full),
            "response: crypto_sign": lambda: nb.crypto_sign(response_xml, sk),
            "response: base64 encode": lambda: base64.b64encode(signed_response),
            "sender: crypto_sign(FlexOffer)": lambda: nb.crypto_sign(payload_xml, sk),
            "sender: pyuftp.create_message(FlexOffer)":
                lambda: pyuftp.create_message("FlexOffer", self.full),
            "-: str.encode of the FlexOffer": lambda: payload_str.encode(),
        }
        for name, fn in parts.items():
            for _ in range(3):
                fn()
            n, t0 = 0, time.perf_counter()
            while True:
                for _ in range(20):
                    fn()
                n += 20
                taken = time.perf_counter() - t0
                if taken >= seconds:
                    break
            self.floors.setdefault(name, []).append(taken / n * 1e6)
        self.floor_sizes = (len(envelope), len(self._wrap(response_xml, self._signer.signing_key,
                                                         DSO_DOMAIN, "DSO")))

    async def bare_floor(self, bare: Child, seconds: float = 0.5, tag: str = "") -> None:
        """A bare aiohttp POST of the request's size and of the response's size to a bare
        aiohttp server: round-trip time, and CPU per POST of the client (this process) and
        of the server (its process). ``tag`` ends the floors' names (" on uvloop": the
        server and this client on uvloop)."""
        import aiohttp

        for what, size in (("request", self.floor_sizes[0]), ("response", self.floor_sizes[1])):
            data = b"x" * size
            async with aiohttp.ClientSession() as session:
                async def post() -> None:
                    async with session.post(bare.url, data=data,
                                            headers={"Content-Type": "text/xml"}) as resp:
                        await resp.read()
                        assert resp.status == 200

                for _ in range(20):
                    await post()
                before = await asyncio.to_thread(bare.stats)
                times, cpu0, t0 = [], cpu(), time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    started = time.perf_counter()
                    await post()
                    times.append(time.perf_counter() - started)
                client_cpu = cpu() - cpu0
                after = await asyncio.to_thread(bare.stats)
            n = after["handled"] - before["handled"]
            self.floors.setdefault(f"bare POST {what}: round trip (wall){tag}", []).append(
                statistics.median(times) * 1e6)
            self.floors.setdefault(f"bare POST {what}: client CPU{tag}", []).append(
                client_cpu / len(times) * 1e6)
            self.floors.setdefault(f"bare POST {what}: server CPU{tag}", []).append(
                (after["cpu"] - before["cpu"]) / n * 1e6)

    # --- memory --------------------------------------------------------------------------------

    async def feed(self, svc: Child, agr: Child, impl: str, target: int,
                   senders: int = 16, limit: float = 900.0) -> int:
        """POST freshly signed FlexOffers until ``svc`` has accepted ``target`` in all (or
        ``limit`` seconds have passed). A refusal (503 while the service's backlog of
        answers is full) is waited out and the message is sent again: it still counts once."""
        import aiohttp

        refusals = 0
        give_up = time.monotonic() + limit
        async with aiohttp.ClientSession() as session:
            async def one() -> None:
                nonlocal refusals
                data = None
                while self.accepted[impl] < target and time.monotonic() < give_up:
                    data = data or self.body()
                    async with session.post(svc.url, data=data, headers={
                            "Content-Type": "text/xml; charset=utf-8"}) as resp:
                        await resp.read()
                        if resp.status == 200:
                            self.accepted[impl] += 1
                            self.agr_expected += 1
                            data = None
                        else:
                            refusals += 1
                            await asyncio.sleep(0.2)

            await asyncio.gather(*(one() for _ in range(senders)))
        self.refusals = getattr(self, "refusals", 0) + refusals
        return refusals


async def warm_up(bench: Bench, svc: Child, n: int = 50) -> None:
    from pyuftp.clients import ShapeshifterAgrDsoClient

    c = ShapeshifterAgrDsoClient(AGR_DOMAIN, bench.agr_private, DSO_DOMAIN, svc.url)
    for _ in range(n):
        await c.send_flex_offer(bench.payload)
    await close_client(c)


def presign(bench: Bench, count: int) -> list[bytes]:
    return [bench.body() for _ in range(count)]


def row(name: str, ours: list[float], peer: list[float], fmt: str = ".0f") -> str:
    ratio = ""
    if ours and peer:
        a, b = statistics.median(ours), statistics.median(peer)
        if a and b == b and a == a:
            ratio = f"{b / a:.2f}"
    return f"  {name:<34} {spread(ours, fmt):>26} {spread(peer, fmt):>26} {ratio:>9}"


async def run(args: Any) -> None:
    began = time.perf_counter()
    bench = Bench(args)
    lifetime = bench.lifetime
    agr = await asyncio.to_thread(Child, "agr", bench.config(), lifetime)
    ours = await asyncio.to_thread(Child, "pyuftp", bench.config(agr_endpoint=agr.url), lifetime)
    peer = await asyncio.to_thread(Child, "peer", bench.config(), lifetime)
    bare = await asyncio.to_thread(Child, "bare", {}, lifetime)
    children = [agr, ours, peer, bare]
    base = None
    if args.base:  # the same service from another tree, its answers to the same AGR
        base = await asyncio.to_thread(Child, "pyuftp", bench.config(agr_endpoint=agr.url),
                                       lifetime, os.path.abspath(args.base))
        children.append(base)
    uv = bare_uv = None
    if args.uvloop:  # the same service on uvloop; its senders on uvloop too (in a thread)
        uv = await asyncio.to_thread(Child, "pyuftp", bench.config(agr_endpoint=agr.url,
                                                                   loop="uvloop"), lifetime)
        children.append(uv)
        bare_uv = await asyncio.to_thread(Child, "bare", {"loop": "uvloop"}, lifetime)
        children.append(bare_uv)
    impls = (["pyuftp"] + ([] if args.no_peer else ["peer"]) + (["base"] if base else [])
             + (["uvloop"] if uv else []))
    try:
        print(f"services in their own processes on 127.0.0.1 (pyuftp {ours.ready['pyuftp']}, "
              f"store {ours.ready['store']}); senders in this process; {os.cpu_count()} CPUs")
        if base is not None:
            print(f"base: pyuftp {base.ready['pyuftp']}, store {base.ready['store']}")
        print(f"event loops: pyuftp service {ours.ready['loop']}"
              + (f", uvloop service {uv.ready['loop']} (its senders on uvloop too)" if uv else "")
              + f"; the peer's uvicorn server: {peer.ready['loop']}")
        print(f"FlexOffer: 1 option x {len(bench.payload['offer_options'][0]['isps'])} ISPs "
              f"({bench.source}), signed envelope {len(bench.body())} B")
        print(f"{args.rounds} rounds of {args.seconds:g} s per scenario and library, pyuftp and "
              "shapeshifter-uftp alternating; figures: median [min–max] n=rounds")
        print("msg/s: pyuftp counts a message when its FlexOfferResponse has reached the AGR "
              "service (in the window); the peer when its service has handled it (it sends no "
              "response)")
        print(flush=True)

        # warm-up
        from pyuftp.clients import ShapeshifterAgrDsoClient
        c = ShapeshifterAgrDsoClient(AGR_DOMAIN, bench.agr_private, DSO_DOMAIN, ours.url)
        for _ in range(50):
            await c.send_flex_offer(bench.payload)
        await close_client(c)
        bench.accepted["pyuftp"] += 50
        bench.agr_expected += 50
        await bench.drain(ours, agr, "pyuftp")
        if base is not None:
            c = ShapeshifterAgrDsoClient(AGR_DOMAIN, bench.agr_private, DSO_DOMAIN, base.url)
            for _ in range(50):
                await c.send_flex_offer(bench.payload)
            await close_client(c)
            bench.accepted["base"] += 50
            bench.agr_expected += 50
            await bench.drain(base, agr, "base")
        if uv is not None:
            await asyncio.to_thread(run_loop, warm_up(bench, uv), "uvloop")
            bench.accepted["uvloop"] += 50
            bench.agr_expected += 50
            await bench.drain(uv, agr, "uvloop")
        warm = Round("peer", "warm-up", 1)
        saved, args.seconds = args.seconds, 0.5
        await asyncio.to_thread(bench.peer_round, warm, peer)
        args.seconds = saved
        bench.cpu_floors(0.05)  # a warm-up of the floors too, not kept
        bench.floors.clear()

        if args.metrics:
            await metrics_cost(bench, agr, lifetime, children, args)

        scenarios = [("send", 1), ("send", args.senders), ("pre-signed", 1),
                     ("pre-signed", args.senders)]
        pool = int(args.pool_rate * args.seconds)
        for label, senders in scenarios:
            for i in range(args.rounds):
                # the order turns every round: each service comes first, last, in between
                for impl in impls[i % len(impls):] + impls[:i % len(impls)]:
                    r = Round(impl, label, senders)
                    bodies = presign(bench, pool) if label == "pre-signed" else None
                    if impl == "pyuftp":
                        await bench.async_round(r, ours, agr, bodies)
                    elif impl == "base":
                        await bench.async_round(r, base, agr, bodies)
                    elif impl == "uvloop":  # the senders on a uvloop loop of their own
                        await asyncio.to_thread(run_loop, bench.async_round(r, uv, agr, bodies),
                                                "uvloop")
                    elif label == "send":
                        await asyncio.to_thread(bench.peer_round, r, peer)
                    else:
                        await bench.async_round(r, peer, None, bodies)
                    bench.rounds.append(r)
                    flags = []
                    if r.errors:
                        flags.append(f"{r.errors} errors, first: {r.first_error}")
                    if not r.drained:
                        flags.append("NOT drained in 30 s")
                    if r.exhausted:
                        flags.append("pre-signed pool used up (--pool-rate)")
                    print(f"  round {i + 1} {impl:<6} {label:<10} {senders:>2} snd: "
                          f"{r.delivered:>5} msgs {r.rate:6.0f} msg/s (accepted {r.accept_rate:5.0f}/s)"
                          f"  svc {r.per_msg(r.service_cpu):5.0f} µs  sender "
                          f"{r.per_msg(r.sender_cpu):5.0f} µs"
                          + (f"  agr {r.per_msg(r.agr_cpu):4.0f} µs" if impl != "peer" else "")
                          + f"  backlog {r.backlog:>4}  drain {r.drain:4.2f} s"
                          + ("  " + "; ".join(flags) if flags else ""), flush=True)
                if label == "send" and senders == 1:  # floors, between rounds
                    bench.cpu_floors()
                    await bench.bare_floor(bare)
                    if uv is not None:
                        await asyncio.to_thread(run_loop, bench.bare_floor(
                            bare_uv, tag=" on uvloop"), "uvloop")
        if args.rounds:
            report(bench, args)

        # memory with the default store, then with a capped one
        mem: list[tuple[str, int, dict]] = []
        if args.memory:
            for target in (args.memory // 10, args.memory // 2, args.memory):
                if target > bench.accepted["pyuftp"]:
                    await bench.feed(ours, agr, "pyuftp", target)
                    await bench.drain(ours, agr, "pyuftp", 120)
                mem.append(("default", bench.accepted["pyuftp"], memory(ours.pid)))
                print(f"  memory, default store: {bench.accepted['pyuftp']} messages, VmRSS "
                      f"{mem[-1][2]['VmRSS']:.1f} MiB", flush=True)
        final_ours = await asyncio.to_thread(ours.quit)
        final_peer = await asyncio.to_thread(peer.quit)
        for other in (base, uv):
            if other is not None:
                await asyncio.to_thread(other.quit)
        if args.cap_messages:
            capped = await asyncio.to_thread(
                Child, "pyuftp", bench.config(agr_endpoint=agr.url,
                                              store={"memory": args.cap}), lifetime)
            children.append(capped)
            bench.accepted["capped"] = 0
            step = args.cap_messages // 5
            for target in range(step, args.cap_messages + 1, step):
                await bench.feed(capped, agr, "capped", target)
                await bench.drain(capped, agr, "capped", 120)
                mem.append((f"capped {args.cap}", bench.accepted["capped"], memory(capped.pid)))
                print(f"  memory, store capped at {args.cap}: {bench.accepted['capped']} "
                      f"messages, VmRSS {mem[-1][2]['VmRSS']:.1f} MiB", flush=True)
            await asyncio.to_thread(capped.quit)
        report_memory(bench, ours, final_ours, final_peer, mem, args)
        print(f"(whole run {time.perf_counter() - began:.0f} s)")
    finally:
        for child in children:
            child.kill()


async def metrics_cost(bench: Bench, agr: Child, lifetime: float, children: list[Child],
                       args: Any) -> None:
    """(#21) Service CPU per message with metrics off and on: two pyuftp services, rounds
    alternating between them (pre-signed FlexOffers, 1 and ``--senders`` senders), medians
    compared; then the metric hooks of one message timed on their own."""
    import aiohttp

    off = await asyncio.to_thread(Child, "pyuftp", bench.config(agr_endpoint=agr.url), lifetime)
    on = await asyncio.to_thread(Child, "pyuftp", bench.config(agr_endpoint=agr.url,
                                                               metrics=True), lifetime)
    children += [off, on]
    for svc, impl in ((off, "metrics off"), (on, "metrics on")):
        bench.accepted[impl] = 0
        await bench.async_round(Round(impl, "warm-up", 1), svc, agr,
                                presign(bench, int(args.pool_rate * 0.5)))
    pool = int(args.pool_rate * args.seconds)
    cost: dict[tuple[str, int], list[float]] = {}
    print(f"metrics cost: service CPU µs/msg, {args.metrics_rounds} rounds each, pre-signed "
          "FlexOffers, services with metrics off and on alternating", flush=True)
    for senders in (1, args.senders):
        for i in range(args.metrics_rounds):
            order = ((off, "metrics off"), (on, "metrics on"))
            for svc, impl in order if i % 2 == 0 else order[::-1]:
                r = Round(impl, "pre-signed", senders)
                await bench.async_round(r, svc, agr, presign(bench, pool))
                cost.setdefault((impl, senders), []).append(r.per_msg(r.service_cpu))
                print(f"  round {i + 1} {impl:<11} {senders:>2} snd: {r.accepted:>5} msgs "
                      f"svc {r.per_msg(r.service_cpu):5.0f} µs", flush=True)
    for senders in (1, args.senders):
        a, b = cost[("metrics off", senders)], cost[("metrics on", senders)]
        rise = statistics.median(b) / statistics.median(a) - 1
        print(f"  {senders:>2} sender(s): off {spread(a)} µs, on {spread(b)} µs: "
              f"{rise * 100:+.1f} % (medians)")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{on.port}/metrics") as resp:
            text = await resp.text()
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("pyuftp_received_messages_total{"))
    print(f"  the metrics-on service counted {counted:.0f} messages received "
          f"({bench.accepted['metrics on']} accepted)")
    print(f"  the hooks of one message on their own: {hook_cost():.1f} µs", flush=True)
    await asyncio.to_thread(off.quit)
    await asyncio.to_thread(on.quit)


def hook_cost(n: int = 20000) -> float:
    """µs of CPU for the metric calls one received-and-answered message makes."""
    from pyuftp.server.metrics import ServiceMetrics

    m = ServiceMetrics()
    t0 = time.process_time()
    for _ in range(n):
        started = time.perf_counter()
        m.handled("FlexOffer", 0.0001)
        m.received("FlexOffer", AGR_DOMAIN, "Accepted")
        m.sent("FlexOfferResponse", AGR_DOMAIN, "queued")
        m.attempted("FlexOfferResponse", AGR_DOMAIN, "delivered")
        m.answered(200, started)
    return (time.process_time() - t0) / n * 1e6


def report(bench: Bench, args: Any) -> None:
    def pick(impl: str, label: str, senders: int) -> list[Round]:
        return [r for r in bench.rounds if r.impl == impl and r.label == label
                and r.senders == senders]

    print()
    print(f"  {'':<34} {'pyuftp':>26} {'shapeshifter-uftp':>26} {'peer/ours':>9}")
    summary = {}
    base_summary: dict[tuple[str, int], list[float]] = {}
    uv_summary: dict[tuple[str, int], list[float]] = {}
    for label, senders in (("send", 1), ("send", args.senders), ("pre-signed", 1),
                           ("pre-signed", args.senders)):
        a, b = pick("pyuftp", label, senders), pick("peer", label, senders)
        print(f"{label}, {senders} sender{'s' if senders > 1 else ''}:")
        # for msg/s the ratio printed is ours/peer's: a bigger number is better for pyuftp
        ra = [r.rate for r in a]
        rb = [r.rate for r in b]
        ratio = statistics.median(ra) / statistics.median(rb) if ra and rb else float("nan")
        print(f"  {'msg/s (delivered / handled)':<34} {spread(ra):>26} {spread(rb):>26} "
              f"{'ours/peer ' + format(ratio, '.2f'):>9}")
        print(row("msg/s accepted (HTTP 200)", [r.accept_rate for r in a],
                  [r.accept_rate for r in b]))
        svc_a, svc_b = [r.per_msg(r.service_cpu) for r in a], [r.per_msg(r.service_cpu) for r in b]
        snd_a, snd_b = [r.per_msg(r.sender_cpu) for r in a], [r.per_msg(r.sender_cpu) for r in b]
        both_a = [r.per_msg(r.service_cpu + r.sender_cpu) for r in a]
        both_b = [r.per_msg(r.service_cpu + r.sender_cpu) for r in b]
        print(row("service CPU µs/msg", svc_a, svc_b))
        print(row("sender CPU µs/msg", snd_a, snd_b))
        print(row("service + sender CPU µs/msg", both_a, both_b))
        print(row("AGR (response receiver) CPU µs/msg", [r.per_msg(r.agr_cpu) for r in a], []))
        print(row("p50 latency ms", [statistics.median(r.latencies) * 1e3 for r in a if r.latencies],
                  [statistics.median(r.latencies) * 1e3 for r in b if r.latencies], ".2f"))
        print(row("p99 latency ms", [quantile(r.latencies, 0.99) * 1e3 for r in a],
                  [quantile(r.latencies, 0.99) * 1e3 for r in b], ".2f"))
        print(row("backlog at the close (msgs)", [r.backlog for r in a], [r.backlog for r in b]))
        summary[(label, senders)] = (svc_a, snd_a)
        c = pick("base", label, senders)
        if c:  # the same figures of the --base tree; the last column is then base/ours
            print(f"  {'vs --base':<34} {'pyuftp (this tree)':>26} {'base':>26} "
                  f"{'base/ours':>9}")
            print(row("service CPU µs/msg", svc_a, [r.per_msg(r.service_cpu) for r in c]))
            print(row("sender CPU µs/msg", snd_a, [r.per_msg(r.sender_cpu) for r in c]))
            print(row("service + sender CPU µs/msg", both_a,
                      [r.per_msg(r.service_cpu + r.sender_cpu) for r in c]))
            print(row("p50 latency ms", [statistics.median(r.latencies) * 1e3 for r in a
                                         if r.latencies],
                      [statistics.median(r.latencies) * 1e3 for r in c if r.latencies], ".2f"))
            base_summary[(label, senders)] = [r.per_msg(r.service_cpu) for r in c]
        u = pick("uvloop", label, senders)
        if u:  # the same tree on uvloop (service and senders); the last column uvloop/asyncio
            both_u = [r.per_msg(r.service_cpu + r.sender_cpu) for r in u]
            print(f"  {'vs --uvloop':<34} {'pyuftp on asyncio':>26} {'pyuftp on uvloop':>26} "
                  f"{'uv/asyncio':>9}")
            print(row("service CPU µs/msg", svc_a, [r.per_msg(r.service_cpu) for r in u]))
            print(row("sender CPU µs/msg", snd_a, [r.per_msg(r.sender_cpu) for r in u]))
            print(row("service + sender CPU µs/msg", both_a, both_u))
            print(row("p50 latency ms", [statistics.median(r.latencies) * 1e3 for r in a
                                         if r.latencies],
                      [statistics.median(r.latencies) * 1e3 for r in u if r.latencies], ".2f"))
            print(row("msg/s (delivered)", [r.rate for r in a], [r.rate for r in u]))
            if both_b:
                print(f"  {'peer/ours service + sender CPU':<34} asyncio "
                      f"{statistics.median(both_b) / statistics.median(both_a):.2f}, uvloop "
                      f"{statistics.median(both_b) / statistics.median(both_u):.2f}")
            uv_summary[(label, senders)] = [r.per_msg(r.service_cpu) for r in u]

    f = bench.floors
    med = {k: statistics.median(v) for k, v in f.items()}
    print()
    print(f"floors, measured in this run between the 1-sender rounds (µs; median [min–max] "
          f"n={len(next(iter(f.values())))}; CPU parts on this process, bare POSTs against a "
          "bare aiohttp server process):")
    for name, values in f.items():
        print(f"  {name:<52} {spread(values, '.1f')}")
    request = ["request: etree.fromstring(SignedMessage)", "request: base64 decode of the body",
               "request: crypto_sign_open", "request: etree.fromstring(FlexOffer)",
               "request: XMLSchema.validate(FlexOffer)"]
    response = ["response: pyuftp.create_message(FlexOfferResponse)", "response: crypto_sign",
                "response: base64 encode"]
    trips = ["bare POST request: server CPU", "bare POST response: client CPU"]
    floor = sum(med[k] for k in request + response + trips)
    svc_one = statistics.median(summary[("send", 1)][0])
    print(f"  floor sum for the service, one message (request parse + validate + verify "
          f"{sum(med[k] for k in request):.0f}, response build + sign {sum(med[k] for k in response):.0f}, "
          f"two aiohttp round trips' service side {sum(med[k] for k in trips):.0f}): {floor:.0f} µs")
    for label in ("send", "pre-signed"):
        svc = statistics.median(summary[(label, 1)][0])
        print(f"  service CPU per message, {label}, 1 sender: {svc:.0f} µs = "
              f"{svc / floor:.2f} × the floor sum")
        if base_summary.get((label, 1)):
            old = statistics.median(base_summary[(label, 1)])
            print(f"    the --base tree: {old:.0f} µs = {old / floor:.2f} × the floor sum")
        if uv_summary.get((label, 1)):
            on_uv = statistics.median(uv_summary[(label, 1)])
            floor_uv = floor - sum(med[k] - med[k + " on uvloop"] for k in trips)
            print(f"    on uvloop: {on_uv:.0f} µs = {on_uv / floor_uv:.2f} × the floor sum "
                  f"with uvloop's round trips ({floor_uv:.0f} µs)")
    sender_floor = (med["sender: crypto_sign(FlexOffer)"] + med["sender: pyuftp.create_message(FlexOffer)"]
                    + med["bare POST request: client CPU"])
    snd_one = statistics.median(summary[("send", 1)][1])
    print(f"  sender CPU per message, send, 1 sender: {snd_one:.0f} µs = {snd_one / sender_floor:.2f} × "
          f"(create_message + crypto_sign + bare POST client side = {sender_floor:.0f} µs)")
    print(f"  bare POST round trip (wall): request {med['bare POST request: round trip (wall)']:.0f} µs, "
          f"response {med['bare POST response: round trip (wall)']:.0f} µs; pyuftp's p50 per "
          f"send_flex_offer, 1 sender: {statistics.median([statistics.median(r.latencies) * 1e3 for r in pick('pyuftp', 'send', 1)]):.2f} ms")
    del svc_one
    print(flush=True)


def report_memory(bench: Bench, ours: Child, final_ours: dict, final_peer: dict,
                  mem: list, args: Any) -> None:
    print()
    print(f"pyuftp service: peak RSS (VmHWM) {final_ours['hwm_kib'] / 1024:.1f} MiB over the whole "
          f"run ({bench.accepted['pyuftp']} messages); RSS when it began listening "
          f"{ours.ready['rss_kib'] / 1024:.1f} MiB, of which the libraries imported before pyuftp "
          f"{ours.ready['libraries_kib'] / 1024:.1f} MiB")
    print(f"shapeshifter-uftp service: peak RSS (VmHWM) {final_peer['hwm_kib'] / 1024:.1f} MiB "
          f"({bench.accepted['peer']} messages)")
    if mem:
        print("pyuftp service memory after N messages (all handled and answered; VmRSS, "
              "RssAnon, MiB):")
        previous: dict[str, tuple[int, float]] = {}
        for store, n, m in mem:
            line = f"  {store:<14} {n:>7} messages: VmRSS {m['VmRSS']:6.1f}  RssAnon {m['RssAnon']:6.1f}"
            if store in previous:
                n0, r0 = previous[store]
                line += (f"   {(m['VmRSS'] - r0) * 2**20 / max(1, n - n0):+6.0f} B per message since "
                         f"{n0}")
            previous[store] = (n, m["VmRSS"])
            print(line)
    print(f"  (memory feed: {getattr(bench, 'refusals', 0)} POSTs refused with 503 and sent "
          "again, the service's backlog of answers being full)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="window per round (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario and library")
    parser.add_argument("--senders", type=int, default=16, help="senders in the many-senders runs")
    parser.add_argument("--pool-rate", type=int, default=2500,
                        help="pre-signed messages per second of --seconds, made before each round")
    parser.add_argument("--memory", type=int, default=100_000,
                        help="messages into the default-store service; RSS at 10, 50 and 100 %% "
                             "(0: skip)")
    parser.add_argument("--cap", type=int, default=20_000,
                        help="max_received = max_kept of the capped MemoryStore variant")
    parser.add_argument("--cap-messages", type=int, default=50_000,
                        help="messages into the capped variant, RSS at every fifth (0: skip)")
    parser.add_argument("--metrics", action="store_true",
                        help="first compare the service CPU per message with metrics off and on")
    parser.add_argument("--base", metavar="TREE",
                        help="also run pyuftp from this source tree, in the same rotation "
                             "(before/after in one run)")
    parser.add_argument("--uvloop", action="store_true",
                        help="also run a pyuftp service on uvloop, its senders on uvloop too, "
                             "in the same rotation (needs uvloop installed)")
    parser.add_argument("--no-peer", action="store_true",
                        help="leave shapeshifter-uftp's rounds out (its service still starts)")
    parser.add_argument("--metrics-rounds", type=int, default=6,
                        help="rounds per service and sender count of the --metrics comparison")
    args = parser.parse_args()
    try:
        import shapeshifter_uftp  # noqa: F401
    except ImportError as exc:
        sys.exit(f"the peer is not installed ({exc}); run: pip install '.[peer]'")
    logging.getLogger("shapeshifter-uftp").setLevel(logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
