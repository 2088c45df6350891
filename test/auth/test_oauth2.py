"""OAuth2 client credentials out (#19.2): a real token endpoint and a real DSO service that
checks the tokens against the issuer's JWKS, all on 127.0.0.1."""
from __future__ import annotations

import asyncio
import logging
import socket
from contextlib import asynccontextmanager
from typing import Any

import pytest

from pyuftp.auth import BearerCheck, ClientCredentials, OAuth2Clients
from pyuftp.clients import ShapeshifterAgrDsoClient
from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery import Directory
from pyuftp.exceptions import FinalDeliveryError, TemporaryDeliveryError
from pyuftp.server.service import ShapeshifterDsoService

from conftest import run
from oauth_server import Issuer, wait_for

SECRET = "s3cret-Value"
DSO, AGR = "dso.example.com", "agr.example.com"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def dso_with_bearer(issuer: Issuer, **check: Any):
    """A DSO service that demands the issuer's tokens; yields (service, received types)."""
    directory = Directory()
    dso_keys, agr_keys = generate_keypair(), generate_keypair()
    bearer = BearerCheck(issuer.issuer, DSO, issuer.jwks_url, **{"refetch_interval": 0, **check})
    service = ShapeshifterDsoService(DSO, dso_keys[0], directory.key, directory.endpoint,
                                     port=0, bearer=bearer, client_options={"attempts": 1})
    received: list[str] = []
    service.add_handler("TestMessage", lambda payload: received.append(payload["message_id"]))
    directory.add(AGR, "AGR", agr_keys[1], "http://127.0.0.1:9/unused")
    async with service:
        service.agr_key = agr_keys[0]
        yield service, received


def client(service: ShapeshifterDsoService, auth: Any) -> ShapeshifterAgrDsoClient:
    return ShapeshifterAgrDsoClient(AGR, service.agr_key, DSO, service.url, auth=auth,
                                    attempts=1, send_timeout=10)


def credentials(issuer: Issuer, **options: Any) -> ClientCredentials:
    return ClientCredentials(issuer.token_url, "agr-client", SECRET, scope="uftp",
                             audience=DSO, **options)


def test_a_token_is_fetched_once_and_sent_as_its_type():
    async def main():
        async with Issuer() as issuer, dso_with_bearer(issuer) as (dso, received):
            oauth = OAuth2Clients({(DSO, "DSO"): credentials(issuer)})
            async with client(dso, oauth) as agr:
                for _ in range(3):
                    await agr.send_test_message({})
            await wait_for(lambda: len(received) == 3)
            assert issuer.token_requests == 1
            form = issuer.forms[0]
            assert form == {"grant_type": "client_credentials", "scope": "uftp",
                            "audience": DSO}  # the secret went as HTTP Basic
            assert oauth._tokens[credentials(issuer)].header.startswith("Bearer ey")
    run(main())


def test_credentials_as_form_fields():
    async def main():
        async with Issuer() as issuer, dso_with_bearer(issuer) as (dso, received):
            oauth = OAuth2Clients({DSO: credentials(issuer, auth_method="post")})
            async with client(dso, oauth) as agr:
                await agr.send_test_message({})
            assert issuer.forms[0]["client_id"] == "agr-client"
            await wait_for(lambda: len(received) == 1)
    run(main())


@pytest.mark.parametrize("expires_in, renewed_after", [(100, 70.0), ("100", 70.0),
                                                       (20, 10.0), (None, 270.0)])
def test_a_token_is_renewed_shortly_before_it_expires(expires_in, renewed_after):
    async def main():
        clock = Clock()
        async with Issuer(expires_in=expires_in) as issuer:
            oauth = OAuth2Clients({DSO: credentials(issuer)}, clock=clock)
            creds = credentials(issuer)
            first = await oauth.token(creds)
            clock.now += renewed_after - 0.5
            assert await oauth.token(creds) is first
            assert issuer.token_requests == 1
            clock.now += 1.0
            assert await oauth.token(creds) is not first
            assert issuer.token_requests == 2
    run(main())


def test_a_refused_token_is_renewed_and_the_post_tried_once_more():
    async def main():
        # The DSO refetches the issuer's keys for every request (max_key_age=0) ...
        async with Issuer() as issuer, dso_with_bearer(issuer, max_key_age=0) as (dso, received):
            oauth = OAuth2Clients({(DSO, "DSO"): credentials(issuer)})
            async with client(dso, oauth) as agr:
                await agr.send_test_message({})
                # ... and the issuer rotates its key: the cached token is still "fresh" to
                # the client, but the DSO no longer finds its key and answers 401.
                issuer.rotate(drop_old=True)
                await agr.send_test_message({})
            await wait_for(lambda: len(received) == 2)
            assert issuer.token_requests == 2
            assert issuer.jwks_requests == 3  # per request: the first, the 401, the retry
    run(main())


def test_a_second_401_is_final():
    async def main():
        async with Issuer() as issuer, dso_with_bearer(issuer) as (dso, received):
            wrong = ClientCredentials(issuer.token_url, "agr-client", SECRET,
                                      audience="someone-else.example.com")
            async with client(dso, OAuth2Clients({DSO: wrong})) as agr:
                with pytest.raises(FinalDeliveryError) as caught:
                    await agr.send_test_message({})
            assert caught.value.status == 401
            assert "aud" in str(caught.value)
            assert issuer.token_requests == 2  # one, and one fresh try: no more
            assert received == []
    run(main())


