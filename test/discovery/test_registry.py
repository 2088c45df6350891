"""The participant-registry adapter against a local aiohttp server on 127.0.0.1 serving JSON
of the assumed GOPACS participants API v3 shape (see pyuftp/discovery/registry.py)."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery import DiscoveryError, LookupChain, ParticipantRegistry
from pyuftp.discovery.registry import read_entry

from conftest import run

KEY1, KEY2 = generate_keypair()[1], generate_keypair()[1]
TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl"   # passed through, opaque here
PARTICIPANTS = {
    "dso.example.com": [{"domain": "dso.example.com", "role": "DSO", "publicKey": KEY1,
                         "requiresOAuth2": True, "name": "a DSO"}],
    "agr.example.com": [{"uftpDomainName": "agr.example.com", "uftpRole": "AGR",
                         "publicKeys": [KEY1, KEY2]},
                        {"domain": "agr.example.com", "role": "CRO", "signingKey": "garbage"}],
    "odd.example.com": [{"domain": 5, "role": "AGR", "publicKey": KEY1}, "text", None,
                        {"domain": "odd.example.com", "role": "AGR", "publicKey": KEY2}],
}


class Registry:
    """The test server; counts requests, and has a few misbehaving domains."""

    def __init__(self) -> None:
        self.requests = 0

    async def participants(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401)
        domain = request.match_info["domain"]
        if domain == "slow.example.com":
            await asyncio.sleep(2.5)
        if domain == "big.example.com":
            response = web.StreamResponse()   # no Content-Length: the size shows only by reading
            await response.prepare(request)
            for _ in range(40):
                await response.write(b" " * 65536)
            return response
        if domain == "deep.example.com":
            return web.Response(text="[" * 200_000, content_type="application/json")
        if domain == "broken.example.com":
            return web.Response(status=503)
        if domain not in PARTICIPANTS:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(PARTICIPANTS[domain])

    async def contract(self, request: web.Request) -> web.Response:
        self.requests += 1
        entries = [e for entries in PARTICIPANTS.values() for e in entries
                   if isinstance(e, dict) and e.get("role", e.get("uftpRole")) ==
                   request.match_info["role"]]
        return web.json_response({"contract": request.match_info["contract"]} if
                                 request.match_info["contract"] == "none" else entries)


async def serving(scenario) -> None:
    registry = Registry()
    app = web.Application()
    app.router.add_get("/uftp-participants/v3/participants/{domain}", registry.participants)
    app.router.add_get("/uftp-participants/v3/contracts/{contract}/roles/{role}",
                       registry.contract)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        await scenario(base, registry)
    finally:
        await runner.cleanup()


def test_participants_are_read_with_a_bearer_token_and_cached():
    async def scenario(base, server):
        async def token() -> str:
            return TOKEN
        client = ParticipantRegistry(base, token, max_bytes=1024 * 1024)
        try:
            dso = await client.lookup("DSO.example.com", "dso")
            assert dso.keys == (KEY1,) and dso.requires_oauth2 and dso.endpoint is None
            assert dso.source == "registry" and dso.authenticated
            agr = await client.lookup("agr.example.com", "AGR")
            assert agr.keys == (KEY1, KEY2) and not agr.requires_oauth2
            assert await client.lookup("agr.example.com", "CRO") is None   # unusable key
            assert await client.lookup("nobody.example.com", "AGR") is None  # 404
            seen = server.requests
            await client.lookup("dso.example.com", "DSO")
            await client.lookup("nobody.example.com", "AGR")
            assert server.requests == seen                      # both answers cached
            client.invalidate("dso.example.com", "DSO")
            await client.lookup("dso.example.com", "DSO")
            assert server.requests == seen + 1
            odd = await client.lookup("odd.example.com", "AGR")   # bad entries skipped
            assert odd.keys == (KEY2,)
            contract = await client.contract_participants("C-17", "AGR")
            assert [p.domain for p in contract] == ["agr.example.com", "odd.example.com"]
            assert await client.contract_participants("none", "AGR") == []
        finally:
            await client.close()
    run(serving(scenario))


@pytest.mark.parametrize("domain, words", [
    ("slow.example.com", "unreachable"), ("big.example.com", "over 1048576 bytes"),
    ("deep.example.com", "not JSON"), ("broken.example.com", "HTTP 503")])
def test_a_misbehaving_registry_is_a_bounded_temporary_failure(domain, words):
    async def scenario(base, server):
        client = ParticipantRegistry(base, lambda: TOKEN, timeout=1.0)
        try:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(DiscoveryError, match=words) as caught:
                await client.lookup(domain, "AGR")
            assert caught.value.temporary and loop.time() - start < 4.0
        finally:
            await client.close()
    run(serving(scenario))


def test_a_wrong_token_is_a_temporary_failure():
    async def scenario(base, server):
        client = ParticipantRegistry(base, lambda: "expired")
        try:
            with pytest.raises(DiscoveryError, match="HTTP 401"):
                await client.lookup("dso.example.com", "DSO")
        finally:
            await client.close()
    run(serving(scenario))


def test_the_registry_is_one_more_source_in_the_chain():
    async def scenario(base, server):
        client = ParticipantRegistry(base, lambda: TOKEN)
        try:
            chain = LookupChain(None, None, client.lookup)
            assert await chain.key("agr.example.com", "AGR") == (KEY1, KEY2)
            found = await chain.lookup("dso.example.com", "DSO")
            assert found.requires_oauth2
            assert await chain.endpoint("dso.example.com", "DSO") is None   # none published
            seen = server.requests
            chain.invalidate("agr.example.com", "AGR")        # reaches the registry's cache
            await chain.key("agr.example.com", "AGR")
            assert server.requests == seen + 1
        finally:
            await client.close()
    run(serving(scenario))


def test_a_flood_of_look_ups_shares_requests_and_a_failing_token_is_temporary():
    async def scenario(base, server):
        client = ParticipantRegistry(base, lambda: TOKEN)
        try:
            found = await asyncio.gather(*(client.lookup("agr.example.com", "AGR")
                                           for _ in range(50)))
            assert server.requests == 1 and all(f.keys == (KEY1, KEY2) for f in found)
        finally:
            await client.close()

        def broken() -> str:
            raise RuntimeError("secret-in-message")
        failing = ParticipantRegistry(base, broken)
        try:
            with pytest.raises(DiscoveryError, match="token provider failed: RuntimeError") \
                    as caught:
                await failing.lookup("dso.example.com", "DSO")
            assert "secret" not in str(caught.value)
        finally:
            await failing.close()
    run(serving(scenario))


def test_plain_http_only_on_loopback():
    with pytest.raises(ValueError, match="https"):
        ParticipantRegistry("http://registry.example.com")
    ParticipantRegistry("https://registry.example.com")


def test_entries_of_the_wrong_shape():
    assert read_entry([1, 2]) is None
    assert read_entry({"domain": "a.example.com", "role": "AGR", "publicKeys": []}) is None
    with pytest.raises(DiscoveryError):
        read_entry({"domain": "a.example.com", "role": "AGR", "publicKeys": "x"})
    with pytest.raises(DiscoveryError):
        read_entry({"domain": "a.example.com", "role": "XYZ", "publicKey": KEY1})
    assert json.dumps(PARTICIPANTS)  # the served shape is plain JSON
