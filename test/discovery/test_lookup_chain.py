"""The look-up chain (Directory, DNS, user sources) and a service that takes its keys from
DNS: both keys of a rotation accepted end to end over a socket, a rotated key found again
after a signature failure, failures answered 419 or retried."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery import Directory, LookupChain, Participant
from pyuftp.discovery.dns import DnsDiscovery
from pyuftp.signing.envelope import open_envelope, seal_message
from pyuftp.exceptions import TemporaryDeliveryError
from pyuftp.core.exchange import Exchange
from pyuftp.server.service import ShapeshifterDsoService

from conftest import fresh, run
from dns_servers import AuthServer, ZoneKey, build_zone

AGR = "agr.uftp.test"
PAIRS = [generate_keypair() for _ in range(4)]   # (private, public)
ZONE_KEY = ZoneKey("uftp.test.")


def zone(*publics: str, ttl: int = 60):
    keys = " ".join(publics)
    return build_zone("uftp.test.", [f'_agr._usef.agr {ttl} IN TXT "{keys}"',
                                     f'_agr._usef.rotating {ttl} IN TXT "{keys}"',
                                     "_http._agr._usef.agr 60 IN CNAME host",
                                     f'_agr._usef.bogus 60 IN TXT "{keys}"'], ZONE_KEY)


@pytest.fixture(scope="module")
def server():
    srv = AuthServer([zone(PAIRS[0][1], PAIRS[1][1])]).start()
    yield srv
    srv.stop()


def dns_for(server: AuthServer) -> DnsDiscovery:
    return DnsDiscovery(server.address, trust_anchors=ZONE_KEY.anchor(), timeout=2.0)


def test_the_directory_comes_first_then_dns_then_other_sources(server):
    directory = Directory()
    directory.add("static.example.com", "AGR", PAIRS[2][1], "http://127.0.0.1:1/x")
    asked: list[tuple[str, str]] = []

    async def mine(domain: str, role: str):
        asked.append((domain, role))
        return Participant(domain, role, (PAIRS[3][1],), "http://127.0.0.1:2/y",
                           requires_oauth2=True, authenticated=True, source="mine")
    chain = LookupChain(directory, dns_for(server), mine)
    before = len(server.queries)
    assert chain.key("static.example.com", "AGR") == PAIRS[2][1]     # at once, not awaited
    assert len(server.queries) == before and not asked

    async def scenario():
        assert await chain.key(AGR, "AGR") == (PAIRS[0][1], PAIRS[1][1])
        assert not asked
        assert chain.key(AGR, "AGR") == (PAIRS[0][1], PAIRS[1][1])   # cached: a plain value
        assert await chain.key("elsewhere.uftp.test", "AGR") == (PAIRS[3][1],)
        assert asked == [("elsewhere.uftp.test", "AGR")]
        assert await chain.endpoint(AGR, "AGR") == \
            "https://host.uftp.test/shapeshifter/api/v3/message"
        assert await chain.endpoint("elsewhere.uftp.test", "AGR") == "http://127.0.0.1:2/y"
        found = await chain.lookup("elsewhere.uftp.test", "AGR")
        assert found.requires_oauth2 and found.source == "mine"
        static = await chain.lookup("static.example.com", "AGR")
        assert static.keys == (PAIRS[2][1],) and static.authenticated
    run(scenario())


def test_a_cache_hit_is_cheap(server):
    chain = LookupChain(Directory(), dns_for(server))
    run(chain.key(AGR, "AGR"))
    count = 20_000
    start = time.perf_counter()
    for _ in range(count):
        chain.key(AGR, "AGR")
    per_call = (time.perf_counter() - start) / count
    assert per_call < 25e-6, f"{per_call * 1e6:.1f} µs per cached key look-up"


def test_failures_raise_for_keys_and_become_temporary_delivery_errors(server):
    dead = DnsDiscovery("127.0.0.1:9", trust_anchors=ZONE_KEY.anchor(), timeout=0.2)
    chain = LookupChain(None, dead)
    with pytest.raises(TemporaryDeliveryError, match="no endpoint"):
        run(chain.endpoint(AGR, "AGR"))
    # a failing DNS does not hide a later source that knows the party
    rescue = LookupChain(None, dead, lambda d, r: PAIRS[3][1])
    assert run(rescue._key(AGR, "AGR", True)) == (PAIRS[3][1],)


def test_judge_takes_any_of_the_published_keys():
    exchange = Exchange("dso.example.com", "DSO")
    payload = fresh("TestMessage", sender_domain=AGR, recipient_domain="dso.example.com")
    data, _ = seal_message("TestMessage", payload, PAIRS[1][0], "AGR")
    envelope = open_envelope(data)
    assert exchange.judge(envelope, (PAIRS[0][1], PAIRS[1][1])).status == 200
    assert exchange.judge(envelope, [PAIRS[1][1]]).status == 200
    assert exchange.judge(envelope, (PAIRS[0][1], PAIRS[2][1])).status == 401
    assert exchange.judge(envelope, ("not a key", PAIRS[1][1])).status == 200
    assert exchange.judge(envelope, ("not a key",)).status == 419
    assert exchange.judge(envelope, ()).status == 419
    # at most two keys are tried: a long list costs two signature checks, no more
    assert exchange.judge(envelope, (PAIRS[0][1], PAIRS[2][1], PAIRS[1][1])).status == 401


class Party:
    """A DSO service on 127.0.0.1 that finds senders' keys in DNS, and a sink for its
    answers (the endpoint look-up points there, never off the machine)."""

    def __init__(self, chain: LookupChain) -> None:
        self.chain, self.answers = chain, 0

    async def __aenter__(self) -> "Party":
        async def sink(request: web.Request) -> web.Response:
            await request.read()
            self.answers += 1
            return web.Response(text="OK")
        app = web.Application()
        app.router.add_post("/sink", sink)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.dso = ShapeshifterDsoService(
            "dso.example.com", generate_keypair()[0], self.chain.key,
            lambda d, r: f"http://127.0.0.1:{port}/sink", port=0)
        await self.dso.start()
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()
        await self.dso.stop()
        await self.runner.cleanup()

    async def send(self, private_key: str, domain: str = AGR) -> int:
        payload = fresh("TestMessage", sender_domain=domain, recipient_domain="dso.example.com")
        data, _ = seal_message("TestMessage", payload, private_key, "AGR")
        async with self.session.post(self.dso.url, data=data,
                                     headers={"Content-Type": "text/xml; charset=utf-8"}) as r:
            await r.read()
            return r.status


def test_a_service_accepts_both_keys_of_a_rotation_over_a_socket(server):
    async def scenario():
        async with Party(LookupChain(None, dns_for(server))) as party:
            assert await party.send(PAIRS[0][0]) == 200
            assert await party.send(PAIRS[1][0]) == 200
            assert await party.send(PAIRS[2][0]) == 401     # a key nobody published
            assert await party.send(PAIRS[0][0], "bogus.nowhere.test") == 419
    run(scenario())


def test_a_rotated_key_is_found_again_after_a_signature_failure(server):
    async def scenario():
        chain = LookupChain(None, dns_for(server), refresh_interval=60.0)
        async with Party(chain) as party:
            assert await party.send(PAIRS[0][0], "rotating.uftp.test") == 200  # now cached
            old = server.zones
            server.zones = [zone(PAIRS[2][1])]             # the sender rotated to key 2
            try:
                asked = server.count("_agr._usef.rotating.uftp.test", "TXT")
                assert await party.send(PAIRS[2][0], "rotating.uftp.test") == 200
                assert server.count("_agr._usef.rotating.uftp.test", "TXT") == asked + 1
                # more bad signatures within the refresh interval ask DNS no more
                for _ in range(5):
                    assert await party.send(PAIRS[3][0], "rotating.uftp.test") == 401
                assert server.count("_agr._usef.rotating.uftp.test", "TXT") == asked + 1
            finally:
                server.zones = old
    run(scenario())


def test_an_unauthenticated_key_is_answered_419(server):
    async def scenario():
        unsigned = AuthServer([build_zone("uftp.test.", [
            f'_agr._usef.agr 60 IN TXT "{PAIRS[0][1]}"'], None)]).start()
        try:
            chain = LookupChain(None, dns_for(unsigned))
            async with Party(chain) as party:
                assert await party.send(PAIRS[0][0]) == 419
        finally:
            unsigned.stop()
    run(scenario())


def test_a_client_whose_endpoint_cannot_be_trusted_gets_a_temporary_error():
    from pyuftp.clients import ShapeshifterDsoAgrClient

    async def scenario():
        # The target is a loopback address: even if a regression trusted this answer, the
        # client would knock on 127.0.0.1:443, never ask the system's resolver for a name.
        unsigned = AuthServer([build_zone("uftp.test.", [
            "_http._agr._usef.agr 60 IN CNAME 127.0.0.1."], None)]).start()
        client = ShapeshifterDsoAgrClient("dso.example.com", generate_keypair()[0], AGR,
                                          endpoint_lookup=LookupChain(None,
                                                                      dns_for(unsigned)).endpoint)
        try:
            with pytest.raises(TemporaryDeliveryError, match="not signed") as caught:
                await client.send_test_message({})
            assert caught.value.temporary
        finally:
            await client.close()
            unsigned.stop()
    run(scenario())


def test_sources_may_answer_plain_keys_or_nothing():
    chain = LookupChain(None, None, lambda d, r: None, lambda d, r: ("k",) if d == "a" else None)
    assert run(chain._key("a", "AGR", False)) == ("k",)
    assert run(chain._key("b", "AGR", False)) is None
    with pytest.raises(TypeError, match="expected a Participant"):
        run(LookupChain(None, None, lambda d, r: 42)._key("a", "AGR", False))


def test_a_chain_with_nothing_knows_nothing():
    assert LookupChain().key("a", "AGR") is None
    assert asyncio.run(LookupChain().endpoint("a", "AGR")) is None
