"""Bearer tokens checked on receipt (#19.2): real JWTs signed with keys made here, the issuer's
JWKS served on 127.0.0.1, and a service that answers 401 before it reads a body."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest

from pyuftp.auth import BearerCheck
from pyuftp.clients import ShapeshifterAgrDsoClient
from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery import Directory
from pyuftp.core.exchange import Exchange
from pyuftp.server.service import ShapeshifterDsoService

from conftest import run
from oauth_server import wait_for
from oauth_server import Issuer, make_key, public_jwk

DSO, AGR = "dso.example.com", "agr.example.com"


def jwks_bytes(issuer: Issuer) -> bytes:
    return json.dumps({"keys": [public_jwk(k, kid, issuer.algorithm)
                                for kid, k in issuer.keys.items()]}).encode()


@pytest.fixture(scope="module", params=["ES256", "RS256"])
def issuer(request) -> Issuer:
    return Issuer(algorithm=request.param)  # not started: its keys and tokens only


def loaded(issuer: Issuer, **options: Any) -> BearerCheck:
    check = BearerCheck(issuer.issuer, DSO, "https://issuer.example.com/jwks",
                        algorithms=("RS256", "ES256"), **options)
    check.load_keys(jwks_bytes(issuer), time.time())
    return check


def decide(check: BearerCheck, header: str | None, now: float | None = None) -> str:
    decision = check.check(header, time.time() if now is None else now, may_fetch=False)
    return "ok" if decision.accepted else decision.reason


def test_a_valid_token_is_accepted_with_its_claims(issuer):
    check = loaded(issuer)
    decision = check.check("Bearer " + issuer.jwt(), time.time())
    assert decision.accepted and decision.claims["sub"] == "agr-client"
    assert decide(check, "bearer  " + issuer.jwt()) == "ok"  # scheme is case-insensitive
    assert decide(check, "Bearer " + issuer.jwt(aud=["x.example.com", DSO])) == "ok"


@pytest.mark.parametrize("claims, reason", [
    ({"iss": "https://evil.example.com"}, "issuer (iss)"),
    ({"aud": "agr.example.com"}, "not for this service (aud)"),
    ({"exp": int(time.time()) - 61}, "expired"),
    ({"nbf": int(time.time()) + 120}, "not valid yet"),
    ({"exp": None}, "no exp claim"),
    ({"aud": None}, "no aud claim"),
    ({"exp": "tomorrow"}, "not a number"),
])
def test_wrong_claims_are_refused(issuer, claims, reason):
    assert reason in decide(loaded(issuer), "Bearer " + issuer.jwt(**claims))


def test_clock_skew_within_the_leeway_is_allowed(issuer):
    check = loaded(issuer, leeway=60)
    now = time.time()
    token = "Bearer " + issuer.jwt(exp=int(now) + 10, nbf=int(now) + 30)
    assert decide(check, token, now) == "ok"
    assert decide(check, token, now + 69) == "ok"
    assert "expired" in decide(check, token, now + 71)
    assert "not valid yet" in decide(check, token, now - 31)


def test_a_bad_signature_or_key_is_refused(issuer):
    check = loaded(issuer)
    other = make_key(issuer.algorithm)  # same kid, another key
    assert "signature does not verify" in decide(check, "Bearer " + issuer.jwt(key=other))
    token = issuer.jwt()
    head, body, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert decide(check, f"Bearer {head}.{body}.{flipped}") != "ok"
    assert "key id" in decide(check, "Bearer " + issuer.jwt(kid="unknown-kid"))


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """A JWT signed with HMAC by hand (PyJWT refuses to make the confused ones)."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signing = f"{part(json.dumps(header).encode())}.{part(json.dumps(claims).encode())}"
    return f"{signing}.{part(hmac.new(secret, signing.encode(), hashlib.sha256).digest())}"


