"""Every version string goes through catalog.spec(); a received message is read with the
Spec of the version it names, not the default one."""
from __future__ import annotations

import re

import pytest

import pyuftp
from pyuftp.message import catalog
from pyuftp.message.catalog import Spec
from pyuftp.message.examples import example
from pyuftp.message.codec import read_element, render, schema, supported_version


@pytest.fixture
def small_version(monkeypatch):
    """A made-up version 9.0.0 that has TestMessage only."""
    monkeypatch.setitem(catalog.SPECS, "9.0.0", Spec("9.0.0", {"TestMessage": catalog.PAYLOAD}))


def test_the_root_tag_is_checked_against_the_messages_of_its_version(small_version):
    xml = pyuftp.create_message("FlexOffer", example("FlexOffer"))
    assert pyuftp.parse_message(xml)[0] == "FlexOffer"
    with pytest.raises(pyuftp.UnknownMessageType) as caught:
        pyuftp.parse_message(xml.replace('Version="3.1.0"', 'Version="9.0.0"'))
    assert str(caught.value) == "<FlexOffer> is not a UFTP payload message; known types: TestMessage"


def test_without_a_version_the_tag_is_checked_against_the_default_version():
    with pytest.raises(pyuftp.UnknownMessageType, match=r"^<FlexOfer> is not a UFTP payload "
                       r"message; known types: AGRPortfolioQuery, .*, TestMessageResponse$"):
        pyuftp.parse_message(b"<FlexOfer/>")
    with pytest.raises(pyuftp.ValidationError, match=r"^FlexOffer\.version: is required"):
        pyuftp.parse_message(b"<FlexOffer/>")


def test_a_received_message_is_validated_against_its_own_version():
    # What 3.1.0 allows and 3.0.0 does not: an Unsolicited FlexOffer.
    xml = pyuftp.create_message("FlexOffer", example("FlexOffer"))
    assert 'Unsolicited="' in xml
    with pytest.raises(pyuftp.ValidationError) as caught:
        read_element(pyuftp.message.codec.parse_xml(xml.replace('Version="3.1.0"', 'Version="3.0.0"')))
    assert caught.value.field == "FlexOffer.unsolicited"
    assert caught.value.reason == "unknown field (not in the UFTP schema)"


@pytest.mark.parametrize("written,served", [("3.0.0", "3.0.0"), ("3.0.4", "3.0.0"),
                                            (" 3.1.0 ", "3.1.0"), ("3.1.9", "3.1.0")])
def test_versions_are_served_through_the_spec(written, served):
    assert supported_version(written) == served
    assert schema(written) is schema(served)
    if written != written.strip():
        return  # served, but not a Version to write
    payload = example("TestMessage", served)
    del payload["version"]
    xml = pyuftp.create_message("TestMessage", payload, version=written)
    assert f'Version="{written}"' in xml
    assert pyuftp.parse_message(xml)[1]["version"] == written


def test_a_patch_version_is_read_with_the_schema_of_its_minor_version():
    xml = pyuftp.create_message("FlexOffer", example("FlexOffer", "3.0.0"), version="3.0.0")
    patched = xml.replace('Version="3.0.0"', 'Version="3.0.2"')
    assert pyuftp.parse_message(patched)[1]["version"] == "3.0.2"
    with pytest.raises(pyuftp.ValidationError, match=r"FlexOffer\.unsolicited"):
        pyuftp.parse_message(re.sub(r"(<FlexOffer )", r'\1Unsolicited="true" ', patched))


def test_unsupported_versions_are_refused_everywhere():
    for call in (lambda: supported_version("2.0.0"), lambda: schema("4.0.0"),
                 lambda: pyuftp.check_payload("TestMessage", {}, "3"),
                 lambda: render("TestMessage", example("TestMessage"), "1.0.0"),
                 lambda: pyuftp.parse_message(b'<TestMessage Version="3.2.0"/>')):
        with pytest.raises(pyuftp.UnsupportedVersion):
            call()
