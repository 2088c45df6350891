"""TLS (#19.3): a service serving HTTPS with a test CA made here, mutual TLS, the rule against
plain HTTP off loopback, and the service's limits over TLS (idle time, the connection cap, a
handshake that never finishes). Real TLS on 127.0.0.1 only."""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any

import pytest
import trustme
from aiohttp import web

from pyuftp.auth.tls import (
    client_context,
    is_loopback_host,
    is_plain_http_allowed,
    plain_http_warning,
    server_context,
)
from pyuftp.clients import ShapeshifterAgrDsoClient
from pyuftp.signing.crypto import generate_keypair
from pyuftp.sending.delivery import Courier
from pyuftp.discovery import Directory
from pyuftp.exceptions import FinalDeliveryError, TemporaryDeliveryError
from pyuftp.server.limits import Limits
from pyuftp.server.service import ShapeshifterDsoService
from pyuftp.sending.transport import Poster

from conftest import run
from oauth_server import wait_for

pytestmark = pytest.mark.slow  # subprocesses, sockets or mypy: seconds each

DSO, AGR = "dso.example.com", "agr.example.com"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Any]:
    """A CA, a server certificate for 127.0.0.1, a client certificate, and a stranger CA's
    client certificate, as PEM files."""
    folder = tmp_path_factory.mktemp("pki")
    ca, stranger = trustme.CA(), trustme.CA()
    files: dict[str, Any] = {"dir": folder}
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    client = ca.issue_cert("agr.example.com")
    client.private_key_and_cert_chain_pem.write_to_path(str(folder / "client.pem"))
    other = stranger.issue_cert("agr.example.com")
    other.private_key_and_cert_chain_pem.write_to_path(str(folder / "stranger.pem"))
    for name in ("ca", "server", "client", "stranger"):
        files[name] = str(folder / f"{name}.pem")
    return files


class Dso:
    """A DSO service over HTTPS that records the TestMessages it gets."""

    def __init__(self, pki: dict[str, Any], **options: Any) -> None:
        self.directory = Directory()
        keys, self.agr_keys = generate_keypair(), generate_keypair()
        self.service = ShapeshifterDsoService(
            DSO, keys[0], self.directory.key, self.directory.endpoint, port=0,
            cert_file=pki["server"], client_options={"attempts": 1}, **options)
        self.directory.add(AGR, "AGR", self.agr_keys[1], "http://127.0.0.1:9/x")
        self.got: list[str] = []
        self.service.add_handler("TestMessage", lambda p: self.got.append(p["message_id"]))

    async def __aenter__(self) -> Dso:
        await self.service.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.service.stop()

    def client(self, **options: Any) -> ShapeshifterAgrDsoClient:
        return ShapeshifterAgrDsoClient(AGR, self.agr_keys[0], DSO, self.service.url,
                                        attempts=1, send_timeout=10, **options)


def test_a_service_serves_https_and_a_client_trusts_the_given_ca(pki):
    async def main():
        async with Dso(pki) as dso:
            assert dso.service.url.startswith("https://127.0.0.1:")
            async with dso.client(ca_file=pki["ca"]) as agr:
                await agr.send_test_message({})
            async with dso.client(ssl=client_context(pki["ca"])) as agr:
                await agr.send_test_message({})
            # The system's CAs do not know the test CA: no message goes.
            async with dso.client() as agr:
                with pytest.raises(TemporaryDeliveryError, match="certificate verify failed"):
                    await agr.send_test_message({})
            await wait_for(lambda: len(dso.got) == 2)
    run(main())


def test_mutual_tls_refuses_a_client_without_a_trusted_certificate(pki):
    async def main():
        async with Dso(pki, client_ca=pki["ca"]) as dso:
            async with dso.client(ca_file=pki["ca"], client_cert=pki["client"]) as agr:
                await agr.send_test_message({})
            for refused in ({}, {"client_cert": pki["stranger"]}):
                async with dso.client(ca_file=pki["ca"], **refused) as agr:
                    with pytest.raises(TemporaryDeliveryError, match="cannot reach"):
                        await agr.send_test_message({})
            await wait_for(lambda: len(dso.got) == 1)
    run(main())


def test_contexts_are_checked():
    with pytest.raises(ValueError, match="client_cert"):
        client_context(client_key="key.pem")
    with pytest.raises(ValueError, match="client_ca"):
        server_context(__file__, require_client_cert=True)
    with pytest.raises(ValueError, match="not both"):
        Poster(ssl=ssl.create_default_context(), ca_file="ca.pem")


