"""The message layer on untrusted input: linear work, pyuftp errors only, fields named right.

Each case here was found by an attack run or a fuzzer against an earlier pyuftp (issue #12).
"""
from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

import pyuftp
from pyuftp.signing.envelope import open_envelope, open_message, seal_message, wrap
from pyuftp.message.examples import example
from pyuftp.exceptions import MalformedXML, ValidationError
from pyuftp.message.codec import MAX_ATTRIBUTES, MAX_CHILDREN, MAX_DEPTH, parse_xml

from conftest import fresh

PRIVATE, PUBLIC = pyuftp.generate_keypair()


def flex_offer_xml(**replace: str) -> str:
    xml = pyuftp.create_message("FlexOffer", example("FlexOffer"))
    for old, new in replace.items():
        assert old in xml
        xml = xml.replace(old, new)
    return xml


# --- shapes no UFTP message has ------------------------------------------------------------


@pytest.mark.parametrize("count", [MAX_ATTRIBUTES + 1, 40_000, 100_000])
def test_many_attributes_are_refused_at_once(count):
    attrs = " ".join(f'a{i}="1"' for i in range(count))
    data = f'<SignedMessage SenderDomain="a.example.com" SenderRole="AGR" Body="AAAA" {attrs}/>'
    started = time.perf_counter()
    with pytest.raises(MalformedXML, match="more than 40 attributes"):
        open_envelope(data.encode())
    # 40,000 took 10 s when the schema-error path touched every attribute (quadratic).
    assert time.perf_counter() - started < 1.0


def test_many_attributes_inside_a_payload_are_refused():
    xml = flex_offer_xml(**{'<ISP ': "<ISP " + " ".join(f'x{i}="1"' for i in range(50)) + " "})
    with pytest.raises(MalformedXML, match="<ISP> has more than 40 attributes"):
        pyuftp.parse_message(xml)


def test_depth_beyond_uftp_is_refused():
    data = "<TestMessage>" + "<a>" * MAX_DEPTH + "</a>" * MAX_DEPTH + "</TestMessage>"
    with pytest.raises(MalformedXML, match="nested more than 8 levels"):
        parse_xml(data)


def test_too_many_children_are_refused():
    data = "<FlexOffer>" + "<ISP/>" * (MAX_CHILDREN + 1) + "</FlexOffer>"
    with pytest.raises(MalformedXML, match="more than 50000 child elements"):
        parse_xml(data)


def test_the_widest_and_deepest_real_messages_pass_the_shape_check():
    for message_type in ("FlexOrder", "AGRPortfolioQueryResponse", "FlexSettlement"):
        xml = pyuftp.create_message(message_type, example(message_type))
        assert pyuftp.parse_message(xml)[0] == message_type


# --- inputs that used to escape as non-pyuftp exceptions -----------------------------------


def test_xsi_attributes_are_ignored_not_a_crash():
    # KeyError before: the schema lets xsi: hints through, the reader did not know them.
    xml = pyuftp.create_message("TestMessage", fresh("TestMessage", sender_domain="a.example.com",
                                                     recipient_domain="b.example.com"))
    xml = xml.replace("<TestMessage ", '<TestMessage xmlns:xsi="http://www.w3.org/2001/XMLSchema-'
                      'instance" xsi:schemaLocation="urn:x UFTP-agr-dso.xsd" ', 1)
    message_type, payload = pyuftp.parse_message(xml)
    assert message_type == "TestMessage"
    assert not any("schema" in key for key in payload)


@pytest.mark.parametrize("duration", ["P1000000000D", "-PT15M", "PT0S", "P2D"])
def test_absurd_isp_durations_are_refused_with_the_field(duration):
    # OverflowError before for P1000000000D; the others were accepted quietly.
    with pytest.raises(ValidationError) as caught:
        pyuftp.parse_message(flex_offer_xml(**{'ISP-Duration="PT15M"': f'ISP-Duration="{duration}"'}))
    assert caught.value.field == "FlexOffer.isp_duration"


@pytest.mark.parametrize("value", [dt.timedelta(0), dt.timedelta(minutes=-15), dt.timedelta(days=2)])
def test_absurd_isp_durations_are_refused_when_sending(value):
    with pytest.raises(ValidationError, match="not an ISP duration") as caught:
        pyuftp.create_message("FlexOffer", dict(example("FlexOffer"), isp_duration=value))
    assert caught.value.field == "FlexOffer.isp_duration"


def test_a_lone_surrogate_is_malformed_xml():
    # UnicodeEncodeError before.
    with pytest.raises(MalformedXML, match="UTF-8"):
        pyuftp.parse_message("<TestMessage Version='3.1.0' X='\ud800'/>")


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_buffer_types_are_read_like_bytes(kind):
    # AttributeError before for memoryview.
    xml = pyuftp.create_message("FlexOffer", example("FlexOffer")).encode()
    assert pyuftp.parse_message(kind(xml)) == pyuftp.parse_message(xml)


@pytest.mark.parametrize("value", [None, 12, 1.5, object()])
def test_other_types_are_malformed_xml(value):
    with pytest.raises(MalformedXML, match="expected XML as str or bytes"):
        pyuftp.parse_message(value)


def test_a_4000_digit_price_is_refused_both_ways():
    digits = "9" * 4000
    with pytest.raises(ValidationError) as caught:
        pyuftp.parse_message(flex_offer_xml(**{'Price="180.00"': f'Price="{digits}"'}))
    assert caught.value.field == "FlexOffer.offer_options[0].price"
    assert len(str(caught.value)) < 300  # the number is quoted as an excerpt only
    offer = example("FlexOffer")
    offer["offer_options"][0]["price"] = Decimal(digits)
    with pytest.raises(ValidationError, match="too large") as caught:
        pyuftp.create_message("FlexOffer", offer)
    assert caught.value.field == "FlexOffer.offer_options[0].price"


