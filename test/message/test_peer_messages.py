"""Peer tolerance: XML written by shapeshifter-uftp 2.4.0, the most used peer, parses.

Each message the peer writes (every type, both versions) must parse; rendering the dict again
must give the same XML, except where the peer deviates from the official schema in the
harmless ways pyuftp tolerates (``TOLERATED`` in pyuftp/message/catalog.py).
"""
from __future__ import annotations

import pytest
from lxml import etree

import pyuftp
from pyuftp.message.catalog import MESSAGE_TYPES, TOLERATED, VERSIONS

from peer_examples import peer_available, peer_xml

pytestmark = pytest.mark.skipif(
    not peer_available(), reason="shapeshifter-uftp is not installed (pip install '.[peer]')"
)


def canonical(xml: str | bytes) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True)
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml, parser)
    return etree.tostring(root, method="c14n")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_peer_message_parses(message_type, version):
    xml = peer_xml(message_type, version)
    parsed_type, payload = pyuftp.parse_message(xml)
    assert parsed_type == message_type
    assert payload["version"] == version
    if message_type in TOLERATED:
        return  # checked one by one below: such a dict is read, not written again
    assert canonical(pyuftp.create_message(message_type, payload, version=version, rules=False)) == canonical(xml)


@pytest.mark.parametrize("version", VERSIONS)
def test_peer_test_message_response_keeps_its_result(version):
    _, payload = pyuftp.parse_message(peer_xml("TestMessageResponse", version))
    assert payload["result"] in ("Accepted", "Rejected")
    with pytest.raises(pyuftp.ValidationError, match=r"TestMessageResponse\.(result|rejection_reason): unknown field"):
        pyuftp.create_message("TestMessageResponse", payload, version=version)


@pytest.mark.parametrize("version", VERSIONS)
def test_peer_metering_with_18_digit_ean(version):
    xml = peer_xml("Metering", version)
    _, payload = pyuftp.parse_message(xml)
    assert len(payload["ean"]) == 19 and payload["ean"][0] in "Ee"
    assert sum(len(p["isps"]) for p in payload["profiles"]) == xml.count("<ISP ")
