"""Sender benchmark: CPU per ``send_flex_offer`` of a 96-ISP FlexOffer, stage by stage.

    python bench/sender.py [--rounds 5] [--seconds 1] [--senders 16] [--compare TREE ...]

The senders run in a worker process of their own (``python bench/sender.py --worker``), one
per source tree (this checkout, and each ``--compare`` tree, put first on the worker's path),
so a worker's CPU time (``getrusage``: user + system, all threads) is its senders' alone.
They POST to a bare aiohttp server in another process (bench/benchlib.py's ``bare``), which
answers 200 at once: what a service does with the message is not the sender's cost. Rounds
of 1 and ``--senders`` senders (one ``ShapeshifterAgrDsoClient`` each, own keep-alive
session) alternate between the trees, the order flipping every round; figures are medians
with [min-max] and n, and the ratio of medians against the first tree (this checkout).

The ratio of each round's pair (the trees ran back to back) is
given too, as median [min-max]: on a busy machine it is steadier than the ratio of medians.

Then, per tree, the stages of one send timed as calls of their own (``process_time``, median
of 7 repeats, the trees alternating): ``complete_payload`` (fill in MessageID,
ConversationID, TimeStamp; check),
the stateless rules, ``render``, ``wrap`` (sign + base64 + envelope) and ``crypto_sign``
alone, ``Courier.seal`` (all of those), ``parse_message(create_message())`` (bench/messages.py's
create+parse), and the floors: a bare aiohttp ``session.post`` of
the envelope's bytes from the worker (client side CPU) and ``create_message`` +
``crypto_sign`` + that POST, the sender floor bench/throughput.py prints. See
bench/README.md.
"""
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import argparse
import asyncio
import json
import statistics
import subprocess
import time
from typing import Any, Callable

from benchlib import AGR_DOMAIN, DSO_DOMAIN, PREFIX, Child, close_client, cpu, spread


# =========================================================================================
# In a worker process (one per source tree)
# =========================================================================================


def _offer() -> dict[str, Any]:
    """The 96-ISP FlexOffer of bench/messages.py (Duration on every ISP, MinActivationFactor
    on the option), dated for now, without its metadata. Made here, not imported from there:
    that would import the peer too, and its objects would weigh on this process's GC."""
    from decimal import Decimal

    from benchlib import dated_for_now
    from pyuftp.message.examples import flex_offer_96

    offer = flex_offer_96()
    offer["offer_options"] = [
        {"min_activation_factor": Decimal("1.00"), **option,
         "isps": [{"duration": 1, **isp} for isp in option["isps"]]}
        for option in offer["offer_options"]]
    offer = dict(dated_for_now(offer), sender_domain=AGR_DOMAIN, recipient_domain=DSO_DOMAIN)
    return {k: v for k, v in offer.items()
            if k not in ("message_id", "conversation_id", "time_stamp")}


class Worker:
    def __init__(self, url: str) -> None:
        from pyuftp.signing.crypto import generate_keypair

        self.url = url
        self.private = generate_keypair()[0]
        self.payload = _offer()

    async def round(self, senders: int, seconds: float) -> dict[str, Any]:
        from pyuftp.clients import ShapeshifterAgrDsoClient

        clients = [ShapeshifterAgrDsoClient(AGR_DOMAIN, self.private, DSO_DOMAIN, self.url,
                                            attempts=1) for _ in range(senders)]
        sent = 0
        for c in clients:  # connect first: a round measures steady keep-alive sending
            await c.send_flex_offer(self.payload)

        async def one(c: Any) -> None:
            nonlocal sent
            while time.perf_counter() < deadline:
                await c.send_flex_offer(self.payload)
                sent += 1

        try:
            cpu0 = cpu()
            deadline = time.perf_counter() + seconds
            await asyncio.gather(*(one(c) for c in clients))
            used = cpu() - cpu0
        finally:
            for c in clients:
                await close_client(c)
        return {"us": used / sent * 1e6, "n": sent}

    async def stages(self) -> dict[str, float]:
        """One timing of each stage and floor (µs CPU per call)."""
        import aiohttp
        import nacl.bindings

        import pyuftp
        from pyuftp.message.codec import complete_payload, render
        from pyuftp.rules.enforce import enforcer
        from pyuftp.sending.delivery import Courier
        from pyuftp.signing.crypto import SigningKey
        from pyuftp.signing.envelope import wrap

        key = SigningKey(self.private)
        secret = base_secret(self.private)
        enforce = enforcer(None)
        assert enforce is not None
        courier = Courier(AGR_DOMAIN, key, "AGR", endpoints={(DSO_DOMAIN, "DSO"): self.url})
        full = complete_payload("FlexOffer", self.payload)
        xml = render("FlexOffer", full, "3.1.0")
        data = xml.encode()
        envelope = wrap(data, key, AGR_DOMAIN, "AGR")
        calls: dict[str, Callable[[], Any]] = {
            "complete_payload (fill in + check)": lambda: complete_payload("FlexOffer",
                                                                           self.payload),
            "stateless rules": lambda: enforce("FlexOffer", full),
            "render": lambda: render("FlexOffer", full, "3.1.0"),
            "wrap (sign + base64 + envelope)": lambda: wrap(data, key, AGR_DOMAIN, "AGR"),
            "Courier.seal (all of the above)": lambda: courier.seal(
                "FlexOffer", self.payload, DSO_DOMAIN, "DSO"),
            "create+parse (as bench/messages.py)": lambda: pyuftp.parse_message(
                pyuftp.create_message("FlexOffer", full)),
            "floor: create_message": lambda: pyuftp.create_message("FlexOffer", full),
            "floor: crypto_sign": lambda: nacl.bindings.crypto_sign(data, secret),
        }
        found: dict[str, float] = {}
        async with aiohttp.ClientSession() as session:
            async def post() -> None:
                async with session.post(self.url, data=envelope,
                                        headers={"Content-Type": "text/xml"}) as resp:
                    await resp.read()

            for _ in range(20):
                await post()
            for name, fn in calls.items():
                for _ in range(10):
                    fn()
                n, t0 = 200, time.process_time()
                for _ in range(n):
                    fn()
                found[name] = (time.process_time() - t0) / n * 1e6
            n, t0 = 300, cpu()
            for _ in range(n):
                await post()
            found["floor: bare aiohttp POST, client CPU"] = (cpu() - t0) / n * 1e6
        await courier.close()
        return found


