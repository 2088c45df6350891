"""The message layer: dict -> XML -> dict for every message type and version, and bad input."""
from __future__ import annotations

import copy
import datetime as dt
import enum
import re
from decimal import Decimal

import jinja2
import pytest
from lxml import etree

import pyuftp
from pyuftp.message import speed
from pyuftp.message.catalog import MESSAGES, MESSAGE_TYPES, VERSIONS
from pyuftp.message.examples import example, flex_offer_96
from pyuftp.message.fields import FILTERS
from pyuftp.message.codec import complete_payload, render, schema

from conftest import assert_officially_valid

CASES = [(t, v) for v in VERSIONS for t in MESSAGE_TYPES]


def c14n(xml: str | bytes) -> bytes:
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    return etree.tostring(root, method="c14n")


@pytest.mark.parametrize("message_type,version", CASES)
def test_round_trip_against_official_schema(message_type, version, official_schema):
    payload = example(message_type, version)
    xml = pyuftp.create_message(message_type, payload, version=version)
    assert_officially_valid(official_schema(version), xml)
    parsed_type, parsed = pyuftp.parse_message(xml)
    assert parsed_type == message_type
    assert parsed == payload
    # parse -> render gives the same XML, canonically
    assert c14n(pyuftp.create_message(parsed_type, parsed, version=version)) == c14n(xml)


@pytest.mark.parametrize("message_type,version", CASES)
def test_packaged_schema_accepts_what_official_schema_accepts(message_type, version):
    xml = pyuftp.create_message(message_type, example(message_type, version), version=version)
    assert schema(version).validate(etree.fromstring(xml.encode()))


def test_big_flex_offer_round_trip(official_schema):
    payload = flex_offer_96()
    xml = pyuftp.create_message("FlexOffer", payload)
    assert_officially_valid(official_schema("3.1.0"), xml)
    assert len(re.findall("<ISP ", xml)) == 96
    assert pyuftp.parse_message(xml) == ("FlexOffer", payload)


def test_metadata_is_filled_in():
    before = dt.datetime.now(dt.timezone.utc)
    xml = pyuftp.create_message(
        "TestMessage", {"sender_domain": "agr.example.com", "recipient_domain": "dso.example.com"}
    )
    message_type, payload = pyuftp.parse_message(xml)
    assert message_type == "TestMessage"
    assert payload["version"] == "3.1.0"
    assert re.fullmatch(r"[0-9a-f-]{36}", payload["message_id"])
    assert re.fullmatch(r"[0-9a-f-]{36}", payload["conversation_id"])
    assert payload["message_id"] != payload["conversation_id"]
    assert before <= payload["time_stamp"] <= dt.datetime.now(dt.timezone.utc)
    assert payload["time_stamp"].utcoffset() == dt.timedelta(0)
    assert 'TimeStamp="' in xml and "+00:00" in xml


def test_new_ids_are_random_uuid4s_as_uuid_writes_them(monkeypatch):
    import os
    import uuid

    from pyuftp.message import codec

    ids = {codec.new_uuid4() for _ in range(2000)}
    assert len(ids) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lower case, 8-4-4-4-12
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # the 122 random bits are os.urandom's, as uuid.uuid4() takes them: the same bytes give
    # the same text both ways, whatever they are
    for raw in (bytes(16), b"\xff" * 16, bytes(range(16)), bytes(range(240, 256))):
        monkeypatch.setattr(os, "urandom", lambda n, raw=raw: raw)  # uuid's and codec's
        assert codec.new_uuid4() == str(uuid.uuid4())


def test_version_argument_and_payload_version():
    payload = {"sender_domain": "agr.example.com", "recipient_domain": "dso.example.com"}
    assert 'Version="3.0.0"' in pyuftp.create_message("TestMessage", payload, version="3.0.0")
    assert 'Version="3.0.0"' in pyuftp.create_message("TestMessage", {**payload, "version": "3.0.0"})
    with pytest.raises(pyuftp.ValidationError, match=r"^TestMessage\.version: the payload says '3\.0\.0'"):
        pyuftp.create_message("TestMessage", {**payload, "version": "3.0.0"}, version="3.1.0")
    with pytest.raises(pyuftp.UnsupportedVersion, match="2.0.0"):
        pyuftp.create_message("TestMessage", payload, version="2.0.0")


