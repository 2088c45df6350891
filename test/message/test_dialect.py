"""Counterparty dialects (#19.4): what pyuftp writes for a party whose software differs from
the official schemas, per counterparty. The Java reference library wants a Metering EAN of
E + 18 digits where the official schemas say E + 16."""
from __future__ import annotations

import pytest

from pyuftp.message.catalog import DIALECTS
from pyuftp.clients import ShapeshifterAgrDsoClient
from pyuftp.signing.crypto import generate_keypair
from pyuftp.sending.delivery import Courier
from pyuftp.discovery import Directory
from pyuftp.exceptions import ValidationError
from pyuftp.message.codec import create_message, parse_message
from pyuftp.message.read import parse_xml, schema
from pyuftp.server.service import ShapeshifterDsoService

from conftest import assert_officially_valid, fresh, run
from oauth_server import wait_for

EAN16, EAN18 = "E" + "1234567890123456", "E" + "123456789012345678"
AGR, DSO = "agr.example.com", "dso.example.com"


def metering(ean: str) -> dict:
    return dict(fresh("Metering", ean=ean), sender_domain=AGR, recipient_domain=DSO)


def test_by_default_pyuftp_writes_the_official_16_digits():
    assert 'EAN="' + EAN16 in create_message("Metering", metering(EAN16))
    with pytest.raises(ValidationError) as caught:
        create_message("Metering", metering(EAN18))
    assert caught.value.field == "Metering.ean" and "16 digits" in str(caught.value)
    assert create_message("Metering", metering(EAN16), dialect="uftp")


def test_the_java_dialect_writes_18_digits_and_only_those(official_schema):
    xml = create_message("Metering", metering(EAN18), dialect="java", validate_output=True)
    assert f'EAN="{EAN18}"' in xml
    assert parse_message(xml)[1]["ean"] == EAN18  # pyuftp reads what it wrote
    assert schema("3.1.0", received=True).validate(parse_xml(xml))
    with pytest.raises(AssertionError):  # ... which the official schema does not allow
        assert_officially_valid(official_schema("3.1.0"), xml)
    with pytest.raises(ValidationError) as caught:  # the Java schema refuses 16 digits
        create_message("Metering", metering(EAN16), dialect="java")
    assert caught.value.field == "Metering.ean" and "18 digits" in str(caught.value)


def test_the_java_dialect_changes_nothing_else(official_schema):
    offer = dict(fresh("FlexOffer"), sender_domain=AGR, recipient_domain=DSO)
    assert_officially_valid(official_schema("3.1.0"),
                            create_message("FlexOffer", offer, dialect="java"))
    answer = {"sender_domain": DSO, "recipient_domain": AGR, "result": "Accepted"}
    with pytest.raises(ValidationError, match="result"):  # no Result on a TestMessageResponse
        create_message("TestMessageResponse", answer, dialect="java")
    assert set(DIALECTS) == {"uftp", "java"} and list(DIALECTS["java"]) == ["Metering"]


def test_unknown_dialects_are_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="known: uftp, java"):
        create_message("Metering", metering(EAN16), dialect="cobol")
    with pytest.raises(ValueError, match="known: uftp, java"):
        Courier(AGR, generate_keypair()[0], "AGR", dialects={DSO: "cobol"})


def test_the_dialect_is_per_counterparty():
    key = generate_keypair()[0]
    courier = Courier(AGR, key, "AGR", dialects={(DSO, "DSO"): "java",
                                                 "grid.example.com": "java"})
    assert courier.seal("Metering", fresh("Metering", ean=EAN18), DSO, "DSO")
    assert courier.seal("Metering", fresh("Metering", ean=EAN18), "grid.example.com", "DSO")
    with pytest.raises(ValidationError, match="16 digits"):  # an official-schema DSO
        courier.seal("Metering", fresh("Metering", ean=EAN18), "other.example.com", "DSO")
    assert courier.dialect(DSO, "DSO") == "java" and courier.dialect(DSO, "AGR") is None


def test_a_client_sends_18_digits_to_a_java_dso_over_http():
    async def main():
        directory = Directory()
        dso_keys, agr_keys = generate_keypair(), generate_keypair()
        dso = ShapeshifterDsoService(DSO, dso_keys[0], directory.key, directory.endpoint,
                                     port=0, client_options={"attempts": 1})
        got: list[str] = []
        dso.add_handler("Metering", lambda payload: got.append(payload["ean"]))
        directory.add(AGR, "AGR", agr_keys[1], "http://127.0.0.1:9/x")
        async with dso:
            async with ShapeshifterAgrDsoClient(AGR, agr_keys[0], DSO, dso.url, attempts=1,
                                                dialect="java") as agr:
                sent = await agr.send_metering(fresh("Metering", ean=EAN18))
            assert sent["ean"] == EAN18
            await wait_for(lambda: got == [EAN18])
    run(main())
