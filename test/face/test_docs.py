"""The generated reference page (docs/representations.rst) and the examples it is made of."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pyuftp
from pyuftp.message.catalog import (
    DEFAULT_VERSION, MESSAGE_TYPES, MESSAGES, VERSIONS, Node, may_send, reference_key,
)
from pyuftp.__main__ import format_payload, format_xml
from pyuftp.message.catalog import spec
from pyuftp.message.descriptions import field_meaning
from pyuftp.message.examples import DOMAINS, example, flex_offer_96

ROOT = Path(__file__).resolve().parents[2]


def _load_make_docs():
    spec = importlib.util.spec_from_file_location("make_docs", ROOT / "tools" / "make_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_docs = _load_make_docs()


# --- the page -------------------------------------------------------------------------------


def test_docs_page_is_current():
    assert make_docs.is_current(), (
        f"{make_docs.PAGE} is stale or missing: the code renders the examples differently now; "
        f"regenerate it with `{make_docs.COMMAND}` and commit the result"
    )




def test_every_message_type_has_a_section_in_order():
    text = make_docs.PAGE.read_text(encoding="utf-8")
    positions = []
    for message_type in MESSAGE_TYPES:
        heading = f".. _{message_type}:\n\n{message_type}\n{'=' * len(message_type)}\n"
        assert heading in text, f"no section for {message_type}"
        positions.append(text.index(heading))
        assert re.search(f"<{re.escape(message_type)}[ \n]", text), f"no XML for {message_type}"
    assert [t for _, t in sorted(zip(positions, MESSAGE_TYPES))] == sorted(MESSAGE_TYPES)
    assert ".. _representations-3.0.0:" in text


def test_every_section_shows_xml_and_dict():
    for message_type in MESSAGE_TYPES:
        section = make_docs.section(message_type)
        assert section.count(".. code-block:: xml") == len(VERSIONS)
        assert section.count(".. code-block:: python3") == len(VERSIONS)
        assert section.count(".. grid:: 1 1 1 2") == len(VERSIONS)  # side by side, stacked
        assert section.count(".. tab-item:: UFTP ") == len(VERSIONS)
        assert f"'message_id': '{example(message_type)['message_id']}'" in section
        assert f".. rubric:: Fields of {message_type}" in section
        assert "**Minimum payload**" in section


def test_version_section_lists_what_3_0_0_lacks():
    text = make_docs.version_section()
    for needle in ("``unsolicited``", "``service_type``", "``flex_offer_message_id``"):
        assert needle in text
    assert ":ref:`FlexOffer`" in text and ":ref:`FlexOrder`" in text


# --- the examples ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_examples_round_trip(message_type, version):
    payload = example(message_type, version)
    assert payload["version"] == version
    xml = pyuftp.create_message(message_type, payload, version=version)
    assert f'Version="{version}"' in xml
    assert pyuftp.parse_message(xml) == (message_type, payload)


@pytest.mark.parametrize("version", VERSIONS)
def test_flex_offer_96_round_trips(version):
    payload = flex_offer_96(version)
    assert [isp["start"] for isp in payload["offer_options"][0]["isps"]] == list(range(1, 97))
    xml = pyuftp.create_message("FlexOffer", payload, version=version)
    assert pyuftp.parse_message(xml) == ("FlexOffer", payload)


def test_examples_are_fixed_and_fresh():
    first = example("FlexOffer")
    first["offer_options"][0]["isps"].clear()
    first["currency"] = "NOK"
    assert example("FlexOffer") == example("FlexOffer") != first
    assert example("FlexOffer")["offer_options"][0]["isps"]


def test_3_0_0_examples_leave_out_what_3_0_0_lacks():
    for message_type in MESSAGE_TYPES:
        new, old = example(message_type, "3.1.0"), example(message_type, "3.0.0")
        assert set(old) <= set(MESSAGES["3.0.0"][message_type].keys())
        assert {k: v for k, v in new.items() if k != "version" and k in old} == {
            k: v for k, v in old.items() if k != "version"
        }
    assert "unsolicited" not in example("FlexOffer", "3.0.0")
    assert {"unsolicited", "service_type"}.isdisjoint(example("FlexOrder", "3.0.0"))
    assert "flex_offer_message_id" in example("FlexOrder", "3.0.0")


def test_unknown_message_type_has_no_example():
    with pytest.raises(pyuftp.UnknownMessageType):
        example("FlexOfer")


def test_examples_tell_one_story():
    ids = {example(t)["message_id"] for t in MESSAGE_TYPES}
    assert len(ids) == len(MESSAGE_TYPES), "every example has its own message id"
    for message_type in MESSAGE_TYPES:
        payload = example(message_type)
        roles = {domain: role for role, domain in DOMAINS.items()}
        sender, recipient = roles[payload["sender_domain"]], roles[payload["recipient_domain"]]
        assert may_send(sender, recipient, message_type), message_type
        if not message_type.endswith("Response"):
            continue
        request = example(message_type[: -len("Response")])
        assert payload["conversation_id"] == request["conversation_id"], message_type
        assert payload["sender_domain"] == request["recipient_domain"], message_type
        assert payload["recipient_domain"] == request["sender_domain"], message_type
        assert payload["time_stamp"] > request["time_stamp"], message_type
        key = reference_key(message_type[: -len("Response")])
        if key in MESSAGES[DEFAULT_VERSION][message_type].keys():
            assert payload[key] == request["message_id"], message_type
    # the trade refers to itself
    offer, order = example("FlexOffer"), example("FlexOrder")
    assert offer["flex_request_message_id"] == example("FlexRequest")["message_id"]
    assert order["flex_offer_message_id"] == offer["message_id"]
    assert example("FlexOfferRevocation")["flex_offer_message_id"] == offer["message_id"]
    statuses = example("D-PrognosisResponse")["flex_order_statuses"]
    assert statuses[0]["flex_order_message_id"] == order["message_id"]
    settled = example("FlexSettlement")["flex_order_settlements"]
    assert order["order_reference"] in [s.get("order_reference") for s in settled]


# Optional fields that the examples leave out on purpose, because the protocol text says they
# do not belong there (see the docstring of pyuftp.message.examples).
DELIBERATELY_ABSENT = {
    "FlexOffer.baseline_reference",  # the examples' baseline is a D-Prognosis
    "FlexOrder.baseline_reference",  # likewise
    "Metering.currency",  # "no longer used"
    "FlexSettlement.rejection_reason",  # a settlement is not a rejection
}


def _optional_fields(node: Node, path: str):
    for attr in node.attrs:
        if not attr.required:
            yield f"{path}.{attr.key}"
    for child in node.children:
        if not child.min:
            yield f"{path}.{child.key}"
        yield from _optional_fields(child.node, f"{path}.{child.key}")


def _present_fields(value, path: str):
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}"
            yield from _present_fields(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _present_fields(item, path)


def test_examples_use_every_optional_field():
    optional, present = set(), set()
    for message_type in MESSAGE_TYPES:
        optional.update(_optional_fields(MESSAGES[DEFAULT_VERSION][message_type], message_type))
        present.update(_present_fields(example(message_type), message_type))
    # A RejectionReason only belongs to a rejection: showing it once is enough.
    rejection = {f for f in optional if f.endswith(".rejection_reason")}
    assert rejection & present
    missing = optional - present - rejection - DELIBERATELY_ABSENT
    assert not missing, f"optional fields no example uses: {sorted(missing)}"
    assert not DELIBERATELY_ABSENT & present




# --- the field reference and the printers -----------------------------------------------------


def _fields(node: Node, path: tuple[str, ...] = ()):
    for attr in node.attrs:
        yield path, attr.xml
    for child in node.children:
        yield path, child.xml
        yield from _fields(child.node, path + (child.xml,))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_every_field_has_a_meaning(message_type, version):
    node = spec(version).messages[message_type]
    for path, xml_name in _fields(node):
        meaning = field_meaning(message_type, path, xml_name)
        assert meaning.strip() and "\n" not in meaning, (message_type, path, xml_name)


def test_field_table_lists_every_key_with_type_and_requirement():
    table = make_docs.field_table("FlexOrder")
    for key in ("period", "price", "currency", "order_reference", "isps", "isps[].power"):
        assert make_docs._breakable(key) in table
    assert "     - required" in table  # the column has a header
    # a key may break after _ . - ] only, never inside a word
    assert "isps[]<wbr>.<wbr>power" in make_docs._breakable("isps[].power")
    assert not re.search(r"\w<wbr>\w", make_docs._breakable("order_reference").replace("_<wbr>", ""))
    assert "``decimal.Decimal``" in table and "``datetime.date``" in table
    assert "``'Accepted'``" in make_docs.field_table("FlexOrderResponse")
    minimum = re.split(r"and\s+inside", make_docs.minimum("FlexOrder"))[0]
    for key in ("period", "price", "currency", "order_reference", "isps"):
        assert f"``{key}``" in minimum
    assert "``unsolicited``" not in minimum and "``message_id``" not in minimum


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_shown_forms_fit_their_column_and_mean_the_same(message_type):
    import datetime
    from decimal import Decimal

    for version in VERSIONS:
        xml, payload = make_docs.forms(message_type, version)
        # only an attribute with a long text (a reason) may be longer: XML cannot break it
        assert all(len(line) <= 80 or re.fullmatch(r' +[\w-]+="[^"]*"/?>?', line)
                   for line in xml.splitlines()), (message_type, version)
        assert max(map(len, payload.splitlines())) <= 90, (message_type, version)
        rendered = pyuftp.create_message(message_type, example(message_type, version),
                                         version=version)
        assert pyuftp.parse_message(xml) == pyuftp.parse_message(rendered)
        shown = eval(payload, {"datetime": datetime, "Decimal": Decimal})  # noqa: S307
        assert shown == example(message_type, version)


def test_payload_is_printed_in_field_order_not_sorted():
    text = format_payload("FlexOffer", example("FlexOffer"))
    keys = [line.strip().split("'")[1] for line in text.splitlines()
            if line.startswith("    '")]
    assert keys == [k for k in MESSAGES[DEFAULT_VERSION]["FlexOffer"].keys()
                    if k in example("FlexOffer")]
    assert keys != sorted(keys)


def test_long_start_tags_get_one_attribute_per_line():
    xml = format_xml(pyuftp.create_message("FlexOffer", example("FlexOffer")))
    lines = xml.splitlines()
    assert lines[0] == "<FlexOffer"
    assert lines[1] == '    Version="3.1.0"'
    short = format_xml('<TestMessage A="1"><B C="2"/></TestMessage>')
    assert short == '<TestMessage A="1">\n  <B C="2"/>\n</TestMessage>'