def test_version_3_1_fields_are_refused_in_3_0():
    payload = example("FlexOffer", "3.1.0")
    assert "unsolicited" in payload
    del payload["version"]  # a payload's own version wins over the argument
    with pytest.raises(pyuftp.ValidationError) as info:
        pyuftp.create_message("FlexOffer", payload, version="3.0.0")
    assert info.value.field == "FlexOffer.unsolicited"


def test_the_caller_payload_is_not_changed():
    payload = {"sender_domain": "agr.example.com", "recipient_domain": "dso.example.com"}
    pyuftp.create_message("TestMessage", payload)
    assert payload == {"sender_domain": "agr.example.com", "recipient_domain": "dso.example.com"}


# --- bad payloads: every error names the field in dict terms -------------------------------------


def _required(node, path):
    for attr in node.attrs:
        if attr.required:
            yield f"{path}.{attr.key}", (attr.key,)
    for child in node.children:
        if child.min:
            yield f"{path}.{child.key}", (child.key,)


def _required_fields():
    for message_type in MESSAGE_TYPES:
        for field, keys in _required(MESSAGES["3.1.0"][message_type], message_type):
            if keys[0] in ("version", "message_id", "conversation_id", "time_stamp"):
                continue  # filled in when missing
            yield message_type, keys[0], field


@pytest.mark.parametrize("message_type,key,field", list(_required_fields()))
def test_each_required_field_missing(message_type, key, field):
    payload = example(message_type)
    del payload[key]
    with pytest.raises(pyuftp.ValidationError) as info:
        pyuftp.create_message(message_type, payload)
    assert info.value.field == field
    assert "required" in info.value.reason or "at least" in info.value.reason


def test_required_field_in_a_nested_item():
    payload = flex_offer_96()
    del payload["offer_options"][0]["isps"][3]["power"]
    with pytest.raises(pyuftp.ValidationError, match=r"^FlexOffer\.offer_options\[0\]\.isps\[3\]\.power: is required"):
        pyuftp.create_message("FlexOffer", payload)


@pytest.mark.parametrize(
    "path,value,message",
    [
        (("offer_options", 0, "isps", 3, "power"), "abc", "'abc' is not an integer"),
        (("offer_options", 0, "isps", 3, "power"), "1000", "'1000' is not an integer"),
        (("offer_options", 0, "isps", 3, "power"), True, "True is not an integer"),
        (("offer_options", 0, "isps", 0, "start"), 0, "0 is not a positive integer"),
        (("offer_options", 0, "price"), "12.50", "'12.50' is not an amount"),
        (("offer_options", 0, "price"), Decimal("1.23456"), "more than 4 decimal places"),
        (("offer_options", 0, "price"), Decimal("1.2345000"), None),  # trailing zeros: 4
        (("offer_options", 0, "price"), 12, None),
        (("offer_options", 0, "price"), Decimal("-0E-9"), None),  # zero has no places
        (("offer_options", 0, "price"), Decimal("1E+1000000"), "is too large"),  # (overflowed)
        (("offer_options", 0, "price"), Decimal("NaN"), "is not an amount"),
        (("offer_options", 0, "min_activation_factor"), Decimal("0.500"), None),
        (("offer_options", 0, "min_activation_factor"), Decimal("0.505"), "2 decimal places"),
        (("offer_options", 0, "min_activation_factor"), Decimal("1.5"), "is not an activation factor"),
        (("period",), dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc), "is not a datetime.date"),
        (("period",), "2026-11-23", "is not a datetime.date"),
        (("expiration_date_time",), dt.datetime(2026, 11, 23, 12), "naive datetime"),
        (("isp_duration",), "PT15M", "is not a datetime.timedelta"),
        (("unsolicited",), "false", "is not a bool"),
        (("currency",), "eur", "is not an ISO 4217 currency code"),
        (("currency",), "EURO", "is not an ISO 4217 currency code"),
        (("sender_domain",), "Agr.Example.com", "is not an internet domain"),
        (("sender_domain",), "localhost", "is not an internet domain"),
        (("message_id",), "not-a-uuid", "is not a UUID"),
        (("flex_request_message_id",), "12345678-1234-1234-1234-12345678901", "is not a UUID"),
        (("congestion_point",), "871685900012636543", "is not an entity address"),
        (("congestion_point",), "ean.1234", "is not an entity address"),
        (("congestion_point",), "ea1.2026-1.example.com:1", "is not an entity address"),
        (("time_zone",), "CET", "is not a time zone name"),
        (("offer_options",), {"option_reference": "A"}, "expected a list"),
        (("offer_options", 0, "isps"), [], "needs at least 1 item"),
        (("offer_options", 0, "isps", 2), 17, "expected a dict"),
    ],
)
def test_wrong_types_and_patterns(path, value, message):
    payload = flex_offer_96()
    target = payload
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    if message is None:  # fine as it is
        pyuftp.create_message("FlexOffer", payload)
        return
    with pytest.raises(pyuftp.ValidationError) as info:
        pyuftp.create_message("FlexOffer", payload)
    expected_field = "FlexOffer" + "".join(
        f"[{p}]" if isinstance(p, int) else f".{p}" for p in path
    )
    assert info.value.field == expected_field
    assert message in info.value.reason
    assert str(info.value).startswith(expected_field + ": ")


