"""Validating what pyuftp writes is a debugging option (validate_output=True or
PYUFTP_VALIDATE_OUTPUT=1); what it receives is always validated."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pyuftp
import pyuftp.message.codec
from pyuftp.signing.envelope import seal_message
from pyuftp.message.examples import example
from pyuftp.message.codec import build_message, create_message, render

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bad_renderer(monkeypatch):
    """A renderer that writes an attribute no schema allows (the checker passes the dict)."""
    def broken(message_type, payload, version=None):
        return render(message_type, payload, version).replace(
            f"<{message_type} ", f'<{message_type} Colour="red" ', 1)

    monkeypatch.setattr(pyuftp.message.codec, "render", broken)
    monkeypatch.setattr(pyuftp.message.codec, "VALIDATE_OUTPUT", False)


def test_output_is_not_validated_by_default(bad_renderer):
    xml = create_message("FlexOfferResponse", example("FlexOfferResponse"))
    assert 'Colour="red"' in xml
    xml, sent = build_message("FlexOfferResponse", example("FlexOfferResponse"))
    assert 'Colour="red"' in xml and sent["result"] == "Accepted"


def test_validate_output_refuses_what_the_schema_refuses(bad_renderer):
    for call in (create_message, build_message):
        with pytest.raises(pyuftp.ValidationError) as caught:
            call("FlexOfferResponse", example("FlexOfferResponse"), validate_output=True)
        assert caught.value.field == "FlexOfferResponse.colour"
        assert caught.value.reason == "unknown field (not in the UFTP schema)"


def test_validate_output_uses_the_schema_of_the_version(monkeypatch):
    # 3.0.0 has no Unsolicited on a FlexOffer: render a 3.1.0 offer as if it were 3.0.0.
    def as_3_1(message_type, payload, version=None):
        return render(message_type, payload, "3.1.0")

    monkeypatch.setattr(pyuftp.message.codec, "render", as_3_1)
    monkeypatch.setattr(pyuftp.message.codec, "check", lambda *args: None)
    offer = dict(example("FlexOffer"), version="3.0.0")
    assert 'Unsolicited="' in create_message("FlexOffer", offer)
    with pytest.raises(pyuftp.ValidationError) as caught:
        create_message("FlexOffer", offer, validate_output=True)
    assert caught.value.field == "FlexOffer.unsolicited"


def test_validate_output_reports_xml_that_is_not_well_formed(monkeypatch):
    monkeypatch.setattr(pyuftp.message.codec, "render", lambda *args: "<TestMessage")
    assert create_message("TestMessage", example("TestMessage")) == "<TestMessage"
    with pytest.raises(pyuftp.ValidationError, match="^TestMessage: rendered XML is not well-formed"):
        create_message("TestMessage", example("TestMessage"), validate_output=True)


def test_the_process_wide_switch_validates_every_call(bad_renderer, monkeypatch):
    monkeypatch.setattr(pyuftp.message.codec, "VALIDATE_OUTPUT", True)
    with pytest.raises(pyuftp.ValidationError, match=r"^FlexOfferResponse\.colour: "):
        create_message("FlexOfferResponse", example("FlexOfferResponse"))
    with pytest.raises(pyuftp.ValidationError, match=r"^FlexOfferResponse\.colour: "):
        # the sending path of clients and services, which passes no option
        seal_message("FlexOfferResponse", example("FlexOfferResponse"),
                     pyuftp.generate_keypair()[0], "DSO")


def test_the_switch_is_read_from_the_environment():
    code = "import pyuftp.message.codec as m; print(m.VALIDATE_OUTPUT)"
    for value, expected in (("1", "True"), ("", "False"), ("0", "False")):
        done = subprocess.run([sys.executable, "-c", code],
                              env={**os.environ, "PYUFTP_VALIDATE_OUTPUT": value},
                              cwd=ROOT, capture_output=True, text=True, check=True)
        assert done.stdout.strip() == expected, value


def test_no_validation_happens_without_the_option(monkeypatch):
    def refuse(*args):
        raise AssertionError("validated without being asked to")

    monkeypatch.setattr(pyuftp.message.codec, "validate_rendered", refuse)
    monkeypatch.setattr(pyuftp.message.codec, "VALIDATE_OUTPUT", False)
    xml = create_message("FlexOffer", example("FlexOffer"))
    assert pyuftp.parse_message(xml) == ("FlexOffer", example("FlexOffer"))


def test_received_messages_are_always_validated(bad_renderer):
    xml = create_message("FlexOfferResponse", example("FlexOfferResponse"))
    with pytest.raises(pyuftp.ValidationError) as caught:
        pyuftp.parse_message(xml)
    assert caught.value.field == "FlexOfferResponse.colour"