def test_algorithm_tricks_are_refused(issuer):
    check = loaded(issuer)
    unsigned = jwt.encode({"iss": issuer.issuer, "aud": DSO, "exp": time.time() + 60}, None,
                          algorithm="none", headers={"kid": issuer.kid})
    assert "algorithm 'none'" in decide(check, "Bearer " + unsigned)
    # HS256 "signed" with the public key's JWK text: the classic confusion.
    secret = json.dumps(public_jwk(issuer.keys[issuer.kid], issuer.kid, issuer.algorithm))
    confused = hs256({"alg": "HS256", "kid": issuer.kid},
                     {"iss": issuer.issuer, "aud": DSO, "exp": time.time() + 60}, secret.encode())
    assert "algorithm 'HS256'" in decide(check, "Bearer " + confused)
    other = "ES256" if issuer.algorithm == "RS256" else "RS256"
    mismatched = issuer.jwt(key=make_key(other), algorithm=other)  # the key's kid, other alg
    assert decide(check, "Bearer " + mismatched) != "ok"
    with pytest.raises(ValueError):
        BearerCheck(issuer.issuer, DSO, "https://x/jwks", algorithms=("HS256",))


@pytest.mark.parametrize("header, reason", [
    (None, "bearer token is required"),
    ("", "bearer token is required"),
    ("Basic YWdyOnNlY3JldA==", "scheme must be Bearer"),
    ("Bearer", "not a JWT"),
    ("Bearer a.b", "not a JWT"),
    ("Bearer a.b.c.d", "not a JWT"),
    ("Bearer !!!.???.###", "not a JWT"),
    ("Bearer x" * 2000, "longer than 8192"),
])
def test_malformed_headers_are_refused(issuer, header, reason):
    assert reason in decide(loaded(issuer), header)


def test_a_token_without_kid_or_signature_is_refused(issuer):
    check = loaded(issuer)
    assert decide(check, "Bearer eyJhbGciOiJFUzI1NiJ9.e30.") != "ok"  # {"alg":"ES256"}.{}.
    two = BearerCheck(issuer.issuer, DSO, "https://x/jwks")
    keys = {"keys": [public_jwk(make_key(issuer.algorithm), kid, issuer.algorithm)
                     for kid in ("a", "b")]}
    two.load_keys(json.dumps(keys).encode(), time.time())
    token = jwt.encode({"iss": issuer.issuer, "aud": DSO, "exp": time.time() + 60},
                       issuer.keys[issuer.kid], algorithm=issuer.algorithm)  # no kid
    assert "names no key id" in decide(two, "Bearer " + token)  # which of two? neither


def test_the_keys_document_is_bounded(issuer):
    check = BearerCheck(issuer.issuer, DSO, "https://x/jwks", max_jwks=1000)
    with pytest.raises(ValueError, match="longer than 1000"):
        check.load_keys(b" " * 1001, 0)
    for document in (b"{", b"[]", b'{"keys": 1}', b'{"keys": [{"kty": "oct", "k": "AAAA"}]}'):
        with pytest.raises(ValueError):
            check.load_keys(document, 0)
    assert check.keys == {}
    many = {"keys": [public_jwk(issuer.keys[issuer.kid], f"k{i}", issuer.algorithm)
                     for i in range(100)]}
    check = BearerCheck(issuer.issuer, DSO, "https://x/jwks")
    assert check.load_keys(json.dumps(many).encode(), 0) == 32  # MAX_KEYS


def test_unknown_key_ids_ask_for_keys_at_most_once_per_interval(issuer):
    check = BearerCheck(issuer.issuer, DSO, "https://x/jwks", refetch_interval=30)
    token = "Bearer " + issuer.jwt()
    assert check.check(token, 100.0).fetch_keys  # nothing loaded yet
    check.fetch_started(100.0)
    check.load_keys(jwks_bytes(issuer), 100.0)
    assert check.check(token, 101.0).accepted
    assert BearerCheck(issuer.issuer, DSO, "https://x/jwks").check(token, 101.0).fetch_keys
    stranger = "Bearer " + issuer.jwt(kid="new-kid")
    decision = check.check(stranger, 110.0)
    assert not decision.fetch_keys and "key id" in decision.reason  # within the interval
    assert check.check(stranger, 131.0).fetch_keys


