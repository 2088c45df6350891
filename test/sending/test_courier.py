"""The courier's three verbs (seal, send, answer), its addressing mistakes said at once, rules
run once per message, and what a timed-out request knows about its delivery (#17.1, #17.2)."""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest

import pyuftp
from pyuftp.core.decisions import Answer
from pyuftp.discovery import Directory
from pyuftp.exceptions import AddressingError, TemporaryDeliveryError, UnknownMessageType
from pyuftp.rules import Rules
from pyuftp.sending.delivery import Courier, Sealed
from pyuftp.server.service import ShapeshifterAgrService, ShapeshifterDsoService

from conftest import fresh, run

AGR_KEY, AGR_PUBLIC = pyuftp.generate_keypair()
DSO_KEY, DSO_PUBLIC = pyuftp.generate_keypair()
AGR, DSO = "agr.example.com", "dso.example.com"
DEAD = "http://127.0.0.1:9/shapeshifter/api/v3/message"  # the discard port: nothing listens


def courier(directory: Directory, **options: Any) -> Courier:
    return Courier(AGR, AGR_KEY, "AGR", endpoint_lookup=directory.endpoint, **options)


# --- addressing mistakes: at once, before anything is queued --------------------------------


@pytest.mark.parametrize("store", [None, "memory:"])
def test_a_recipient_not_in_the_directory_raises_at_once_naming_it(store):
    async def scenario() -> None:
        async with courier(Directory(), store=store) as sender:
            started = asyncio.get_running_loop().time()
            with pytest.raises(AddressingError, match=r"no endpoint known for dso\.example\.com "
                                                      r"\(DSO\)") as caught:
                await sender.send("TestMessage", {}, DSO, "DSO")
            assert asyncio.get_running_loop().time() - started < 1.0  # not a timeout later
            assert (caught.value.domain, caught.value.role) == (DSO, "DSO")
            if sender.store is not None:
                assert sender.store.outgoing() == []  # nothing queued
                assert sender.store.query() == []     # nor archived
    run(scenario())


def test_an_endpoint_that_is_no_url_raises_at_once_and_directory_add_refuses_it():
    with pytest.raises(ValueError, match=r"dso\.example\.com \(DSO\).*not an absolute http"):
        Directory().add(DSO, "DSO", DSO_PUBLIC, "dso.example.com/shapeshifter/api/v3/message")

    async def scenario() -> None:
        def lookup(domain: str, role: str) -> str:
            return "dso.example.com/shapeshifter/api/v3/message"  # a lookup of one's own
        async with Courier(AGR, AGR_KEY, "AGR", endpoint_lookup=lookup,
                           store="memory:") as sender:
            with pytest.raises(AddressingError, match="not an absolute http"):
                await sender.send("TestMessage", {}, DSO, "DSO")
            assert sender.store is not None and sender.store.outgoing() == []
    run(scenario())


def test_a_recipient_without_a_key_raises_at_once():
    async def scenario() -> None:
        directory = Directory()
        directory.add(DSO, "DSO", DSO_PUBLIC, DEAD)
        async with courier(directory, store="memory:",
                           key_lookup=lambda domain, role: None) as sender:
            with pytest.raises(AddressingError, match=r"no public key known for "
                                                      r"dso\.example\.com \(DSO\)"):
                await sender.send("TestMessage", {}, DSO, "DSO")
            assert sender.store is not None and sender.store.outgoing() == []
    run(scenario())


def test_a_lookup_that_fails_stays_a_retried_delivery(caplog):
    calls = []

    def lookup(domain: str, role: str) -> str:
        calls.append((domain, role))
        raise OSError("DNS server unreachable")

    async def scenario() -> None:
        async with Courier(AGR, AGR_KEY, "AGR", endpoint_lookup=lookup, store="memory:",
                           outbox_options={"first_backoff": 0.05, "max_backoff": 0.1}
                           ) as sender:
            with caplog.at_level(logging.INFO, logger="pyuftp"):
                sent = await sender.send("TestMessage", {}, DSO, "DSO")  # queued, not refused
                store = sender.store
                assert store is not None
                for _ in range(100):  # bounded: until the outbox tried twice
                    (item,) = store.outgoing()
                    if item.attempts >= 2:
                        break
                    await asyncio.sleep(0.05)
            assert item.message_id == sent["message_id"] and item.state == "pending"
            assert item.attempts >= 2 and "DNS server unreachable" in (item.last_error or "")
        # a failed lookup is a temporary failure said in words, not a traceback each time
        assert not [r for r in caplog.records if "unexpected error" in r.getMessage()]
        assert len(calls) >= 3
        # without a store the same failure is a TemporaryDeliveryError at once
        async with Courier(AGR, AGR_KEY, "AGR", endpoint_lookup=lookup) as sender:
            with pytest.raises(TemporaryDeliveryError, match="DNS server unreachable"):
                await sender.send("TestMessage", {}, DSO, "DSO")
    run(scenario())


# --- seal, send, answer -------------------------------------------------------------------


