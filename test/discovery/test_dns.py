"""DNS discovery against a real authoritative server on 127.0.0.1 serving zones signed at
test time: DNSSEC validation to a trust anchor, CNAME chains and loops, TTLs, negative
caching, the concurrency bound, and the record parsers under hostile input."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery.dns import DnsDiscovery, parse_resolver
from pyuftp.discovery.records import (
    DiscoveryError,
    endpoint_url,
    key_name,
    parse_keys,
    parse_target,
    parse_version,
    txt_text,
)

from conftest import run
from dns_servers import AuthServer, ZoneKey, build_zone, corrupt

KEY1, KEY2, KEY3 = (generate_keypair()[1] for _ in range(3))
PARENT_KEY, CHILD_KEY, OTHER_KEY = ZoneKey("uftp.test."), ZoneKey("dso.uftp.test."), \
    ZoneKey("other.test.")
STALE_KEY = ZoneKey("stale.test.")
HOST = "https://host.uftp.test/shapeshifter/api/v3/message"


def parent_records() -> list[str]:
    loop = ["_http._dso._usef.loop 60 IN CNAME a.loop", "a.loop 60 IN CNAME b.loop",
            "b.loop 60 IN CNAME a.loop"]
    long = [f"hop{i} 60 IN CNAME hop{i + 1}" for i in range(12)]
    return [
        '_usef.agr 60 IN TXT "3.0.0"',
        f'_agr._usef.agr 60 IN TXT "{KEY1} {KEY2}"',          # a key rotation under way
        "_http._agr._usef.agr 60 IN CNAME hop9",              # hop9 -> hop10 -> ... -> host
        "hop12 60 IN CNAME host", "host 60 IN A 127.0.0.1",
        "_http._agr._usef.long 60 IN CNAME hop0", *long, *loop,
        f'_agr._usef.bogus 60 IN TXT "{KEY1}"',
        f'_agr._usef.ttl 5 IN TXT "{KEY1}"',
        f'_cro._usef.alias 60 IN TXT "{KEY3}"', "_agr._usef.alias 60 IN CNAME _cro._usef.alias",
        "_usef.big 60 IN TXT " + " ".join(['"' + "v" * 200 + '"'] * 8),
        "dso 60 IN NS ns.test.", f"dso 60 IN DS {CHILD_KEY.ds.to_text()}",
        "insecure 60 IN NS ns.test.",                         # delegated without a DS
    ]


@pytest.fixture(scope="module")
def server():
    parent = build_zone("uftp.test.", parent_records(), PARENT_KEY)
    corrupt(parent, "_agr._usef.bogus.uftp.test.", "TXT", f'"{KEY3}"')   # a forged key
    child = build_zone("dso.uftp.test.", [f'_dso._usef 60 IN TXT "{KEY3}"',
                                          "_http._dso._usef 60 IN CNAME host.uftp.test."],
                       CHILD_KEY)
    insecure = build_zone("insecure.uftp.test.", [f'_agr._usef 60 IN TXT "{KEY1}"'],
                          ZoneKey("insecure.uftp.test."))
    unsigned = build_zone("plain.test.", [f'_agr._usef.agr 60 IN TXT "{KEY1}"'], None)
    other = build_zone("other.test.", [f'_agr._usef.agr 60 IN TXT "{KEY1}"'], OTHER_KEY)
    stale = build_zone("stale.test.", [f'_agr._usef.agr 60 IN TXT "{KEY1}"'], STALE_KEY,
                       expired=True)
    srv = AuthServer([parent, child, insecure, unsigned, other, stale]).start()
    yield srv
    srv.stop()


def discovery(server: AuthServer, **options) -> DnsDiscovery:
    return DnsDiscovery(server.address, trust_anchors=PARENT_KEY.anchor(), timeout=2.0,
                        **options)


def test_both_keys_of_a_rotation_the_version_and_a_cname_chain(server):
    found = run(discovery(server).lookup("AGR.uftp.test.", "agr"))
    assert found.keys == (KEY1, KEY2)
    assert found.version == "3.0.0" and found.endpoint == HOST
    assert found.authenticated and (found.domain, found.role) == ("agr.uftp.test", "AGR")


def test_a_delegated_zone_is_trusted_through_its_ds_record(server):
    found = run(discovery(server).lookup("dso.uftp.test", "DSO"))
    assert found.keys == (KEY3,) and found.endpoint == HOST and found.authenticated
    assert server.count("dso.uftp.test", "DS") >= 1


def test_a_key_record_behind_a_cname_is_followed(server):
    assert run(discovery(server).keys("alias.uftp.test", "AGR")) == (KEY3,)


@pytest.mark.parametrize("domain, words", [("loop.uftp.test", "loop"),
                                           ("long.uftp.test", "longer than")])
def test_a_cname_loop_or_a_long_chain_is_a_temporary_failure(server, domain, words):
    role = "DSO" if domain.startswith("loop") else "AGR"
    with pytest.raises(DiscoveryError, match=words) as caught:
        run(discovery(server).endpoint(domain, role))
    assert caught.value.temporary and caught.value.http_status == 419


def test_a_bogus_signature_is_refused(server):
    with pytest.raises(DiscoveryError, match="validation") as caught:
        run(discovery(server).keys("bogus.uftp.test", "AGR"))
    assert caught.value.temporary


@pytest.mark.parametrize("domain", ["agr.plain.test", "insecure.uftp.test", "agr.other.test"])
def test_unauthenticated_answers_are_refused_unless_insecure(server, domain, caplog):
    # unsigned zone; a delegation without DS; a zone signed under no configured anchor
    with pytest.raises(DiscoveryError) as caught:
        run(discovery(server).keys(domain, "AGR"))
    assert caught.value.temporary
    insecure = discovery(server, insecure_skip_dnssec=True)
    found = run(insecure.lookup(domain, "AGR"))
    assert found.keys == (KEY1,) and not found.authenticated


def test_expired_signatures_are_refused(server):
    anchors = f"{PARENT_KEY.anchor()}\n{STALE_KEY.anchor()}"
    dns = DnsDiscovery(server.address, trust_anchors=anchors, timeout=2.0)
    with pytest.raises(DiscoveryError, match="DNSKEY set of stale.test|validation") as caught:
        run(dns.keys("agr.stale.test", "AGR"))
    assert caught.value.temporary
    assert run(dns.keys("agr.uftp.test", "AGR")) == (KEY1, KEY2)    # the other anchor serves


def test_a_dnskey_line_is_a_trust_anchor_too(server):
    anchor = f"uftp.test. IN DNSKEY {PARENT_KEY.dnskey.to_text()}"
    dns = DnsDiscovery(server.address, trust_anchors=anchor, timeout=2.0)
    assert run(dns.lookup("dso.uftp.test", "DSO")).authenticated
    wrong = f"uftp.test. IN DNSKEY {CHILD_KEY.dnskey.to_text()}"
    with pytest.raises(DiscoveryError, match="matches"):
        run(DnsDiscovery(server.address, trust_anchors=wrong).keys("agr.uftp.test", "AGR"))
    for bad in ("", "uftp.test. IN A 127.0.0.1", "uftp.test. IN DS 1 2 3 zz"):
        with pytest.raises(ValueError, match="trust anchor"):
            DnsDiscovery(server.address, trust_anchors=bad or "; nothing")


def test_without_any_dnssec_choice_nothing_is_made(server):
    with pytest.raises(ValueError, match="DNSSEC is mandatory"):
        DnsDiscovery(server.address)


def test_trusting_the_ad_bit_of_a_validating_resolver(server):
    plain = DnsDiscovery(server.address, trust_ad=True)
    with pytest.raises(DiscoveryError, match="AD bit"):   # this server does not validate
        run(plain.keys("agr.uftp.test", "AGR"))
    server.set_ad = True                                  # now it says it did
    try:
        found = run(DnsDiscovery(server.address, trust_ad=True).lookup("agr.uftp.test", "AGR"))
    finally:
        server.set_ad = False
    assert found.keys == (KEY1, KEY2) and found.authenticated


def test_answers_are_cached_for_their_ttl_then_asked_again(server):
    now = [1000.0]
    dns = discovery(server, clock=lambda: now[0])
    name = key_name("ttl.uftp.test", "AGR")
    before = server.count(name)
    assert run(dns.keys("ttl.uftp.test", "AGR")) == (KEY1,)
    assert dns.peek("keys", "ttl.uftp.test", "AGR") == (KEY1,)      # the cache hit
    now[0] += 4.0
    run(dns.keys("ttl.uftp.test", "AGR"))
    assert server.count(name) == before + 1
    now[0] += 1.5                                                   # the 5 s TTL is over
    run(dns.keys("ttl.uftp.test", "AGR"))
    assert server.count(name) == before + 2
    dns.invalidate("ttl.uftp.test", "AGR")                          # after a signature failed
    run(dns.keys("ttl.uftp.test", "AGR"))
    assert server.count(name) == before + 3


def test_not_found_is_cached_for_a_short_time(server):
    now = [0.0]
    dns = discovery(server, clock=lambda: now[0], negative_ttl=10.0)
    name = key_name("nobody.uftp.test", "AGR")
    before = server.count(name)

    async def many():
        return await asyncio.gather(*(dns.keys("nobody.uftp.test", "AGR") for _ in range(50)))
    assert run(many()) == [()] * 50
    assert run(dns.keys("nobody.uftp.test", "AGR")) == ()
    assert server.count(name) == before + 1           # 51 look-ups, one query
    now[0] += 11.0
    run(dns.keys("nobody.uftp.test", "AGR"))
    assert server.count(name) == before + 2


def test_the_cache_is_bounded_least_recently_used_first(server):
    dns = discovery(server, max_entries=6)
    for i in range(5):
        run(dns.keys(f"lru{i}.uftp.test", "AGR"))
    assert len(dns._cache) <= 6
    first = key_name("lru0.uftp.test", "AGR")
    before = server.count(first)
    run(dns.keys("lru4.uftp.test", "AGR"))              # still there: no query
    run(dns.keys("lru0.uftp.test", "AGR"))              # pushed out: asked again
    assert server.count(first) == before + 1
    assert server.count(key_name("lru4.uftp.test", "AGR")) == 1


def test_a_big_answer_comes_over_tcp(server):
    # Eight 200-byte strings do not fit a UDP answer: truncated, asked again over TCP, read.
    with pytest.raises(DiscoveryError, match="too long") as caught:
        run(discovery(server).version("big.uftp.test"))
    assert not caught.value.temporary


def test_a_flood_of_unknown_domains_makes_bounded_queries_and_keeps_the_loop_free(server):
    server.delay = 0.05
    dns = discovery(server, max_concurrent=4, max_waiting=40)
    server.max_in_flight = 0
    start = len(server.queries)
    gaps: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            gaps.append(time.perf_counter() - before - 0.005)

    async def flood():
        stop = asyncio.Event()
        tick = asyncio.ensure_future(ticker(stop))
        results = await asyncio.gather(*(dns.keys(f"u{i}.unknown.uftp.test", "AGR")
                                         for i in range(300)), return_exceptions=True)
        stop.set()
        await tick
        return results
    try:
        results = run(flood())
    finally:
        server.delay = 0.0
    refused = [r for r in results if isinstance(r, DiscoveryError)]
    assert all(r == () or (isinstance(r, DiscoveryError) and r.temporary) for r in results)
    assert refused and "too many" in str(refused[0])
    sent = len(server.queries) - start
    assert sent == dns.queries <= 4 + 40 + 4          # the semaphore and the waiting room
    assert server.max_in_flight <= 4 and dns.max_in_flight <= 4
    assert max(gaps) < 0.5, f"the event loop stalled {max(gaps):.3f} s"


def test_a_dead_resolver_is_a_temporary_failure():
    dns = DnsDiscovery("127.0.0.1:9", trust_anchors=PARENT_KEY.anchor(), timeout=0.3)
    with pytest.raises(DiscoveryError) as caught:
        run(dns.keys("agr.uftp.test", "AGR"))
    assert caught.value.temporary
    with pytest.raises(DiscoveryError):            # the failure is cached a few seconds
        dns.peek("keys", "agr.uftp.test", "AGR")


def test_a_name_too_long_for_dns_is_a_final_failure(server):
    domain = ".".join(["a" * 60] * 4)                  # a host name, but not with _usef
    with pytest.raises(DiscoveryError, match="usable DNS name") as caught:
        run(discovery(server).keys(domain, "AGR"))
    assert not caught.value.temporary


def test_resolver_addresses():
    assert parse_resolver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_resolver("::1") == ("::1", 53)
    assert parse_resolver("[::1]:53") == ("::1", 53)
    for bad in ("dns.example.com", "127.0.0.1:0", "[::1]x"):
        with pytest.raises(ValueError):
            parse_resolver(bad)


# --- the lookup command -----------------------------------------------------------------------


def lookup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyuftp", "lookup", *args],
                          capture_output=True, text=True, timeout=60)


def test_the_lookup_command(server, tmp_path):
    anchor = tmp_path / "anchors.txt"
    anchor.write_text(f"; test anchor\n{PARENT_KEY.anchor()}\n")
    good = lookup("agr.uftp.test", "AGR", "--resolver", server.address,
                  "--trust-anchor", str(anchor))
    assert good.returncode == 0, good.stdout + good.stderr
    assert KEY1 in good.stdout and KEY2 in good.stdout and "rotation" in good.stdout
    assert HOST in good.stdout and "3.0.0" in good.stdout and "authenticated" in good.stdout
    bogus = lookup("bogus.uftp.test", "AGR", "--resolver", server.address,
                   "--trust-anchor", str(anchor))
    assert bogus.returncode == 1 and "validation" in bogus.stdout
    plain = lookup("agr.plain.test", "AGR", "--resolver", server.address,
                   "--trust-anchor", str(anchor), "--insecure")
    assert plain.returncode == 1 and KEY1 in plain.stdout
    assert "NOT AUTHENTICATED" in plain.stdout and "OFF" in plain.stderr
    assert lookup("agr.uftp.test", "AGR", "--resolver", "a.name").returncode == 2
    assert lookup("agr.uftp.test", "XYZ").returncode == 2


# --- the parsers under hostile input ----------------------------------------------------------

HOSTILE = st.one_of(st.text(max_size=300), st.binary(max_size=300).map(
    lambda b: b.decode("latin-1")), st.sampled_from(["cs1.", "cs1." + "A" * 5000, "*.a", "a..b",
                                                     "\\000.a", "a" * 64 + ".b", "-a.b", ""]))


@seed(19)
@settings(max_examples=300, deadline=200, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(HOSTILE, max_size=4), raw=st.lists(st.binary(max_size=300), max_size=4))
def test_record_parsers_take_hostile_values(texts, raw):
    for parse in (parse_keys, parse_version):
        try:
            parse(texts)
        except DiscoveryError as exc:
            assert not exc.temporary and len(str(exc)) < 400
    for text in texts:
        try:
            assert parse_target(text) == parse_target(text).lower()
            assert endpoint_url(text).startswith("https://")
        except DiscoveryError as exc:
            assert len(str(exc)) < 400
    try:
        assert txt_text(raw).isprintable()
    except DiscoveryError as exc:
        assert len(str(exc)) < 400


def test_parsers_keep_what_is_good():
    assert parse_keys([f"  {KEY1}   {KEY1} "]) == (KEY1,)
    assert parse_keys([f"{KEY1}", f"{KEY2}"]) == (KEY1, KEY2)
    with pytest.raises(DiscoveryError, match="more than 2"):
        parse_keys([f"{KEY1} {KEY2} {KEY3}"])
    assert parse_version(["", " 3.1.0 "]) == "3.1.0"
    assert parse_target("Host.Example.COM.") == "host.example.com"