def test_the_exchange_owns_the_decision_with_its_clock(issuer):
    check = loaded(issuer)
    token = "Bearer " + issuer.jwt(exp=2_000_000_000)
    early = Exchange(DSO, "DSO", bearer=check, clock=lambda: 1_999_999_000)
    assert early.check_bearer(token).fetch_keys  # its keys are old by that clock
    assert early.check_bearer(token, may_fetch=False).accepted
    late = Exchange(DSO, "DSO", bearer=check, clock=lambda: 2_000_000_100)
    assert "expired" in late.check_bearer(token, may_fetch=False).reason
    assert Exchange(DSO, "DSO").check_bearer(token) is None


# --- over HTTP --------------------------------------------------------------------------------


async def status_of_head(port: int, path: str, authorization: str | None) -> bytes:
    """Send a request head that promises a big body, send no body, return the status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: {authorization}\r\n" if authorization is not None else ""
    writer.write((f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8"
                  f"\r\nContent-Length: 1000000\r\n{auth}\r\n").encode())
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


def test_over_http_a_refused_token_is_answered_401_before_the_body():
    async def main():
        async with Issuer() as issuer:
            directory = Directory()
            keys, agr_keys = generate_keypair(), generate_keypair()
            bearer = BearerCheck(issuer.issuer, DSO, issuer.jwks_url, refetch_interval=60)
            dso = ShapeshifterDsoService(DSO, keys[0], directory.key, directory.endpoint,
                                         port=0, bearer=bearer)
            directory.add(AGR, "AGR", agr_keys[1], "http://127.0.0.1:9/x")
            got = []
            dso.add_handler("TestMessage", lambda payload: got.append(payload))
            async with dso:
                for header in (None, "Bearer " + issuer.jwt(aud="agr.example.com"),
                               "Bearer " + issuer.jwt(exp=int(time.time()) - 3600),
                               "Bearer " + issuer.jwt(key=make_key()),
                               "Bearer " + issuer.jwt(iss="https://evil.example.com")):
                    assert (await status_of_head(dso.port, dso.path, header)).startswith(
                        b"HTTP/1.1 401"), header
                assert issuer.jwks_requests == 1
                # a flood of made-up key ids: one more fetch at most within the interval
                for n in range(30):
                    line = await status_of_head(dso.port, dso.path,
                                                "Bearer " + issuer.jwt(kid=f"made-up-{n}"))
                    assert line.startswith(b"HTTP/1.1 401")
                assert issuer.jwks_requests == 1
                # and a good token gets through, body and all
                token = issuer.jwt()
                async with ShapeshifterAgrDsoClient(
                        AGR, agr_keys[0], DSO, dso.url, attempts=1,
                        auth=lambda url: {"Authorization": f"Bearer {token}"}) as agr:
                    await agr.send_test_message({})
                await wait_for(lambda: len(got) == 1)
    run(main())


def test_a_jwks_that_cannot_be_fetched_refuses_and_is_logged(caplog):
    async def main():
        async with Issuer() as issuer:
            token = issuer.jwt()
            bearer = BearerCheck(issuer.issuer, DSO, issuer.jwks_url.replace("/jwks", "/no"))
            directory = Directory()
            dso = ShapeshifterDsoService(DSO, generate_keypair()[0], directory.key,
                                         directory.endpoint, port=0, bearer=bearer)
            async with dso:
                line = await status_of_head(dso.port, dso.path, f"Bearer {token}")
                assert line.startswith(b"HTTP/1.1 401")
    run(main())
    assert "cannot fetch the JWKS" in caplog.text and "HTTP 404" in caplog.text