def test_the_issue_example_error_message():
    payload = flex_offer_96()
    payload["offer_options"][0]["isps"][3]["power"] = "abc"
    with pytest.raises(pyuftp.ValidationError) as info:
        pyuftp.create_message("FlexOffer", payload)
    assert str(info.value) == "FlexOffer.offer_options[0].isps[3].power: 'abc' is not an integer"


def test_metering_ean_pattern():
    payload = example("Metering")
    payload["ean"] = "871685900012636543"
    with pytest.raises(pyuftp.ValidationError, match=r"^Metering\.ean: .*is not an EAN"):
        pyuftp.create_message("Metering", payload)


def test_unknown_field_is_refused_not_dropped():
    payload = flex_offer_96()
    payload["offer_options"][0]["isps"][5]["pwer"] = 10
    with pytest.raises(pyuftp.ValidationError) as info:
        pyuftp.create_message("FlexOffer", payload)
    assert info.value.field == "FlexOffer.offer_options[0].isps[5].pwer"
    assert "unknown field" in info.value.reason and "power" in info.value.reason


def test_unknown_message_type():
    with pytest.raises(pyuftp.UnknownMessageType, match="FlexOfer"):
        pyuftp.create_message("FlexOfer", {})
    with pytest.raises(pyuftp.UnknownMessageType):
        pyuftp.parse_message(b'<FlexOfer Version="3.1.0"/>')


def test_payload_must_be_a_dict():
    with pytest.raises(pyuftp.ValidationError, match="payload must be a dict"):
        pyuftp.create_message("TestMessage", [("sender_domain", "a.example.com")])


def test_errors_are_all_pyuftp_errors():
    for exc in (pyuftp.ValidationError("x", "y"), pyuftp.MalformedXML("x"),
                pyuftp.UnknownMessageType("x"), pyuftp.UnsupportedVersion("x")):
        assert isinstance(exc, pyuftp.PyUFTPError)


# --- escaping ----------------------------------------------------------------------------------


def test_markup_characters_are_escaped_and_round_trip(official_schema):
    payload = example("FlexOffer")
    nasty = 'A "quoted" <option> & \'more\' ]]> \u20ac'
    payload["offer_options"][0]["option_reference"] = nasty
    payload["baseline_reference"] = '"/><Injected Evil="1'
    xml = pyuftp.create_message("FlexOffer", payload)
    assert "<Injected" not in xml and "<option>" not in xml
    assert_officially_valid(official_schema("3.1.0"), xml)
    assert pyuftp.parse_message(xml) == ("FlexOffer", payload)


# --- parsing what peers send -------------------------------------------------------------------


def test_attribute_values_with_surrounding_whitespace_are_trimmed():
    payload = example("FlexOfferResponse")
    xml = pyuftp.create_message("FlexOfferResponse", payload)
    padded = re.sub(r'="([^"]*)"', r'="  \1 "', xml)
    assert padded != xml
    assert pyuftp.parse_message(padded) == ("FlexOfferResponse", payload)


