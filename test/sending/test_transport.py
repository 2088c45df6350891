"""Signed messages over real HTTP on 127.0.0.1: clients, services, status codes, rejections."""
from __future__ import annotations

import asyncio
import base64
import logging
import threading
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import pyuftp
from pyuftp.message.catalog import ROUTES, reference_key, response_type, snake_case
from pyuftp.clients import CLIENTS, ShapeshifterAgrDsoClient
from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery import Directory
from pyuftp.signing.envelope import open_envelope, open_message, seal_message, wrap
from pyuftp.message.examples import example
from pyuftp.exceptions import FinalDeliveryError, TemporaryDeliveryError
from pyuftp.server.service import SERVICES, Rejected

from conftest import fresh, run

DOMAINS = {"AGR": "agr.example.com", "CRO": "cro.example.com", "DSO": "dso.example.com"}
WAIT = 10.0



class Parties:
    """A DSO, an AGR and a CRO service on loopback, with every received message recorded."""

    def __init__(self) -> None:
        self.directory = Directory()
        self.keys = {role: generate_keypair() for role in DOMAINS}
        self.services = {
            role: cls(DOMAINS[role], self.keys[role][0], self.directory.key,
                      self.directory.endpoint, port=0, client_options={"attempts": 1})
            for role, cls in SERVICES.items()
        }
        self.inbox: asyncio.Queue = asyncio.Queue()
        for role, service in self.services.items():
            for message_type in service.accepted_types:
                service.add_handler(message_type, self._recorder(role, message_type))

    def _recorder(self, role: str, message_type: str):
        # What a response needs beyond what the service copies from the request.
        answer = response_type(message_type)
        needed = {"AGRPortfolioQueryResponse": ("dso_views",),
                  "FlexSettlementResponse": ("flex_order_settlement_statuses",)}.get(answer, ())

        async def record(payload, received):
            await self.inbox.put((role, message_type, payload, received))
            return {key: example(answer)[key] for key in needed}
        return record

    async def __aenter__(self) -> "Parties":
        for role, service in self.services.items():
            await service.start()
            self.directory.add(DOMAINS[role], role, self.keys[role][1], service.url)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for service in self.services.values():
            await service.stop()

    def client(self, sender: str, recipient: str, **options: Any):
        return CLIENTS[(sender, recipient)](
            DOMAINS[sender], self.keys[sender][0], DOMAINS[recipient],
            self.services[recipient].url, **options)

    async def next(self, message_type: str | None = None):
        while True:
            item = await asyncio.wait_for(self.inbox.get(), WAIT)
            if message_type is None or item[1] == message_type:
                return item


def all_routes():
    for (sender, recipient), types in ROUTES.items():
        for message_type in types + ("TestMessage",):
            yield sender, recipient, message_type


def test_every_client_method_reaches_its_handler_and_every_response_comes_back():
    async def scenario():
        async with Parties() as parties:
            for sender, recipient, message_type in all_routes():
                async with parties.client(sender, recipient) as client:
                    method = getattr(client, "send_" + snake_case(message_type))
                    sent = await method(fresh(message_type))
                role, got_type, payload, received = await parties.next(message_type)
                assert (role, got_type) == (recipient, message_type)
                assert payload == sent
                assert received.sender_role == sender and received.sender_domain == DOMAINS[sender]
                assert received.signed_xml.startswith(b"<SignedMessage")
                assert pyuftp.parse_message(received.payload_xml) == (message_type, sent)
                answer = response_type(message_type)
                if answer is None:
                    continue
                role, got_type, response, _ = await parties.next(answer)
                assert (role, got_type) == (sender, answer)
                assert response["conversation_id"] == sent["conversation_id"]
                assert response["recipient_domain"] == DOMAINS[sender]
                if answer != "TestMessageResponse":
                    assert response[reference_key(message_type)] == sent["message_id"]
                    assert response["result"] in ("Accepted", "Rejected")
    run(scenario())


def test_client_methods_match_the_routes():
    for (sender, recipient), cls in CLIENTS.items():
        names = {n for n in dir(cls) if n.startswith("send_") and n != "send"}
        expected = {"send_" + snake_case(t) for t in ROUTES[(sender, recipient)]}
        assert names == expected | {"send_test_message", "send_test_message_response"}


