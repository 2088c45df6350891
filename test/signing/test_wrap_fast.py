"""The envelope written without Jinja2 (pyuftp.message.speed on) is the template's, byte for
byte, whatever the sender's domain and role hold; and it opens to what was sealed."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyuftp.message import speed
from pyuftp.signing.crypto import SigningKey, generate_keypair
from pyuftp.signing.envelope import open_envelope, wrap

KEY = SigningKey(generate_keypair()[0])
PAYLOAD = '<TestMessage Note="&lt;é&gt;"/>'
ODD = ["agr.example.com", "AGR", "", "a&b<c>\"d'e", "&amp;", "\u20ac.example", "tab\there",
       "\U0001f600", "x" * 300]


def both(payload, domain, role, monkeypatch):
    outcomes = []
    for enabled in (True, False):
        monkeypatch.setattr(speed, "ENABLED", enabled)
        try:
            outcomes.append(("ok", wrap(payload, KEY, domain, role)))
        except Exception as exc:  # noqa: BLE001 - the same failure both ways is the point
            outcomes.append((type(exc), None))
    return outcomes


@pytest.mark.parametrize("domain", ODD)
@pytest.mark.parametrize("role", ["AGR", "a&<>\"'", "\u20ac"])
def test_fast_and_plain_envelopes_are_the_same_bytes(domain, role, monkeypatch):
    fast, plain = both(PAYLOAD, domain, role, monkeypatch)
    assert fast == plain and fast[0] == "ok"
    for payload in (PAYLOAD.encode(), bytearray(PAYLOAD.encode())):
        assert both(payload, domain, role, monkeypatch) == [fast, fast]


def test_what_cannot_be_written_fails_alike(monkeypatch):
    fast, plain = both(PAYLOAD, "bad\udc80surrogate", "AGR", monkeypatch)
    assert fast == plain == (UnicodeEncodeError, None)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=10))
def test_any_text_writes_the_same_both_ways(domain, role):
    outcomes = []
    for enabled in (True, False):
        speed.ENABLED = enabled
        try:
            outcomes.append(wrap(PAYLOAD, KEY, domain, role))
        except UnicodeEncodeError:
            outcomes.append(None)
        finally:
            speed.ENABLED = True
    assert outcomes[0] == outcomes[1]


def test_the_fast_envelope_opens_to_what_was_sealed():
    data = wrap(PAYLOAD, KEY, "agr.example.com", "AGR")
    envelope = open_envelope(data)
    assert (envelope.sender_domain, envelope.sender_role) == ("agr.example.com", "AGR")
    assert KEY.verify_key.unseal(envelope.sealed) == PAYLOAD.encode()
