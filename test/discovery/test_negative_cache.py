"""pyuftp.discovery.cache: failed key look-ups remembered briefly, in bounded memory. (The
service wiring is tested against a real service in test_attacks_second.py.)"""
from __future__ import annotations

import asyncio
import logging
import tracemalloc

import pytest

from pyuftp.discovery import Directory
from pyuftp.discovery.cache import MAX_NAME, NegativeCache, cached_lookup
from pyuftp.server.limits import ExcerptFilter, Gate, Limits, client_address
from pyuftp import generate_keypair
from conftest import run

_, PUBLIC = generate_keypair()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counting(directory: Directory, calls: list[tuple[str, str]]):
    def lookup(domain: str, role: str) -> str | None:
        calls.append((domain, role))
        return directory.key(domain, role)
    return lookup


def test_a_missing_key_is_looked_up_once_until_the_ttl_passes():
    directory, calls, clock = Directory(), [], Clock()
    cache = NegativeCache(counting(directory, calls), ttl=30.0, clock=clock)
    assert [cache("x.example.com", "AGR") for _ in range(50)] == [None] * 50
    assert len(calls) == 1 and cache.hits == 49
    clock.now += 29.9
    assert cache("x.example.com", "AGR") is None and len(calls) == 1
    clock.now += 0.2
    assert cache("x.example.com", "AGR") is None and len(calls) == 2
    assert cache("x.example.com", "DSO") is None and len(calls) == 3  # the role counts


def test_found_keys_and_errors_are_not_remembered():
    directory, calls = Directory(), []
    directory.add("a.example.com", "AGR", PUBLIC, None)
    cache = cached_lookup(counting(directory, calls))
    assert cache("a.example.com", "AGR") == PUBLIC == cache("a.example.com", "AGR")
    assert len(calls) == 2 and len(cache) == 0

    failures = []

    def broken(domain: str, role: str) -> str | None:
        failures.append(domain)
        raise OSError("registry down")

    cache = cached_lookup(broken)
    for _ in range(3):
        with pytest.raises(OSError):
            cache("b.example.com", "AGR")
    assert len(failures) == 3 and len(cache) == 0


def test_forget_makes_a_new_key_count_at_once():
    directory, calls = Directory(), []
    cache = cached_lookup(counting(directory, calls))
    assert cache("late.example.com", "AGR") is None
    directory.add("late.example.com", "AGR", PUBLIC, None)
    assert cache("late.example.com", "AGR") is None  # remembered
    cache.forget("late.example.com", "AGR")
    assert cache("late.example.com", "AGR") == PUBLIC


def test_async_lookups_are_cached_and_concurrent_ones_share_a_call():
    calls = []

    async def lookup(domain: str, role: str) -> str | None:
        calls.append(domain)
        await asyncio.sleep(0.05)
        return None

    async def scenario():
        cache = cached_lookup(lookup)
        answers = await asyncio.gather(*[cache("x.example.com", "AGR") for _ in range(20)])
        assert answers == [None] * 20 and len(calls) == 1
        assert await cache("x.example.com", "AGR") is None and len(calls) == 1
    run(scenario(), 10)


def test_memory_stays_bounded_with_100000_unknown_domains():
    calls = [0]

    def lookup(domain: str, role: str) -> None:
        calls[0] += 1

    cache = NegativeCache(lookup, ttl=30.0, size=10_000)
    tracemalloc.start()
    try:
        for n in range(100_000):
            cache(f"unknown-{n}.example.com", "AGR")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(cache) == 10_000 and calls[0] == 100_000
    assert peak < 4 * 1024 * 1024, peak  # 10,000 entries; 100,000 would take about 20 MB
    assert cache("unknown-99999.example.com", "AGR") is None and calls[0] == 100_000
    assert cache("unknown-0.example.com", "AGR") is None and calls[0] == 100_001  # evicted
    long = "x" * (MAX_NAME + 1)
    cache(long, "AGR")
    cache(long, "AGR")
    assert calls[0] == 100_003 and len(cache) == 10_000  # too long for a domain: never kept


def test_http_log_lines_are_rate_limited_with_a_count_of_the_rest():
    records = []
    log = logging.getLogger("test.http.ratelimit")
    log.propagate = False
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    log.addHandler(handler)
    log.addFilter(ExcerptFilter(lines=3, interval=0.2))
    from aiohttp.http_exceptions import BadHttpMessage
    for _ in range(20):
        try:
            raise BadHttpMessage("bad\nheader " + "x" * 10_000)
        except BadHttpMessage as exc:
            log.exception("Error handling request from %s", "127.0.0.2", exc_info=exc)
    assert len(records) == 3
    assert all(r.levelno == logging.WARNING and len(r.getMessage()) < 400 for r in records)
    assert all("\n" not in r.getMessage() for r in records)
    import time
    time.sleep(0.25)
    log.error("an error of our own")
    assert records[-1].levelno == logging.ERROR  # not a client's fault: stays an ERROR
    assert "17 more lines of pyuftp.http left out" in records[-1].getMessage()


def test_client_addresses_count_ipv6_by_its_64_and_mapped_ipv4_as_ipv4():
    assert client_address(("127.0.0.2", 5000)) == "127.0.0.2"
    assert client_address(("2001:db8::1", 5000, 0, 0)) == client_address(("2001:db8::ff", 1, 0, 0))
    assert client_address(("2001:db8::1", 1, 0, 0)) != client_address(("2001:db8:0:1::1", 1, 0, 0))
    assert client_address(("::ffff:10.0.0.1", 1, 0, 0)) == "10.0.0.1"
    assert client_address(None) == ""


def test_the_gate_counts_exactly_and_frees_what_it_counted():
    gate = Gate(cap=4, share=Limits(max_connections=4).address_share())
    assert gate.share == 1
    assert [gate.admit(a) for a in ("a", "a", "b", "c", "d", "e")] == \
        [True, False, True, True, True, False]
    assert gate.open == 4 == gate.peak
    for address in ("a", "b", "c", "d"):
        gate.release(address)
    assert gate.open == 0 and gate.by_address == {}


def test_a_party_added_to_the_directory_is_found_at_once():
    # the race of three parties starting together: asked about before it was added, the
    # party must not be refused for the cache's whole TTL once it is there
    directory = Directory()
    cache = NegativeCache(directory.key, ttl=30.0)
    assert cache("dso.example.com", "DSO") is None
    assert cache("dso.example.com", "DSO") is None and cache.calls == 1  # remembered
    public = generate_keypair()[1]
    directory.add("dso.example.com", "DSO", public)
    assert cache("dso.example.com", "DSO") == public and cache.calls == 2