def test_handler_results_become_the_response():
    async def scenario():
        async with Parties() as parties:
            dso = parties.services["DSO"]
            calls = []

            def sync_offer(payload):  # a plain function runs off the event loop
                calls.append(threading.current_thread() is threading.main_thread())
                raise Rejected("no capacity left")
            dso.add_handler("FlexOffer", sync_offer)

            async def broken(payload):
                raise ZeroDivisionError("bug in the handler")
            dso.add_handler("Metering", broken)

            async def prognosis(payload):
                return {"flex_order_statuses": [
                    {"flex_order_message_id": payload["message_id"], "is_validated": True}]}
            dso.add_handler("D-Prognosis", prognosis)

            async with parties.client("AGR", "DSO") as client:
                offer = await client.send_flex_offer(fresh("FlexOffer"))
                _, _, response, _ = await parties.next("FlexOfferResponse")
                assert response["result"] == "Rejected"
                assert response["rejection_reason"] == "no capacity left"
                assert response["flex_offer_message_id"] == offer["message_id"]
                assert calls == [False]

                await client.send_metering(fresh("Metering"))
                _, _, response, _ = await parties.next("MeteringResponse")
                assert response["result"] == "Rejected"
                assert "processing failed" in response["rejection_reason"]

                prognosis_sent = await client.send_d_prognosis(fresh("D-Prognosis"))
                _, _, response, _ = await parties.next("D-PrognosisResponse")
                assert response["result"] == "Accepted"
                assert response["flex_order_statuses"][0]["flex_order_message_id"] == prognosis_sent["message_id"]
                # the service still serves after a handler blew up
                await client.send_test_message(fresh("TestMessage"))
                await parties.next("TestMessageResponse")
    run(scenario())


# --- status codes, triggered for real ------------------------------------------------------


@asynccontextmanager
async def dso_service():
    directory = Directory()
    dso_key, dso_public = generate_keypair()
    agr_key, agr_public = generate_keypair()
    service = SERVICES["DSO"](DOMAINS["DSO"], dso_key, directory.key, directory.endpoint, port=0)
    async with service:
        directory.add(DOMAINS["DSO"], "DSO", dso_public, service.url)
        directory.add(DOMAINS["AGR"], "AGR", agr_public, None)
        yield service, agr_key


async def post(url: str, data: bytes, content_type: str = "text/xml; charset=utf-8", **kw: Any):
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=data, headers={"Content-Type": content_type}, **kw) as r:
            return r.status, await r.text()


async def chunked_post(url: str, data: bytes) -> tuple[int, str]:
    """POST with Transfer-Encoding: chunked (no Content-Length), over a raw socket."""
    address = url.split("//", 1)[1]
    host_port, path = address.split("/", 1)
    host, port = host_port.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /{path} HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
        + f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n"
    )
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), WAIT)
    writer.close()
    status_line = response.split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1]), response.decode(errors="replace")


def signed_offer(agr_key: str, **changes: Any) -> bytes:
    payload = fresh("FlexOffer", sender_domain=DOMAINS["AGR"], recipient_domain=DOMAINS["DSO"])
    payload.update(changes)
    return seal_message("FlexOffer", payload, agr_key, "AGR")[0]