# --- plain HTTP -----------------------------------------------------------------------------


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST.", True), ("0.0.0.0", False), ("::", False),
    ("10.0.0.1", False), ("dso.example.com", False), ("localhost.example.com", False),
    ("", False), (None, False),
])
def test_loopback_hosts(host, loopback):
    assert is_loopback_host(host) is loopback
    assert (plain_http_warning(host, tls=False) is None) is loopback
    assert plain_http_warning(host, tls=True) is None


def test_plain_http_goes_to_loopback_only_unless_allowed():
    assert is_plain_http_allowed("http://127.0.0.1:8080/x")
    assert is_plain_http_allowed("http://[::1]/x")
    assert is_plain_http_allowed("https://dso.example.com/x")
    assert not is_plain_http_allowed("http://dso.example.com/x")
    assert is_plain_http_allowed("http://dso.example.com/x", allow_plain_http=True)
    key = generate_keypair()[0]
    with pytest.raises(ValueError, match="not a loopback address"):
        ShapeshifterAgrDsoClient(AGR, key, DSO, "http://dso.example.com/shapeshifter/api/v3/x")
    allowed = ShapeshifterAgrDsoClient(AGR, key, DSO, "http://dso.example.com/x",
                                       allow_plain_http=True)
    assert allowed.courier.poster.allow_plain_http

    async def looked_up():  # an endpoint found later is refused when posted to: no traffic
        courier = Courier(AGR, key, "AGR", endpoint_lookup=lambda d, r: "http://10.1.2.3/x")
        async with courier:
            with pytest.raises(FinalDeliveryError, match="plain http to 10.1.2.3"):
                await courier.send("TestMessage", {}, DSO, "DSO")
    run(looked_up())


def test_a_redirect_to_plain_http_off_loopback_is_not_followed():
    async def main():
        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect("http://192.0.2.7/shapeshifter/api/v3/message")
        app = web.Application()
        app.router.add_post("/x", redirect)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        poster = Poster()
        try:
            with pytest.raises(FinalDeliveryError, match="plain http to 192.0.2.7"):
                await poster.post_once(b"<x/>", f"http://127.0.0.1:{port}/x")
        finally:
            await poster.close()
            await runner.cleanup()
    run(main())


def test_a_service_on_loopback_does_not_warn(pki, caplog):
    caplog.set_level(logging.WARNING, logger="pyuftp")

    async def main():
        directory = Directory()
        service = ShapeshifterDsoService(DSO, generate_keypair()[0], directory.key,
                                         directory.endpoint, port=0)
        async with service:
            pass
    run(main())
    assert "plain HTTP" not in caplog.text


# --- the limits over TLS ---------------------------------------------------------------------


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the peer closes the connection within ``seconds`` (reading whatever comes)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
        return True
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError):
        return True


def test_handshakes_that_never_finish_and_idle_tls_connections_are_closed(pki):
    async def main():
        async with Dso(pki, limits=Limits(idle_timeout=1.0)) as dso:
            port = dso.service.port
            silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]
            partial = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]
            for _, writer in partial:  # a TLS record header promising a ClientHello, no more
                writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            idle = [await asyncio.open_connection("127.0.0.1", port, ssl=client_context(pki["ca"]))
                    for _ in range(5)]
            started = time.monotonic()
            # Meanwhile a real sender is answered.
            async with dso.client(ca_file=pki["ca"]) as agr:
                await agr.send_test_message({})
            results = await asyncio.gather(*(closed_within(reader, 4.0)
                                             for reader, _ in silent + partial + idle))
            assert all(results), results
            assert time.monotonic() - started < 4.0
            for _, writer in silent + partial + idle:
                writer.close()
            async with dso.client(ca_file=pki["ca"]) as agr:
                await agr.send_test_message({})
            await wait_for(lambda: len(dso.got) == 2)
    run(main())


def test_connections_beyond_the_cap_get_503_over_tls(pki):
    async def main():
        limits = Limits(max_connections=8, idle_timeout=30.0)
        async with Dso(pki, limits=limits) as dso:
            context = client_context(pki["ca"])
            port = dso.service.port
            held = [await asyncio.open_connection("127.0.0.1", port, ssl=context)
                    for _ in range(8)]
            await asyncio.sleep(0.1)
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
            answer = await asyncio.wait_for(reader.read(200), 5)
            assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer
            writer.close()
            for _, held_writer in held:
                held_writer.close()
            await asyncio.sleep(0.3)
            async with dso.client(ca_file=pki["ca"]) as agr:
                await agr.send_test_message({})
            await wait_for(lambda: len(dso.got) == 1)
    run(main())