def test_parse_accepts_bytes_str_and_xml_declaration():
    payload = example("TestMessage")
    xml = pyuftp.create_message("TestMessage", payload)
    declared = '<?xml version="1.0" encoding="UTF-8"?>\n' + xml
    for text in (xml, xml.encode(), declared, declared.encode()):
        assert pyuftp.parse_message(text) == ("TestMessage", payload)


def test_parse_zulu_and_long_fractions():
    payload = example("TestMessage")
    xml = pyuftp.create_message("TestMessage", payload)
    stamp = re.search(r'TimeStamp="([^"]+)"', xml).group(1)
    zulu = xml.replace(stamp, "2026-11-23T09:15:00.1234567Z")
    _, parsed = pyuftp.parse_message(zulu)
    assert parsed["time_stamp"] == dt.datetime(2026, 11, 23, 9, 15, 0, 123456, tzinfo=dt.timezone.utc)


def test_parse_refuses_datetime_without_offset():
    xml = pyuftp.create_message("TestMessage", example("TestMessage"))
    stamp = re.search(r'TimeStamp="([^"]+)"', xml).group(1)
    with pytest.raises(pyuftp.ValidationError) as info:
        pyuftp.parse_message(xml.replace(stamp, "2026-11-23T09:15:00"))
    assert info.value.field == "TestMessage.time_stamp"
    assert "UTC offset" in info.value.reason


@pytest.mark.parametrize(
    "mutate,field,reason",
    [
        (lambda x: x.replace('Power="1003"', 'Power="abc"'),
         "FlexOffer.offer_options[0].isps[3].power", "'abc' is not an integer"),
        (lambda x: re.sub(r' Currency="[A-Z]+"', "", x), "FlexOffer.currency", "is required but missing"),
        (lambda x: x.replace("<OfferOption ", '<OfferOption Colour="red" ', 1),
         "FlexOffer.offer_options[0].colour", "unknown field"),
        (lambda x: x.replace('Start="2"', 'Start="0"'),
         "FlexOffer.offer_options[0].isps[1].start", "is not a positive integer"),
        (lambda x: re.sub(r'MessageID="[^"]+"', 'MessageID="nope"', x, count=1),
         "FlexOffer.message_id", "'nope' is not a UUID"),
    ],
)
def test_schema_invalid_xml_names_the_field(mutate, field, reason):
    xml = pyuftp.create_message("FlexOffer", flex_offer_96())
    bad = mutate(xml)
    assert bad != xml
    with pytest.raises(pyuftp.ValidationError) as info:
        pyuftp.parse_message(bad)
    assert info.value.field == field
    assert reason in info.value.reason


@pytest.mark.parametrize(
    "xml,error",
    [
        (b"", pyuftp.MalformedXML),
        (b"   ", pyuftp.MalformedXML),
        (b"<FlexOffer", pyuftp.MalformedXML),
        (b"not xml at all", pyuftp.MalformedXML),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><TestMessage Version="&a;"/>',
         pyuftp.MalformedXML),
        (b'<TestMessage Version="9.9.9" SenderDomain="a.example.com"/>', pyuftp.UnsupportedVersion),
        (b'<TestMessage SenderDomain="a.example.com"/>', pyuftp.ValidationError),
        (b"<Unknown/>", pyuftp.UnknownMessageType),
        (b"\xff\xfe\x00garbage", pyuftp.MalformedXML),
    ],
)
def test_parse_errors(xml, error):
    with pytest.raises(error):
        pyuftp.parse_message(xml)


def test_parse_rejects_non_text():
    with pytest.raises(pyuftp.MalformedXML):
        pyuftp.parse_message(12345)  # type: ignore[arg-type]


def test_patch_versions_are_served_by_their_minor_schema():
    xml = pyuftp.create_message("TestMessage", example("TestMessage")).replace(
        'Version="3.1.0"', 'Version="3.1.7"'
    )
    assert pyuftp.parse_message(xml)[1]["version"] == "3.1.7"


def test_absent_optional_fields_stay_absent():
    payload = example("FlexOffer")
    for key in ("unsolicited", "contract_id", "d_prognosis_message_id", "baseline_reference"):
        payload.pop(key, None)
    payload["offer_options"][0].pop("min_activation_factor", None)
    _, parsed = pyuftp.parse_message(pyuftp.create_message("FlexOffer", payload))
    assert parsed == payload
    assert "min_activation_factor" not in parsed["offer_options"][0]


