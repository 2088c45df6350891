"""The checklist of a version and a message type: for every Spec and every message type,
everything that must exist does. Adding a type or a version, this test says what is missing."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from pyuftp.message.catalog import ANY_ROLE_MESSAGES, ROLES, SPECS, snake_case, spec
from pyuftp.clients import CLIENTS
from pyuftp.message.descriptions import MESSAGES as DESCRIPTIONS
from pyuftp.message.examples import example
from pyuftp.exceptions import UnsupportedVersion

ROOT = Path(__file__).resolve().parents[2]
PAIRS = [(version, message_type) for version, s in SPECS.items() for message_type in s.message_types]


def _docs_page() -> str:
    return (ROOT / "docs" / "representations.rst").read_text(encoding="utf-8")


@pytest.mark.parametrize("version,message_type", PAIRS)
def test_a_template_renders_it(version, message_type):
    found = [d for d in spec(version).template_dirs
             if resources.files("pyuftp").joinpath(d, f"{message_type}.xml").is_file()]
    assert found, f"no template {message_type}.xml in {spec(version).template_dirs}"


@pytest.mark.parametrize("version,message_type", PAIRS)
def test_an_example_exists_and_passes(version, message_type):
    import pyuftp
    xml = pyuftp.create_message(message_type, example(message_type, version), version=version,
                                validate_output=True)
    assert pyuftp.parse_message(xml)[0] == message_type


@pytest.mark.parametrize("version,message_type", PAIRS)
def test_the_schema_declares_it(version, message_type):
    text = resources.files("pyuftp").joinpath(spec(version).schema_dir, "uftp.xsd").read_text()
    assert f'<xs:element name="{message_type}">' in text


@pytest.mark.parametrize("version,message_type", PAIRS)
def test_a_client_sends_it(version, message_type):
    s = spec(version)
    routes = [pair for pair, types in s.routes.items() if message_type in types]
    if message_type in ANY_ROLE_MESSAGES:
        routes = [pair for pair in CLIENTS]
    assert routes, f"{message_type} has no route in the {version} Spec"
    for pair in routes:
        method = "send_" + snake_case(message_type)
        assert hasattr(CLIENTS[pair], method), f"{CLIENTS[pair].__name__} lacks {method}"


@pytest.mark.parametrize("version,message_type", PAIRS)
def test_it_is_described_and_documented(version, message_type):
    assert message_type in DESCRIPTIONS
    assert f"\n{message_type}\n" in _docs_page()


@pytest.mark.parametrize("version", SPECS)
def test_every_response_names_its_request(version):
    s = spec(version)
    for message_type in s.message_types:
        answer = s.response_type(message_type)
        if answer and message_type != "TestMessage":
            key = s.reference_key(message_type)
            assert key and key in s.messages[answer].keys(), (message_type, key)


def test_every_role_pair_with_routes_has_a_client():
    for pair in spec().routes:
        assert pair in CLIENTS
    assert {r for pair in CLIENTS for r in pair} == set(ROLES)


@pytest.mark.parametrize("text,served", [("3.1.0", "3.1.0"), ("3.1.7", "3.1.0"),
                                         (" 3.0.0 ", "3.0.0"), (None, "3.1.0")])
def test_one_normalizer_for_version_strings(text, served):
    assert spec(text).version == served


@pytest.mark.parametrize("text", ["4.0.0", "3.1", "", 3.1, None.__class__])
def test_unknown_versions_are_refused(text):
    with pytest.raises(UnsupportedVersion):
        spec(text)