def test_seal_makes_a_sealed_message_that_send_delivers():
    async def scenario() -> None:
        directory = Directory()
        received: list[dict[str, Any]] = []
        dso = ShapeshifterDsoService(DSO, DSO_KEY, directory.key, directory.endpoint, port=0)
        dso.add_handler("TestMessage", received.append)
        async with dso:
            directory.add(DSO, "DSO", DSO_PUBLIC, dso.url)
            directory.add(AGR, "AGR", AGR_PUBLIC, DEAD)
            async with courier(directory) as sender:
                sealed = sender.seal("TestMessage", {}, DSO, "DSO")
                assert isinstance(sealed, Sealed)
                assert (sealed.message_type, sealed.recipient_domain,
                        sealed.recipient_role) == ("TestMessage", DSO, "DSO")
                assert sealed.xml.startswith(b"<") and b"SignedMessage" in sealed.data
                assert sealed.payload["sender_domain"] == AGR
                with pytest.raises(TypeError, match="takes no payload"):
                    await sender.send(sealed, {})
                assert await sender.send(sealed) is sealed.payload
                for _ in range(100):  # bounded: until the DSO's handler ran
                    if received:
                        break
                    await asyncio.sleep(0.05)
        assert [p["message_id"] for p in received] == [sealed.payload["message_id"]]
    run(scenario())


def test_the_old_doors_are_gone():
    for name in ("prepare", "queue", "post", "post_once"):
        assert not hasattr(pyuftp.ShapeshifterClient, name), name
    for name in ("post", "deliver", "queue", "check_stateful"):
        assert not hasattr(Courier, name), name


def test_answer_skips_route_and_rules_and_queues_with_the_archive():
    async def scenario() -> None:
        directory = Directory()
        directory.add(DSO, "DSO", DSO_PUBLIC, DEAD)
        async with courier(directory, store="memory:") as sender:
            # An AGR never sends a FlexOfferResponse: send refuses it, answer (the core's
            # decision) does not check the route
            payload = fresh("FlexOfferResponse", result="Accepted")
            with pytest.raises(ValueError, match="does not send FlexOfferResponse"):
                await sender.send("FlexOfferResponse", payload, DSO, "DSO")
            sent = await sender.answer(Answer("FlexOfferResponse", payload, DSO, "DSO"))
            store = sender.store
            assert store is not None
            assert [i.message_id for i in store.outgoing()] == [sent["message_id"]]
            assert [m.message_id for m in store.query()] == [sent["message_id"]]
    run(scenario())


def test_rules_run_once_per_message():
    counted: dict[str, int] = {"stateless": 0, "stateful": 0}
    rules = Rules()

    @rules.rule("test.stateless", ["TestMessage"], "counts")
    def stateless(ctx: Any) -> list[str]:
        counted["stateless"] += 1
        return []

    @rules.rule("test.stateful", ["TestMessage"], "counts", stateful=True)
    def stateful(ctx: Any) -> list[str]:
        counted["stateful"] += 1
        return []

    async def scenario() -> None:
        directory = Directory()
        directory.add(DSO, "DSO", DSO_PUBLIC, DEAD)
        async with courier(directory, store="memory:", rules=rules) as sender:
            await sender.send("TestMessage", {}, DSO, "DSO")
        assert counted == {"stateless": 1, "stateful": 1}
        async with courier(directory, rules=rules, attempts=1) as sender:  # no store
            with pytest.raises(TemporaryDeliveryError):
                await sender.send("TestMessage", {}, DSO, "DSO")
        assert counted == {"stateless": 2, "stateful": 1}  # no archive: no stateful rules
    run(scenario())


# --- a request that times out says what is known ----------------------------------------------


async def _parties(**agr_options: Any) -> tuple[Directory, ShapeshifterDsoService,
                                                 ShapeshifterAgrService]:
    directory = Directory()
    dso = ShapeshifterDsoService(DSO, DSO_KEY, directory.key, directory.endpoint, port=0)
    agr = ShapeshifterAgrService(AGR, AGR_KEY, directory.key, directory.endpoint, port=0,
                                 **agr_options)
    await dso.start()
    await agr.start()
    directory.add(DSO, "DSO", DSO_PUBLIC, dso.url)
    directory.add(AGR, "AGR", AGR_PUBLIC, agr.url)
    return directory, dso, agr


def test_a_request_delivered_but_unanswered_says_delivered_with_http_200():
    async def scenario() -> None:
        directory, dso, agr = await _parties()
        release = asyncio.Event()

        async def slow(request: dict[str, Any]) -> None:
            await release.wait()
        agr.add_handler("FlexRequest", slow)
        try:
            with pytest.raises(asyncio.TimeoutError) as caught:
                await dso.request(AGR, "AGR", "FlexRequest", fresh("FlexRequest"), timeout=1.5)
        finally:
            release.set()
            await agr.stop()
            await dso.stop()
        text = str(caught.value)
        assert re.search(r"delivered at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC with HTTP 200 and "
                         r"no answer within 1\.5 s", text), text
    run(scenario())


def test_a_request_not_delivered_says_the_attempts_the_last_error_and_the_next_attempt():
    async def scenario() -> None:
        directory, dso, agr = await _parties(
            client_options={"outbox_options": {"first_backoff": 0.2, "max_backoff": 60}})
        await dso.stop()  # its endpoint stays in the directory: connections are refused
        try:
            with pytest.raises(asyncio.TimeoutError) as caught:
                await agr.request(DSO, "DSO", "TestMessage", {}, timeout=1.5)
        finally:
            await agr.stop()
        text = str(caught.value)
        assert re.search(r"not delivered: \d+ attempts? failed; the last error: "
                         r"TemporaryDeliveryError: cannot reach .*; the next attempt at "
                         r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text), text
    run(scenario())


def test_request_of_a_misspelt_type_suggests_the_right_one():
    async def scenario() -> None:
        directory, dso, agr = await _parties()
        try:
            with pytest.raises(UnknownMessageType, match="did you mean 'FlexOffer'"):
                await agr.request(DSO, "DSO", "FlexOfer", {}, timeout=1)
        finally:
            await agr.stop()
            await dso.stop()
    run(scenario())
