"""Fuzzing the parsers: whatever bytes arrive, only pyuftp's documented exceptions come out."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyuftp
from pyuftp.message.catalog import MESSAGE_TYPES
from pyuftp.signing.crypto import generate_keypair
from pyuftp.signing.envelope import open_envelope, open_message, seal_message
from pyuftp.message.examples import example

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

VALID = [pyuftp.create_message(t, example(t)).encode() for t in MESSAGE_TYPES]
PRIVATE, PUBLIC = generate_keypair()
ENVELOPES = [seal_message(t, example(t), PRIVATE, "AGR")[0] for t in ("FlexOffer", "TestMessage")]


@st.composite
def mutated(draw, originals):
    """A valid document with a few bytes flipped, cut, or spliced in."""
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        if kind == "flip":
            data[position] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[position:position + draw(st.integers(1, 40))]
        else:
            data[position:position] = draw(st.sampled_from(
                [b"<", b"&", b'"', b"<!DOCTYPE x>", b"&amp;", b"\x00", b"\xff\xfe", b"]]>",
                 b"<ISP/>", b' Power="x"', b"<!--", b"<?pi?>",
                 # shapes that escaped as non-pyuftp exceptions once (issue #12)
                 b' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="a b"',
                 b' xsi:type="x"', b' ISP-Duration="P1000000000D"', b' ISP-Duration="-PT1M"',
                 b'"9' + b"9" * 4000 + b'"', b"T24:00:00", b"\xed\xa0\x80"]))
        if not data:
            break
    return bytes(data)


PARSE_INPUTS = {
    "arbitrary bytes": st.binary(max_size=2000),
    "mutated messages": mutated(VALID),
    "mutated buffers": mutated(VALID).flatmap(
        lambda data: st.sampled_from([bytearray(data), memoryview(data)])),
    # text with lone surrogates and other characters UTF-8 cannot carry
    "arbitrary text": st.text(st.characters(blacklist_categories=()), max_size=500),
    "mutated text": mutated(VALID).map(lambda data: data.decode("utf-8", "surrogateescape")),
}


@pytest.mark.parametrize("kind", PARSE_INPUTS)
@FUZZ
@given(data=st.data())
def test_parse_message(kind, data):
    try:
        pyuftp.parse_message(data.draw(PARSE_INPUTS[kind]))
    except pyuftp.PyUFTPError:
        pass


@FUZZ
@given(st.one_of(st.binary(max_size=2000), mutated(ENVELOPES)))
def test_envelope_opener(data):
    try:
        open_message(open_envelope(data), PUBLIC)
    except pyuftp.PyUFTPError:
        pass