def base_secret(private: str) -> bytes:
    import base64

    return base64.b64decode(private)


def work(url: str) -> None:
    import pyuftp

    worker = Worker(url)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(worker.round(1, 0.2))  # warm-up
    print(f"{PREFIX}ready {json.dumps({'pyuftp': pyuftp.__file__})}", flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "round":
            result: Any = loop.run_until_complete(worker.round(int(rest[0]), float(rest[1])))
        elif command == "stages":
            result = loop.run_until_complete(worker.stages())
        else:
            break
        print(f"{PREFIX}{command} {json.dumps(result)}", flush=True)


# =========================================================================================
# In the benchmark process
# =========================================================================================


class Sender:
    """A worker process for one source tree, driven over stdin/stdout."""

    def __init__(self, tree: str, url: str) -> None:
        self.tree = tree
        env = dict(os.environ, PYTHONPATH=tree + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", url],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1, env=env, cwd=tree)
        self.ready = self.ask(None, "ready")

    def ask(self, command: str | None, kind: str) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(f"{PREFIX}{kind} "):
                return json.loads(line[len(PREFIX) + len(kind) + 1:])
        raise RuntimeError(f"the worker for {self.tree} ended without answering {command!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # only this benchmark's own child, by its Popen handle
            self.proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--compare", nargs="*", default=[], help="other source trees")
    parser.add_argument("--no-stages", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        work(args.worker)
        return
    trees = [os.path.dirname(_HERE)] + [os.path.abspath(t) for t in args.compare]
    bare = Child("bare", {}, 3600)
    senders: list[Sender] = []
    try:
        senders = [Sender(tree, bare.url) for tree in trees]
        for s in senders:
            print(f"tree {s.tree}: pyuftp {s.ready['pyuftp']}")
        print(f"{args.rounds} rounds of {args.seconds:g} s, trees alternating (order flipped "
              "every round); sender CPU µs per send_flex_offer (96-ISP FlexOffer) to a bare "
              "aiohttp server", flush=True)
        figures: dict[tuple[str, int], list[float]] = {}
        for i in range(args.rounds):
            for n in (1, args.senders):
                for s in senders if i % 2 == 0 else senders[::-1]:
                    r = s.ask(f"round {n} {args.seconds}", "round")
                    figures.setdefault((s.tree, n), []).append(r["us"])
                    print(f"  round {i + 1} {n:>2} snd {s.tree}: {r['us']:5.0f} µs "
                          f"({r['n']} msgs)", flush=True)
        print()
        for n in (1, args.senders):
            ours = figures[(trees[0], n)]
            for tree in trees:
                values = figures[(tree, n)]
                # each round's pair ran back to back: their ratio is steadier than the medians'
                paired = [theirs / mine for theirs, mine in zip(values, ours)]
                print(f"{n:>2} sender(s) {tree:<32} {spread(values):>24} µs/msg  "
                      f"{statistics.median(values) / statistics.median(ours):.2f} × this tree "
                      f"(per round: {spread(paired, '.2f')})")
        if not args.no_stages:
            stages: dict[str, dict[str, list[float]]] = {s.tree: {} for s in senders}
            for i in range(7):  # the trees alternate here too
                for s in senders if i % 2 == 0 else senders[::-1]:
                    for name, value in s.ask("stages", "stages").items():
                        stages[s.tree].setdefault(name, []).append(value)
            for s in senders:
                found = stages[s.tree]
                print(f"\nstages of one send, {s.tree} (µs CPU, median [min–max] of 7, "
                      "trees alternating):")
                for name, values in found.items():
                    mine = found[name] if s is senders[0] else stages[trees[0]][name]
                    ratio = statistics.median(values) / statistics.median(mine)
                    print(f"  {name:<42} {spread(values, '.1f'):>24}  {ratio:.2f} × this tree")
                floor = sum(statistics.median(found[k]) for k in (
                    "floor: create_message", "floor: crypto_sign",
                    "floor: bare aiohttp POST, client CPU"))
                one = statistics.median(figures[(s.tree, 1)])
                many = statistics.median(figures[(s.tree, args.senders)])
                print(f"  sender floor (create_message + crypto_sign + bare POST client): "
                      f"{floor:.0f} µs; send, 1 sender: {one / floor:.2f} × the floor, "
                      f"{args.senders} senders: {many / floor:.2f} ×")
    finally:
        for s in senders:
            s.close()
        bare.quit()


if __name__ == "__main__":
    main()