def test_concurrent_sends_share_one_token_request():
    async def main():
        async with Issuer(delay=0.3) as issuer, dso_with_bearer(issuer) as (dso, received):
            oauth = OAuth2Clients({DSO: credentials(issuer)})
            async with client(dso, oauth) as agr:
                await asyncio.gather(*(agr.send_test_message({}) for _ in range(12)))
            assert issuer.token_requests == 1
            await wait_for(lambda: len(received) == 12)
    run(main())


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_token_endpoint_that_is_down_is_a_temporary_error_naming_it():
    async def main():
        async with Issuer() as issuer, dso_with_bearer(issuer) as (dso, received):
            url = f"http://127.0.0.1:{closed_port()}/token"
            down = ClientCredentials(url, "agr-client", SECRET)
            async with client(dso, OAuth2Clients({DSO: down})) as agr:
                with pytest.raises(TemporaryDeliveryError) as caught:
                    await agr.send_test_message({})
            text = str(caught.value)
            assert "OAuth2 token for dso.example.com (DSO)" in text
            assert url in text and "cannot reach it" in text
            assert received == []
    run(main())


@pytest.mark.parametrize("status, body, cause", [
    (401, '{"error": "invalid_client"}', "HTTP 401: invalid_client"),
    (500, "<html>oops</html>", "HTTP 500: <html>oops</html>"),
    (200, "[1, 2]", "not a JSON object"),
    (200, '{"token_type": "Bearer"}', "no access_token"),
    (200, '{"access_token": "a\\r\\nX-Evil: 1"}', "printable ASCII"),
    (200, '{"access_token": "abc", "expires_in": -5}', "expires_in"),
    (200, '{"access_token": "abc", "token_type": "Bearer x"}', "token_type"),
])
def test_a_token_endpoint_answering_nonsense_is_a_temporary_error(status, body, cause):
    async def main():
        async with Issuer() as issuer:
            issuer.fail_with = (status, body)
            oauth = OAuth2Clients({DSO: credentials(issuer)})
            with pytest.raises(TemporaryDeliveryError) as caught:
                await oauth.headers_for("https://dso.example.com/x", (DSO, "DSO"))
            assert cause in str(caught.value)
            assert issuer.token_requests == 1
    run(main())


def test_secrets_and_tokens_appear_in_no_repr_error_or_log(caplog):
    caplog.set_level(logging.DEBUG)

    async def main():
        async with Issuer() as issuer, dso_with_bearer(issuer) as (dso, _received):
            creds = credentials(issuer)
            oauth = OAuth2Clients({DSO: creds})
            async with client(dso, oauth) as agr:
                await agr.send_test_message({})
            token = oauth._tokens[creds].header.split()[1]
            shown = [repr(creds), repr(oauth), repr(oauth._tokens[creds]), str(creds)]
            # An endpoint that echoes what it got, secret and Basic header included.
            issuer.fail_with = (400, f"bad {SECRET} and {issuer.forms[0]} "
                                     "YWdyLWNsaWVudDpzM2NyZXQtVmFsdWU=")
            oauth._tokens.clear()
            with pytest.raises(TemporaryDeliveryError) as caught:
                await oauth.headers_for(dso.url, (DSO, "DSO"))
            shown.append(str(caught.value))
            return token, shown

    token, shown = run(main())
    shown.append(caplog.text)
    assert "***" in shown[-2]
    for text in shown:
        assert SECRET not in text and token not in text
        assert "YWdyLWNsaWVudDpzM2NyZXQtVmFsdWU=" not in text


def test_which_recipients_get_a_token():
    oauth = OAuth2Clients({
        ("dso.example.com", "DSO"): ClientCredentials("https://a.example/t", "a", "x"),
        "cro.example.com": ClientCredentials("https://b.example/t", "b", "x"),
        "https://gopacs.example/uftp/": ClientCredentials("https://c.example/t", "c", "x"),
    })
    found = oauth.credentials_for
    assert found("https://any/", ("dso.example.com", "DSO")).client_id == "a"
    assert found("https://any/", ("dso.example.com", "AGR")) is None
    assert found("https://any/", ("cro.example.com", "CRO")).client_id == "b"
    assert found("https://gopacs.example/uftp/v3/message", None).client_id == "c"
    assert found("https://gopacs.example/other", ("x.example.com", "DSO")) is None

    async def no_header():
        return await oauth.headers_for("https://any/", ("agr.example.com", "AGR"))
    assert run(no_header()) == {}


def test_credentials_are_checked_when_made():
    with pytest.raises(ValueError, match="plain http"):
        ClientCredentials("http://idp.example.com/token", "id", "secret")
    with pytest.raises(ValueError, match="auth_method"):
        ClientCredentials("https://idp.example.com/token", "id", "secret", auth_method="jwt")
    with pytest.raises(TypeError):
        OAuth2Clients({DSO: ("id", "secret")})  # type: ignore[dict-item]
    assert ClientCredentials("http://idp.example.com/t", "id", "s", allow_plain_http=True)