def test_power_beyond_64_bits_is_refused_both_ways():
    offer = example("FlexOffer")
    offer["offer_options"][0]["isps"][0]["power"] = 2**63
    with pytest.raises(ValidationError, match="out of range") as caught:
        pyuftp.create_message("FlexOffer", offer)
    assert caught.value.field == "FlexOffer.offer_options[0].isps[0].power"
    xml = pyuftp.create_message("FlexOffer", example("FlexOffer"))
    power = xml.split('Power="', 1)[1].split('"', 1)[0]
    with pytest.raises(ValidationError) as caught:
        pyuftp.parse_message(xml.replace(f'Power="{power}"', f'Power="{2**63}"', 1))
    assert caught.value.field == "FlexOffer.offer_options[0].isps[0].power"


def test_negative_penalty_and_power_deficiency_are_refused():
    settlement = example("FlexSettlement")
    order = settlement["flex_order_settlements"][0]
    with pytest.raises(ValidationError, match="0 or more") as caught:
        pyuftp.create_message("FlexSettlement", {**settlement, "flex_order_settlements": [
            {**order, "penalty": Decimal("-1")}]})
    assert caught.value.field == "FlexSettlement.flex_order_settlements[0].penalty"
    isp = dict(order["isps"][0], power_deficiency=-5)
    with pytest.raises(ValidationError, match="0 or more") as caught:
        pyuftp.create_message("FlexSettlement", {**settlement, "flex_order_settlements": [
            {**order, "isps": [isp]}]})
    assert caught.value.field == "FlexSettlement.flex_order_settlements[0].isps[0].power_deficiency"


def test_a_negative_offer_price_is_allowed():
    # The spec does not forbid it (an AGR may pay to be activated), nor does the reference
    # library; only the penalty (due for a deficiency) must not be negative.
    offer = example("FlexOffer")
    offer["offer_options"][0]["price"] = Decimal("-12.50")
    assert pyuftp.parse_message(pyuftp.create_message("FlexOffer", offer))[1] \
        ["offer_options"][0]["price"] == Decimal("-12.50")


def test_hour_24_is_reported_in_the_field_that_has_it():
    # It was reported as offer_options[0].isps[1].duration, whose text happened to match.
    xml = flex_offer_xml()
    stamp = xml.split('TimeStamp="', 1)[1].split('"', 1)[0]
    xml = xml.replace(f'TimeStamp="{stamp}"', 'TimeStamp="2026-11-23T24:00:00+00:00"')
    with pytest.raises(ValidationError, match="T24:00:00") as caught:
        pyuftp.parse_message(xml)
    assert caught.value.field == "FlexOffer.time_stamp"


def test_an_unreadable_expiration_is_named():
    xml = pyuftp.create_message("FlexOffer", example("FlexOffer"))
    stamp = xml.split('ExpirationDateTime="', 1)[1].split('"', 1)[0]
    xml = xml.replace(stamp, "2026-11-23T24:00:00Z")
    with pytest.raises(ValidationError) as caught:
        pyuftp.parse_message(xml)
    assert caught.value.field == "FlexOffer.expiration_date_time"


# --- floats and ints as decimals (one rule, documented) ------------------------------------


def test_a_float_price_is_refused_with_a_hint():
    offer = example("FlexOffer")
    offer["offer_options"][0]["price"] = 0.1 + 0.2
    with pytest.raises(ValidationError, match=r"float; use decimal.Decimal"):
        pyuftp.create_message("FlexOffer", offer)


def test_an_int_price_renders_as_an_integer():
    offer = example("FlexOffer")
    offer["offer_options"][0]["price"] = 12
    xml = pyuftp.create_message("FlexOffer", offer)
    assert 'Price="12"' in xml
    assert pyuftp.parse_message(xml)[1]["offer_options"][0]["price"] == Decimal(12)


# --- quoting sender data ---------------------------------------------------------------------


def test_errors_quote_at_most_an_excerpt_of_what_was_sent():
    huge = "x" * 100_000
    with pytest.raises(ValidationError) as caught:
        pyuftp.parse_message(flex_offer_xml(**{'Currency="EUR"': f'Currency="{huge}"'}))
    assert len(caught.value.reason) < 200
    with pytest.raises(MalformedXML) as caught:
        pyuftp.parse_message(f"<{huge}>")
    assert len(str(caught.value)) < 200


def test_a_signed_payload_with_an_xsi_attribute_opens():
    xml = pyuftp.create_message("TestMessage", fresh("TestMessage", sender_domain="a.example.com",
                                                     recipient_domain="b.example.com"))
    xml = xml.replace("<TestMessage ", '<TestMessage xmlns:xsi="http://www.w3.org/2001/XMLSchema-'
                      'instance" xsi:noNamespaceSchemaLocation="x.xsd" ', 1)
    envelope = open_envelope(wrap(xml, PRIVATE, "a.example.com", "AGR"))
    assert open_message(envelope, PUBLIC).message_type == "TestMessage"
    data, _ = seal_message("TestMessage", fresh("TestMessage", sender_domain="a.example.com",
                                                recipient_domain="b.example.com"), PRIVATE, "AGR")
    assert open_envelope(memoryview(data)).sender_domain == "a.example.com"
