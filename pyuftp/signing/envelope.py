"""The SignedMessage envelope: sealed payload XML inside ``<SignedMessage .../>``. No I/O.

    data, sent = seal_message("FlexOffer", payload, signing_key, "AGR")   # bytes to POST
    envelope = open_envelope(data)             # who says they sent it (not yet verified)
    received = open_message(envelope, public_key)

The receiver first reads the envelope to learn the sender's domain and role, looks up that
party's public key, then verifies the seal and checks that the inner message names the same
sender as the envelope.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping

from markupsafe import escape

from ..message import speed
from ..message.catalog import DEFAULT_VERSION
from .crypto import SIGNATURE_BYTES, SigningKey, VerifyKey, verify_key
from ..exceptions import MalformedXML, SenderMismatch, ValidationError, excerpt, quote
from ..message.codec import build_message, parse_xml, read_element, render, validate_element

__all__ = ["Envelope", "Received", "SenderMismatch", "seal_message", "wrap", "open_envelope",
           "open_message", "reopen", "require_utf8"]

#: Byte order marks of the encodings UFTP's "UTF-8" excludes (UTF-32 first: its LE mark
#: begins with UTF-16's).
_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe\x00\x00", "UTF-32"),
         (b"\xfe\xff", "UTF-16"), (b"\xff\xfe", "UTF-16"))
_SPECIAL = frozenset("&<>\"'")
_DECLARED = re.compile(rb"""\A(?:\xef\xbb\xbf)?<\?xml\s[^>]{0,200}?\bencoding\s*=\s*["']"""
                       rb"""([^"'>]{0,40})["']""")


@dataclass(frozen=True)
class Envelope:
    """An opened (not yet verified) SignedMessage."""

    sender_domain: str
    sender_role: str
    sealed: bytes  # signature + payload XML, as the sender's key sealed it


@dataclass(frozen=True)
class Received:
    """A verified, parsed incoming message."""

    message_type: str
    payload: dict[str, Any]
    sender_domain: str
    sender_role: str
    payload_xml: bytes
    signed_xml: bytes | None = None
    #: True when a service handles this message after a restart: it was answered 200 (and
    #: recorded) before the process stopped, and its handling may have begun then.
    recovered: bool = False

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the payload XML: what tells a resend from another message with the
        same MessageID."""
        return hashlib.sha256(self.payload_xml).hexdigest()

    @property
    def message_id(self) -> str:
        return str(self.payload["message_id"])


def wrap(payload_xml: str | bytes, signing_key: SigningKey | str, sender_domain: str,
         sender_role: str) -> bytes:
    """Seal payload XML and put it in a SignedMessage envelope (UTF-8 bytes)."""
    key = signing_key if isinstance(signing_key, SigningKey) else SigningKey(signing_key)
    data = payload_xml.encode("utf-8") if isinstance(payload_xml, str) else payload_xml
    body = binascii.b2a_base64(key.seal(data), newline=False)
    if speed.ENABLED and sender_domain.__class__ is str and sender_role.__class__ is str:
        # What the template writes, as one bytes join: rendering it through Jinja2 cost a
        # third of sealing the payload beside the signature.
        return b"".join((b'<SignedMessage SenderDomain="', _attribute(sender_domain),
                         b'" SenderRole="', _attribute(sender_role), b'" Body="', body,
                         b'"/>'))
    envelope = {"sender_domain": sender_domain, "sender_role": sender_role,
                "body": body.decode("ascii")}
    return render("SignedMessage", envelope).encode("utf-8")


def _attribute(text: str) -> bytes:
    # As the template's autoescape writes a str: & < > " ' as MarkupSafe's entities.
    if _SPECIAL.isdisjoint(text):
        return text.encode("utf-8")
    return str(escape(text)).encode("utf-8")


def seal_message(message_type: str, payload: Mapping[str, Any], signing_key: SigningKey | str,
                 sender_role: str, version: str | None = None) -> tuple[bytes, dict[str, Any]]:
    """Render, validate, seal and wrap a payload: ``(envelope bytes, payload as sent)``."""
    xml, sent = build_message(message_type, payload, version)
    return wrap(xml, signing_key, sent["sender_domain"], sender_role), sent


def require_utf8(data: bytes, what: str) -> None:
    """Raise MalformedXML unless ``data`` is UTF-8 XML, as UTF-8 requires: no UTF-16 or
    UTF-32 byte order mark, no NUL byte, no declaration of another encoding, no byte
    sequence that is not UTF-8. (lxml would read the others, honouring the mark or the
    declaration; the spec says the messages are UTF-8.) Time linear in the size."""
    for mark, encoding in _BOMS:
        if data.startswith(mark):
            raise MalformedXML(f"the {what} must be UTF-8, not {encoding} (it starts with a "
                               f"{encoding} byte order mark)")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise MalformedXML(f"the {what} must be UTF-8: it holds a NUL byte (UTF-16 or "
                           f"UTF-32 text?) at offset {nul}")
    declared = _DECLARED.match(data)
    if declared and declared.group(1).strip().lower() not in (b"utf-8", b"utf8"):
        name = declared.group(1).decode("ascii", "replace")
        raise MalformedXML(f"the {what} must be UTF-8, but its XML declaration names the "
                           f"encoding {quote(name)}")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedXML(f"the {what} must be UTF-8: bytes that are not UTF-8 at offset "
                           f"{exc.start}") from None


def open_envelope(data: bytes | str) -> Envelope:
    """Read and validate a SignedMessage (UTF-8 bytes, or text); raises MalformedXML or
    ValidationError."""
    if not isinstance(data, str):
        require_utf8(bytes(data), "SignedMessage")
    root = parse_xml(data)
    if root.tag != "SignedMessage":
        raise MalformedXML(f"expected a <SignedMessage> envelope, got <{excerpt(root.tag, 40)}>")
    validate_element("SignedMessage", DEFAULT_VERSION, root)
    try:
        sealed = base64.b64decode(root.get("Body", ""), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ValidationError("SignedMessage.body", f"is not valid base64: {exc}") from None
    return Envelope(root.get("SenderDomain", "").strip(), root.get("SenderRole", "").strip(),
                    sealed)


def open_message(envelope: Envelope, public_key: VerifyKey | str,
                 signed_xml: bytes | None = None) -> Received:
    """Verify the seal, parse and validate the inner message, check the sender matches.

    Raises InvalidSignature, MalformedXML, ValidationError, UnknownMessageType,
    UnsupportedVersion or SenderMismatch.
    """
    payload_xml = verify_key(public_key).unseal(envelope.sealed)
    require_utf8(payload_xml, "signed message")
    message_type, payload = read_element(parse_xml(payload_xml))
    received = Received(message_type, payload, envelope.sender_domain, envelope.sender_role,
                        payload_xml, signed_xml)
    if payload["sender_domain"] != envelope.sender_domain:
        raise SenderMismatch(
            f"the envelope comes from {quote(envelope.sender_domain)} "
            f"but the {message_type} inside "
            f"names {quote(payload['sender_domain'])} as its sender",
            received,
        )
    return received


def reopen(data: bytes) -> Received:
    """A message verified when it arrived, read again from the SignedMessage bytes a store
    kept (after a restart): the seal is the signature followed by the payload XML."""
    envelope = open_envelope(data)
    payload_xml = envelope.sealed[SIGNATURE_BYTES:]
    message_type, payload = read_element(parse_xml(payload_xml))
    return Received(message_type, payload, envelope.sender_domain, envelope.sender_role,
                    payload_xml, data, recovered=True)