@pytest.mark.parametrize(
    "case,status",
    [
        ("good", 200),
        ("wrong content type", 400),
        ("not xml", 400),
        ("wrong root", 400),
        ("envelope missing body", 400),
        ("schema-invalid inner message", 400),
        ("tampered body", 401),
        ("signed by another key", 401),
        ("unknown sender key", 419),
        ("no content length", 411),
        ("too big", 413),
    ],
)
def test_status_codes(case, status):
    async def scenario():
        async with dso_service() as (service, agr_key):
            data = signed_offer(agr_key)
            content_type, extra = "text/xml; charset=utf-8", {}
            if case == "wrong content type":
                content_type = "application/json"
            elif case == "not xml":
                data = b"this is not xml"
            elif case == "wrong root":
                data = b'<FlexOffer SenderDomain="agr.example.com"/>'
            elif case == "envelope missing body":
                data = b'<SignedMessage SenderDomain="agr.example.com" SenderRole="AGR"/>'
            elif case == "schema-invalid inner message":
                inner = pyuftp.create_message("FlexOffer", fresh(
                    "FlexOffer", sender_domain=DOMAINS["AGR"], recipient_domain=DOMAINS["DSO"]))
                data = wrap(inner.replace('Power="', 'Power="x'), agr_key, DOMAINS["AGR"], "AGR")
            elif case == "tampered body":
                envelope = open_envelope(data)
                sealed = envelope.sealed.replace(b'Currency="EUR"', b'Currency="USD"')
                assert sealed != envelope.sealed
                data = data.replace(base64.b64encode(envelope.sealed), base64.b64encode(sealed))
            elif case == "signed by another key":
                data = signed_offer(generate_keypair()[0])
            elif case == "unknown sender key":
                data = data.replace(b'SenderRole="AGR"', b'SenderRole="CRO"')
            elif case == "no content length":
                return await chunked_post(service.url, data)
            elif case == "too big":
                data = b"<SignedMessage " + b" " * (5 * 1024 * 1024) + b"/>"
            return await post(service.url, data, content_type, **extra)
    got, text = run(scenario())
    assert got == status, text


@pytest.mark.parametrize("case", ["sender mismatch", "misaddressed", "wrong role for type",
                                  "type not for this role"])
def test_functional_problems_get_200_and_a_rejected_response(case, caplog):
    """A message that is signed and valid but wrong in substance is answered Rejected."""
    async def scenario():
        captured: asyncio.Queue = asyncio.Queue()

        async def capture(request: web.Request) -> web.Response:
            await captured.put(await request.read())
            return web.Response(text="OK")

        app = web.Application()
        app.router.add_post("/message", capture)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        capture_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/message"
        try:
            directory = Directory()
            dso_key, dso_public = generate_keypair()
            sender_key, sender_public = generate_keypair()
            service = SERVICES["DSO"](DOMAINS["DSO"], dso_key, directory.key, directory.endpoint,
                                      port=0, client_options={"attempts": 1})
            async with service:
                sender_role, message_type = "AGR", "FlexOffer"
                payload = fresh("FlexOffer", sender_domain=DOMAINS["AGR"],
                                recipient_domain=DOMAINS["DSO"])
                if case == "sender mismatch":
                    inner = pyuftp.create_message("FlexOffer", payload)
                    data = wrap(inner, sender_key, "other.example.com", "AGR")
                    directory.add("other.example.com", "AGR", sender_public, capture_url)
                    expected_reason = "names 'agr.example.com'"
                else:
                    if case == "misaddressed":
                        payload["recipient_domain"] = "another-dso.example.com"
                        expected_reason = "not to dso.example.com"
                    elif case == "wrong role for type":  # a CRO may not send a D-Prognosis
                        sender_role, message_type = "CRO", "D-Prognosis"
                        payload = fresh("D-Prognosis", sender_domain=DOMAINS["AGR"],
                                        recipient_domain=DOMAINS["DSO"])
                        expected_reason = "a CRO may not send D-Prognosis to a DSO"
                    else:  # a DSO does not receive FlexRequests
                        message_type = "FlexRequest"
                        payload = fresh("FlexRequest", sender_domain=DOMAINS["AGR"],
                                        recipient_domain=DOMAINS["DSO"])
                        expected_reason = "a DSO does not accept FlexRequest"
                    data, _ = seal_message(message_type, payload, sender_key, sender_role)
                    directory.add(DOMAINS["AGR"], sender_role, sender_public, capture_url)
                status, _ = await post(service.url, data)
                assert status == 200
                answer = await asyncio.wait_for(captured.get(), WAIT)
                envelope = open_envelope(answer)
                received = open_message(envelope, dso_public)
                assert received.message_type == response_type(message_type)
                assert received.payload["result"] == "Rejected"
                assert expected_reason in received.payload["rejection_reason"]
        finally:
            await runner.cleanup()
    run(scenario())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text