def test_none_means_absent_when_creating():
    payload = copy.deepcopy(example("FlexOffer"))
    payload["contract_id"] = None
    _, parsed = pyuftp.parse_message(pyuftp.create_message("FlexOffer", payload))
    assert "contract_id" not in parsed


def test_optional_attribute_on_some_items_only():
    # Lists of ISPs are read a column per attribute; a column that only some ISPs have must
    # not shift values onto the wrong ISP.
    payload = flex_offer_96()
    isps = payload["offer_options"][0]["isps"]
    for index in (0, 7, 95):
        isps[index]["duration"] = index + 1
    xml = pyuftp.create_message("FlexOffer", payload, rules=False)  # overlapping on purpose
    assert xml.count(' Duration="') == 3
    assert pyuftp.parse_message(xml) == ("FlexOffer", payload)


def test_list_items_with_attributes_in_any_order():
    payload = flex_offer_96()
    xml = pyuftp.create_message("FlexOffer", payload)
    # A peer may write the attributes of each ISP in another order, and pad them.
    shuffled, swaps = re.subn(r'<ISP Power="(\d+)" Start="(\d+)"/>',
                              lambda m: (f'<ISP Start=" {m.group(2)}" Power="{m.group(1)} "/>'
                                         if int(m.group(2)) % 3 else m.group(0)),
                              xml)
    assert swaps == 96 and shuffled != xml
    assert pyuftp.parse_message(shuffled) == ("FlexOffer", payload)


class _PlainEnvironment(jinja2.Environment):
    def getattr(self, obj, attribute):  # pyuftp's one rule: an absent key reads as None
        return obj.get(attribute) if isinstance(obj, dict) else super().getattr(obj, attribute)


@pytest.mark.parametrize("message_type,version", CASES)
def test_rendering_is_plain_jinja2_output(message_type, version, monkeypatch):
    # With pyuftp.message.speed on, templates are compiled with shortcuts (inlined shared parts, dict
    # lookups and escaping without Jinja2's hooks); the XML must be exactly what the plain
    # way makes (speed off), and that exactly what an Environment built here makes.
    plain = _PlainEnvironment(loader=jinja2.PackageLoader("pyuftp", "templates"),
                              autoescape=True, trim_blocks=True, lstrip_blocks=True)
    plain.filters.update(FILTERS)
    message = complete_payload(message_type, example(message_type, version), version)
    # render() checks nothing: give every text at the top markup to escape, filtered or not
    for key, value in message.items():
        if isinstance(value, str):
            message[key] = value + ' "quoted" <b>&amp;</b> \'it\''
    expected = plain.get_template(f"{message_type}.xml").render(m=message)
    monkeypatch.setattr(speed, "ENABLED", True)
    fast = render(message_type, message, version)
    monkeypatch.setattr(speed, "ENABLED", False)
    assert render(message_type, message, version) == expected
    assert fast == expected


@pytest.mark.parametrize("index,field,value,reason", [
    (5, "start", 0, "0 is not a positive integer"),
    (95, "power", True, "True is not an integer"),
    (0, "duration", -1, "-1 is not a positive integer"),
    (7, "power", None, "is required but missing"),
])
def test_long_lists_are_checked_item_by_item(index, field, value, reason):
    # Long leaf lists are checked in one quick pass; anything amiss is then named exactly.
    payload = flex_offer_96()
    payload["offer_options"][0]["isps"][index][field] = value
    with pytest.raises(pyuftp.ValidationError) as info:
        pyuftp.create_message("FlexOffer", payload)
    assert str(info.value) == f"FlexOffer.offer_options[0].isps[{index}].{field}: {reason}"


def test_int_subclasses_pass_the_list_check():
    class Level(enum.IntEnum):
        LOW = 5

    payload = flex_offer_96()
    payload["offer_options"][0]["isps"][3]["power"] = Level.LOW
    xml = pyuftp.create_message("FlexOffer", payload)
    assert '<ISP Power="5" Start="4"/>' in xml
