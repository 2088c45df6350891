"""The traps a new user fell into (issue #11), each refused or explained at once."""
from __future__ import annotations

import asyncio
import logging

import pytest

import pyuftp
from pyuftp.clients import ShapeshifterAgrDsoClient
from pyuftp.discovery import Directory
from pyuftp.exceptions import ValidationError
from pyuftp.server.service import ShapeshifterAgrService, ShapeshifterDsoService

from conftest import fresh, run

AGR_KEY, AGR_PUBLIC = pyuftp.generate_keypair()
DSO_KEY, DSO_PUBLIC = pyuftp.generate_keypair()
URL = "http://127.0.0.1:9/shapeshifter/api/v3/message"


def client(url: str = URL) -> ShapeshifterAgrDsoClient:
    return ShapeshifterAgrDsoClient("agr.example.com", AGR_KEY, "dso.example.com", url)


@pytest.mark.parametrize("key,value,whose", [
    ("sender_domain", "other.example.com", "this party's"),
    ("recipient_domain", "dso2.example.com", "the recipient's"),
])
def test_a_payload_for_another_party_is_refused_before_signing(key, value, whose):
    # A wrong sender came back as a retried 419; a wrong recipient was silently rejected.
    with pytest.raises(ValidationError, match=f"is not {whose} domain") as caught:
        client().seal("TestMessage", {key: value})
    assert caught.value.field == f"TestMessage.{key}"


@pytest.mark.parametrize("url", ["dso.example.com/shapeshifter/api/v3/message",
                                 "ftp://dso.example.com/x", "/shapeshifter/api/v3/message"])
def test_a_url_without_a_scheme_is_refused_at_construction(url):
    # It was retried three times and failed with a message that repeated the URL.
    with pytest.raises(ValueError, match="not an absolute http"):
        client(url)


def test_a_float_price_names_decimal():
    offer = fresh("FlexOffer", sender_domain="agr.example.com", recipient_domain="dso.example.com")
    offer["offer_options"][0]["price"] = 0.1 + 0.2
    with pytest.raises(ValidationError, match="decimal.Decimal"):
        pyuftp.create_message("FlexOffer", offer)


async def pair(**agr_options):
    directory = Directory()
    dso = ShapeshifterDsoService("dso.example.com", DSO_KEY, directory.key, directory.endpoint,
                                 port=0)
    agr = ShapeshifterAgrService("agr.example.com", AGR_KEY, directory.key, directory.endpoint,
                                 port=0, **agr_options)
    await dso.start()
    await agr.start()
    directory.add("dso.example.com", "DSO", DSO_PUBLIC, dso.url)
    directory.add("agr.example.com", "AGR", AGR_PUBLIC, agr.url)
    return directory, dso, agr


def test_a_response_request_consumed_is_not_logged_as_unhandled(caplog):
    async def scenario():
        _, dso, agr = await pair()
        try:
            with caplog.at_level(logging.INFO, logger="pyuftp"):
                await agr.request("dso.example.com", "DSO", "TestMessage", {}, timeout=10)
                await agr.drain(5)
        finally:
            await agr.stop()
            await dso.stop()
        # "no handler for TestMessageResponse ... ignored" was logged though request() had it
        assert not [r for r in caplog.records if "no handler" in r.getMessage()]
    run(scenario())


def test_a_request_to_a_party_with_a_wrong_key_says_what_happened(caplog):
    async def scenario():
        directory, dso, agr = await pair()
        other_private, other_public = pyuftp.generate_keypair()
        directory.add("agr.example.com", "AGR", other_public, agr.url)  # the DSO knows a wrong key
        try:
            with caplog.at_level(logging.WARNING, logger="pyuftp"):
                with pytest.raises(asyncio.TimeoutError) as caught:
                    await agr.request("dso.example.com", "DSO", "TestMessage", {}, timeout=2)
        finally:
            await agr.stop()
            await dso.stop()
        # It ended in a TimeoutError with an empty message before.
        assert "dso.example.com" in str(caught.value) and "know our key" in str(caught.value)
        # ... and the DSO's refusal names the sender.
        assert any("agr.example.com" in r.getMessage() and "401" in r.getMessage()
                   for r in caplog.records)
    run(scenario())