# --- the client's view of failures ------------------------------------------------------------


@asynccontextmanager
async def fake_peer(handler):
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def agr_client(url: str, **options: Any) -> ShapeshifterAgrDsoClient:
    key, _ = generate_keypair()
    options.setdefault("backoff", 0.01)
    return ShapeshifterAgrDsoClient(DOMAINS["AGR"], key, DOMAINS["DSO"], url + "/message", **options)


@pytest.mark.parametrize("status,temporary", [(500, True), (503, True), (524, True), (404, True),
                                              (429, True), (419, True), (400, False),
                                              (401, False), (403, False), (422, False)])
def test_status_classification_and_bounded_retry(status, temporary):
    hits = []

    async def handler(request):
        hits.append(await request.read())
        return web.Response(status=status, text="nope")

    async def scenario():
        async with fake_peer(handler) as url, agr_client(url, attempts=3) as client:
            with pytest.raises(pyuftp.PyUFTPError) as info:
                await client.send_test_message(fresh("TestMessage"))
            return info.value
    error = run(scenario())
    assert error.temporary is temporary and error.status == status
    assert isinstance(error, TemporaryDeliveryError if temporary else FinalDeliveryError)
    assert len(hits) == (3 if temporary else 1)
    assert all(h == hits[0] for h in hits)  # the same signed message each time


def test_temporary_failure_then_success():
    hits = []

    async def handler(request):
        hits.append(1)
        return web.Response(status=503 if len(hits) < 3 else 200)

    async def scenario():
        async with fake_peer(handler) as url, agr_client(url, attempts=5) as client:
            return await client.send_test_message(fresh("TestMessage"))
    assert run(scenario())["message_id"]
    assert len(hits) == 3


@pytest.mark.parametrize("redirect", [301, 302, 307, 308])
def test_redirects_are_followed_keeping_the_post(redirect):
    seen = []

    async def handler(request):
        seen.append((request.method, request.path, await request.read()))
        if request.path == "/message":
            return web.Response(status=redirect, headers={"Location": "/moved"})
        return web.Response(text="OK")

    async def scenario():
        async with fake_peer(handler) as url, agr_client(url) as client:
            await client.send_test_message(fresh("TestMessage"))
    run(scenario())
    assert [(m, p) for m, p, _ in seen] == [("POST", "/message"), ("POST", "/moved")]
    assert seen[0][2] == seen[1][2] and seen[1][2].startswith(b"<SignedMessage")


def test_redirect_loop_is_bounded():
    hits = []

    async def handler(request):
        hits.append(1)
        return web.Response(status=307, headers={"Location": request.path})

    async def scenario():
        async with fake_peer(handler) as url, agr_client(url, attempts=1, max_redirects=4) as client:
            with pytest.raises(TemporaryDeliveryError, match="redirects"):
                await client.send_test_message(fresh("TestMessage"))
    run(scenario())
    assert len(hits) == 5


def test_timeouts_and_refused_connections_are_temporary():
    async def slow(request):
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def scenario():
        async with fake_peer(slow) as url, agr_client(url, attempts=1, timeout=0.3) as client:
            with pytest.raises(TemporaryDeliveryError, match="timed out"):
                await client.send_test_message(fresh("TestMessage"))
        async with fake_peer(slow) as url:
            pass  # the port is free again: nothing listens there now
        async with agr_client(url, attempts=2) as client:
            with pytest.raises(TemporaryDeliveryError, match="cannot reach"):
                await client.send_test_message(fresh("TestMessage"))
    run(scenario())


def test_bad_keys_fail_at_construction():
    with pytest.raises(pyuftp.InvalidKey):
        ShapeshifterAgrDsoClient(DOMAINS["AGR"], "not-a-key", DOMAINS["DSO"], "http://127.0.0.1:1/")
    key, _ = generate_keypair()
    with pytest.raises(pyuftp.InvalidKey):
        ShapeshifterAgrDsoClient(DOMAINS["AGR"], key, DOMAINS["DSO"], "http://127.0.0.1:1/",
                                 recipient_signing_key="cs1.abc")
    with pytest.raises(pyuftp.InvalidKey):
        SERVICES["DSO"](DOMAINS["DSO"], "short", lambda d, r: None, lambda d, r: None)


