"""What a key look-up costs: a cache hit of the look-up chain, and a cold DNS look-up.

    python bench/lookup.py [--count N]

A signed test zone is served on 127.0.0.1 by the tests' small authoritative server
(``test/dns_servers.py``, dnspython); a :class:`pyuftp.discovery.LookupChain` with a Directory
and a ``DnsDiscovery`` (built-in DNSSEC validation to the zone's trust anchor) looks keys up.
Printed, per call, median of 7 rounds of N calls: the Directory alone (the floor), the chain
answering from its Directory, the chain answering from its DNS cache (the path every message
from a DNS-published party takes), and a cold look-up (queries + validation) over the socket.
Figures only; the issue's bound for a cache hit is 5 µs.
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "test")]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from dns_servers import AuthServer, ZoneKey, build_zone  # noqa: E402

from pyuftp.signing.crypto import generate_keypair  # noqa: E402
from pyuftp.discovery import Directory, LookupChain  # noqa: E402
from pyuftp.discovery.dns import DnsDiscovery  # noqa: E402


def per_call(fn: Callable[[], Any], count: int, rounds: int = 7) -> tuple[float, float, float]:
    """Median, min and max seconds per call over ``rounds`` rounds of ``count`` calls."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        times.append((time.perf_counter() - start) / count)
    return statistics.median(times), min(times), max(times)


def show(name: str, figures: tuple[float, float, float]) -> None:
    median, low, high = (f * 1e6 for f in figures)
    print(f"  {name:<44} {median:7.2f} µs  [{low:.2f}–{high:.2f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    key1, key2 = generate_keypair()[1], generate_keypair()[1]
    zone_key = ZoneKey("bench.test.")
    records = [f'_agr._usef.a{i} 300 IN TXT "{key1} {key2}"' for i in range(50)]
    server = AuthServer([build_zone("bench.test.", records, zone_key)]).start()
    try:
        directory = Directory()
        directory.add("static.example.com", "AGR", key1)
        dns = DnsDiscovery(server.address, trust_anchors=zone_key.anchor())
        chain = LookupChain(directory, dns)

        async def cold() -> list[float]:
            spent = []
            for i in range(50):
                start = time.perf_counter()
                assert await chain.key(f"a{i}.bench.test", "AGR") == (key1, key2)
                spent.append(time.perf_counter() - start)
            return spent
        cold_times = asyncio.run(cold())
        assert chain.key("a0.bench.test", "AGR") == (key1, key2)   # a plain value: cached
        print(f"key look-up, per call ({args.count} calls x 7 rounds; median [min–max])")
        show("Directory.key (the floor)",
             per_call(lambda: directory.key("static.example.com", "AGR"), args.count))
        show("LookupChain.key, from its Directory",
             per_call(lambda: chain.key("static.example.com", "AGR"), args.count))
        show("LookupChain.key, from the DNS cache",
             per_call(lambda: chain.key("a7.bench.test", "AGR"), args.count))
        show("DnsDiscovery.peek",
             per_call(lambda: dns.peek("keys", "a7.bench.test", "AGR"), args.count))
        first, rest = cold_times[0], statistics.median(cold_times[1:])
        print(f"cold look-up over 127.0.0.1 (TXT + DNSSEC validation): first {first * 1e3:.2f} ms "
              f"(zone keys too), then median {rest * 1e3:.2f} ms; "
              f"{dns.queries} DNS queries for 50 parties")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
