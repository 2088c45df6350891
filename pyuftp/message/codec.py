"""The message layer: payload dicts to UFTP XML and back. No I/O.

    xml = create_message("FlexOffer", {...})      # dict -> checked -> rendered XML
    message_type, payload = parse_message(xml)    # XML -> XSD-validated -> dict

One generic renderer (a Jinja2 template per message type, :mod:`pyuftp.message.render`) and one
generic reader (driven by the field-type table in :mod:`pyuftp.message.catalog`,
:mod:`pyuftp.message.read`) serve all message types; payload dicts are checked by
:mod:`pyuftp.message.check`. Templates, checkers, readers and schemas are built once per
process, on first use, so that ``import pyuftp`` stays cheap. This module is the public face of
those parts.

What pyuftp writes is checked as a dict, not validated again as XML: the checker and the
packaged XSDs are generated from the same table, and the tests validate every rendered message
type in every version against the official XSDs. For debugging, ``validate_output=True`` (or
``PYUFTP_VALIDATE_OUTPUT=1`` in the environment, for every call) validates the XML too. What
pyuftp receives is always validated.
"""
from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Mapping
from typing import Any

from .catalog import DEFAULT_VERSION, spec
from .check import check
from ..exceptions import UnknownMessageType, ValidationError, quote
from .read import (
    MAX_ATTRIBUTES,
    MAX_CHILDREN,
    MAX_DEPTH,
    parse_xml,
    read_element,
    schema,
    validate_element,
    validate_rendered,
)
from .render import render

__all__ = [
    "create_message", "build_message", "parse_message", "check_payload", "complete_payload",
    "supported_version", "read_element", "render", "schema", "parse_xml", "validate_element",
    "MAX_ATTRIBUTES", "MAX_CHILDREN", "MAX_DEPTH", "VALIDATE_OUTPUT",
]

#: Validate every rendered message against pyuftp's XSD (``PYUFTP_VALIDATE_OUTPUT=1`` in the
#: environment when pyuftp is imported): a debugging switch, for the whole process.
VALIDATE_OUTPUT: bool = (
    os.environ.get("PYUFTP_VALIDATE_OUTPUT", "").strip().lower() in ("1", "true", "yes", "on"))


def supported_version(version: Any) -> str:
    """The schema version that serves ``version`` ('3.1.2' is served by 3.1.0's schema)."""
    return spec(version).version


def check_payload(message_type: str, payload: Mapping[str, Any],
                  version: str | None = None) -> None:
    """Raise :class:`ValidationError` (naming the field in dict terms) if ``payload`` does not
    fit ``message_type`` in ``version`` (default 3.1.0), :class:`UnknownMessageType` if there
    is no such message type."""
    check(message_type, payload, spec(version))


# The version and variant bits of a random (version 4) UUID, and the bits they replace.
_UUID4_KEEP = ~(0xF000 << 64 | 0xC000 << 48)
_UUID4_SET = 0x4000 << 64 | 0x8000 << 48


def new_uuid4() -> str:
    """``str(uuid.uuid4())``, from the same 16 bytes of os.urandom, in half its time (a send
    makes two: MessageID and ConversationID)."""
    number = int.from_bytes(os.urandom(16), "big") & _UUID4_KEEP | _UUID4_SET
    text = "%032x" % number
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _with_metadata(payload: Mapping[str, Any], version: str) -> dict[str, Any]:
    message = dict(payload)
    if message.get("version") is None:
        message["version"] = version
    if message.get("message_id") is None:
        message["message_id"] = new_uuid4()
    if message.get("conversation_id") is None:
        message["conversation_id"] = new_uuid4()
    if message.get("time_stamp") is None:
        message["time_stamp"] = _dt.datetime.now(_dt.timezone.utc)
    return message