def test_invalid_payload_is_refused_before_sending():
    hits = []

    async def handler(request):
        hits.append(1)
        return web.Response(text="OK")

    async def scenario():
        async with fake_peer(handler) as url, agr_client(url) as client:
            with pytest.raises(pyuftp.ValidationError, match=r"FlexOffer\.currency"):
                await client.send_flex_offer(fresh("FlexOffer", currency="euro"))
            with pytest.raises(ValueError, match="does not send FlexRequest"):
                await client.send("FlexRequest", fresh("FlexRequest"))
    run(scenario())
    assert hits == []


def test_handler_for_a_type_the_role_does_not_receive_is_refused():
    key, _ = generate_keypair()
    service = SERVICES["AGR"](DOMAINS["AGR"], key, lambda d, r: None, lambda d, r: None)
    with pytest.raises(ValueError, match="does not receive FlexOffer"):
        service.add_handler("FlexOffer", lambda payload: None)


def test_service_app_can_be_mounted_with_other_routes():
    async def scenario():
        async with Parties() as parties:
            service = parties.services["DSO"]
            async with aiohttp.ClientSession() as session:
                async with session.get(service.url) as response:
                    assert response.status == 405  # only POST on the message path
            assert any(r.method == "POST" for r in service.app.router.routes())
    run(scenario())


def test_the_plain_http_check_is_kept_per_url_and_setting():
    """(#23) A poster checks a URL once and remembers it: the next POST to it skips the
    check, but another URL, or the same one after ``allow_plain_http`` changed, is checked
    again (and refused without a connection when it is plain http off loopback)."""
    from pyuftp.sending.transport import Poster

    hits = []

    async def handler(request):
        hits.append(await request.read())
        return web.Response(text="OK")

    async def scenario():
        poster = Poster(allow_plain_http=True)
        try:
            async with fake_peer(handler) as url:
                assert await poster.post_once(b"<x/>", url + "/message") == 200
                assert await poster.post_once(b"<x/>", url + "/message") == 200
            # allowed while allow_plain_http was on; refused once it is off, before any
            # connection (nothing listens at 192.0.2.1, TEST-NET-1)
            poster.allow_plain_http = False
            with pytest.raises(FinalDeliveryError, match="not a loopback"):
                await poster.post_once(b"<x/>", "http://192.0.2.1:9/message")
            poster._allowed = ("http://192.0.2.1:9/message", True)  # as if posted before
            with pytest.raises(FinalDeliveryError, match="not a loopback"):
                await poster.post_once(b"<x/>", "http://192.0.2.1:9/message")
        finally:
            await poster.close()
    run(scenario())
    assert hits == [b"<x/>", b"<x/>"]


def test_queued_and_delivered_lines_name_the_message_when_info_is_on(caplog):
    """(#23) The fields of the "queued" and "delivered" lines are made only when INFO is
    on; then they are there, in the text and as the record's extra fields."""
    async def scenario():
        async with Parties() as parties:
            client = parties.client("AGR", "DSO")
            try:
                sent = await client.send_flex_offer_revocation(
                    fresh("FlexOfferRevocation"))
                await parties.next("FlexOfferRevocation")
                response = await parties.next("FlexOfferRevocationResponse")
                assert await parties.services["DSO"].drain(WAIT)
            finally:
                await client.close()
            return sent, response
    with caplog.at_level(logging.INFO, logger="pyuftp"):
        sent, response = run(scenario())
    answer_id = response[2]["message_id"]
    queued = [r for r in caplog.records if r.getMessage().startswith(
        "queued FlexOfferRevocationResponse")]
    delivered = [r for r in caplog.records if r.getMessage().startswith(
        "delivered FlexOfferRevocationResponse")]
    assert len(queued) == 1 and len(delivered) == 1
    for record in queued + delivered:
        assert record.message_id == answer_id and answer_id in record.getMessage()
        assert record.conversation_id == sent["conversation_id"]
        assert record.counterparty == DOMAINS["AGR"]