def complete_payload(message_type: str, payload: Mapping[str, Any],
                     version: str | None = None, *, dialect: str | None = None) -> dict[str, Any]:
    """A copy of ``payload`` with the metadata filled in and everything checked.

    ``version``, ``message_id``, ``conversation_id`` (new UUID4s) and ``time_stamp`` (now,
    UTC) are added where the payload leaves them out; ``sender_domain`` and
    ``recipient_domain`` are required. ``dialect`` checks it as the recipient's software
    wants it where that differs from the official schemas
    (:data:`pyuftp.message.catalog.DIALECTS`).
    """
    if not isinstance(payload, Mapping):
        raise ValidationError(message_type,
                              f"payload must be a dict, got {type(payload).__name__}")
    if not isinstance(message_type, str):
        raise UnknownMessageType(f"message type must be a str, got {quote(message_type)}")
    own = payload.get("version")
    if own is not None and version is not None and own != version:
        raise ValidationError(f"{message_type}.version",
                              f"the payload says {quote(own)} but version={quote(version)} "
                              f"was asked for")
    requested = own or version or DEFAULT_VERSION
    served = spec(requested)
    message = _with_metadata(payload, requested)
    check(message_type, message, served, dialect)
    return message


#: ``(message_type, payload) -> None``, raising to refuse: what runs before rendering (the
#: stateless business rules, which the message layer itself does not know).
Enforce = Callable[[str, dict[str, Any]], None]


def create_message(message_type: str, payload: Mapping[str, Any], version: str | None = None,
                   *, validate_output: bool = False, enforce: Enforce | None = None,
                   dialect: str | None = None) -> str:
    """Render ``payload`` as the XML of a UFTP ``message_type`` message.

    ``version`` defaults to the payload's own ``version``, else 3.1.0; the two may not differ.
    The payload is checked against the field-type table first (errors name the field, e.g.
    ``FlexOffer.offer_options[0].isps[3].power: 'abc' is not an integer``), so nothing
    invalid leaves this call. Then ``enforce(message_type, payload)`` runs, if given, on the
    payload with its metadata filled in: :func:`pyuftp.create_message` passes the stateless
    business rules there. ``validate_output=True`` also validates the XML against pyuftp's
    schema of the version (see the module's docstring). ``dialect="java"`` writes what that
    counterparty's software accepts where it differs from the official schemas (see
    :data:`pyuftp.message.catalog.DIALECTS` and the dialects page).
    """
    return build_message(message_type, payload, version, validate_output=validate_output,
                         enforce=enforce, dialect=dialect)[0]


def build_message(message_type: str, payload: Mapping[str, Any], version: str | None = None,
                  *, validate_output: bool = False, enforce: Enforce | None = None,
                  dialect: str | None = None) -> tuple[str, dict[str, Any]]:
    """Like :func:`create_message`, also returning the payload as sent (metadata filled in)."""
    message = complete_payload(message_type, payload, version, dialect=dialect)
    if enforce is not None:
        enforce(message_type, message)
    served = spec(message["version"])
    try:
        xml = render(message_type, message, served.version)
    except Exception as exc:  # noqa: BLE001 - any template failure is reported the same way
        # The checker should have caught this; say where it happened in dict terms anyway.
        raise ValidationError(message_type, f"cannot be rendered: {exc}") from exc
    if validate_output or VALIDATE_OUTPUT:
        # A dialect's message differs from the strict schema within what pyuftp reads.
        validate_rendered(message_type, served, xml, received=dialect not in (None, "uftp"))
    return xml, message


def parse_message(xml: str | bytes | bytearray | memoryview) -> tuple[str, dict[str, Any]]:
    """Parse UFTP payload XML into ``(message_type, payload)``, validated against the schema
    of the version the message names.

    Raises :class:`MalformedXML`, :class:`UnknownMessageType`, :class:`UnsupportedVersion` or
    :class:`ValidationError` (naming the field in dict terms), all :class:`PyUFTPError`.
    """
    return read_element(parse_xml(xml))
