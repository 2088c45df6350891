"""Commands that look at messages: ``example``, ``validate``, ``show``, ``convert``; and
:func:`load`, which reads a message in any of its three forms (payload XML, SignedMessage,
JSON form) for these and the signing and sending commands."""
from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._common import (BAD, OK, Bad, Commands, add_command, add_file, add_json, message_type,
                      print_json, public_key, read_input)
from ._format import format_payload, format_xml

if TYPE_CHECKING:
    from ..signing.crypto import VerifyKey
    from ..signing.envelope import Envelope


@dataclass
class Loaded:
    """A message read from a file."""

    message_type: str
    payload: dict[str, Any]
    payload_xml: bytes                  # the payload XML (rendered when the input was JSON)
    envelope: Envelope | None = None    # set when the input was a SignedMessage
    verified: bool | None = None        # the envelope's signature: None when not checked
    form: str = "xml"                   # "xml", "signed" or "json"
    notes: list[str] = field(default_factory=list)


def load(data: bytes, key: VerifyKey | None = None) -> Loaded:
    """Read ``data``: payload XML, a SignedMessage (opened; its signature checked with
    ``key`` if given) or the JSON form. Raises :class:`Bad` naming what is wrong."""
    from ..signing.envelope import open_envelope, open_message
    from ..exceptions import PyUFTPError
    from ..message.json_form import from_json
    from ..message.codec import build_message, parse_message
    from ..signing.crypto import SIGNATURE_BYTES
    from ._common import is_json, is_signed_message

    try:
        if is_json(data):
            kind, payload = from_json(data)
            xml, sent = build_message(kind, payload)
            return Loaded(kind, sent, xml.encode("utf-8"), form="json")
        if is_signed_message(data):
            envelope = open_envelope(data)
            if key is not None:
                received = open_message(envelope, key)
                return Loaded(received.message_type, received.payload, received.payload_xml,
                              envelope, True, "signed")
            inner = envelope.sealed[SIGNATURE_BYTES:]
            kind, payload = parse_message(inner)
            return Loaded(kind, payload, inner, envelope, None, "signed",
                          ["the signature was not checked (give --key to check it)"])
        kind, payload = parse_message(data)
        return Loaded(kind, payload, data)
    except PyUFTPError as exc:
        raise Bad(str(exc)) from None


# --- example ----------------------------------------------------------------------------------


def _example(args: argparse.Namespace) -> int:
    from ..message.codec import create_message, parse_message  # the type is a variable here
    from ..message.examples import example

    xml = create_message(args.message_type, example(args.message_type, args.version),
                         version=args.version)
    kind, payload = parse_message(xml)
    print(format_xml(xml))
    print()
    print(f"{kind!r}")
    print(format_payload(kind, payload, args.version))
    return OK


def _types_epilog() -> str:
    from ..message.catalog import MESSAGE_TYPES

    return "message types:\n" + textwrap.fill(", ".join(MESSAGE_TYPES), width=78,
                                               initial_indent="  ", subsequent_indent="  ",
                                               break_on_hyphens=False)


def add_example(commands: Commands[argparse.ArgumentParser]) -> None:
    from ..message.catalog import DEFAULT_VERSION, VERSIONS

    parser = add_command(
        commands, "example", "render and parse an example message",
        textwrap.fill("Render the example payload of one message type to UFTP XML, parse the "
                      "XML back, and print both: the XML, then the dict in the message's "
                      "field order.", width=78),
        _example, epilog=_types_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("message_type", nargs="?", default="FlexOffer", type=message_type,
                        metavar="MESSAGE_TYPE",
                        help="the message type (default: FlexOffer; the list is below)")
    parser.add_argument("--version", default=DEFAULT_VERSION, choices=VERSIONS,
                        help=f"the UFTP version: {' or '.join(VERSIONS)} "
                             f"(default: {DEFAULT_VERSION})")


# --- validate ---------------------------------------------------------------------------------


def problems(data: bytes, rules: bool = True) -> dict[str, Any]:
    """Everything wrong with ``data`` (payload XML or a SignedMessage and the payload in
    it): every schema error in dict terms, then (when the schema is met) the business rules'
    problems. ``{"valid", "message_type", "version", "errors": [{"field", "reason"}],
    "rules": [...]}``."""
    from ..message.catalog import spec
    from ..signing.crypto import SIGNATURE_BYTES
    from ..signing.envelope import open_envelope
    from ..exceptions import PyUFTPError, ValidationError
    from ..message.read import _strip_attributes, parse_xml, read_element, schema
    from ..rules import DEFAULT_RULES
    from ..message.schema_errors import schema_error
    from ._common import is_signed_message

    report: dict[str, Any] = {"valid": False, "message_type": None, "version": None,
                              "signed": False, "errors": [], "rules": []}

    def error(exc: PyUFTPError) -> dict[str, Any]:
        if isinstance(exc, ValidationError):
            report["errors"].append({"field": exc.field, "reason": exc.reason})
        else:
            report["errors"].append({"field": None, "reason": str(exc)})
        return report

    try:
        if is_signed_message(data):
            report["signed"] = True
            data = open_envelope(data).sealed[SIGNATURE_BYTES:]
        root = parse_xml(data)
        kind, declared = root.tag, root.get("Version")
        served = spec(declared)
        report["message_type"], report["version"] = kind, declared
        if isinstance(kind, str) and kind in served.messages and declared is not None:
            xsd = schema(served, received=True)
            if not xsd.validate(root) and not (_strip_attributes(root) and xsd.validate(root)):
                for entry in xsd.error_log:
                    error(schema_error(kind, served, root, [entry], received=True))
                return report
        kind, payload = read_element(root)  # raises what the checks above leave
    except PyUFTPError as exc:
        return error(exc)
    if rules:
        report["rules"] = DEFAULT_RULES.check(kind, payload, direction="in",
                                              counterparty=str(payload.get("sender_domain")))
    report["valid"] = not report["rules"]
    return report


def _validate(args: argparse.Namespace) -> int:
    report = problems(read_input(args.file), rules=not args.no_rules)
    if args.json:
        print_json(report)
        return OK if report["valid"] else BAD
    what = " ".join(str(report[k]) for k in ("message_type", "version") if report[k]) or \
        "the document"
    if report["valid"]:
        print(f"{args.file}: valid {what}" + (" (in a SignedMessage; signature not checked)"
                                               if report["signed"] else ""))
        return OK
    count = len(report["errors"]) + len(report["rules"])
    print(f"{args.file}: invalid {what}: {count} problem{'s' * (count != 1)}")
    for item in report["errors"]:
        print(f"  {item['field']}: {item['reason']}" if item["field"] else f"  {item['reason']}")
    for problem in report["rules"]:
        print(f"  rule: {problem}")
    return BAD


def add_validate(commands: Commands[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands, "validate", "check that a message is valid UFTP for its version",
        "Check UFTP XML (a payload message, or a SignedMessage and the payload inside it) "
        "against the schema of the version it names, then against the business rules. "
        "Prints every problem, naming the field in dict terms "
        "(FlexOffer.offer_options[0].isps[3].power). Exit status 0: valid; 1: invalid.",
        _validate)
    add_file(parser, "the UFTP XML")
    parser.add_argument("--no-rules", action="store_true",
                        help="check the schema only, not the business rules")
    add_json(parser, "the report")


# --- show ---------------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    from ..message.json_form import to_jsonable

    loaded = load(read_input(args.file), public_key(args.key) if args.key else None)
    if args.json:
        report: dict[str, Any] = {"message_type": loaded.message_type,
                                  "payload": to_jsonable(loaded.payload)}
        if loaded.envelope is not None:
            report["envelope"] = {"sender_domain": loaded.envelope.sender_domain,
                                  "sender_role": loaded.envelope.sender_role,
                                  "signature_verified": loaded.verified}
        print_json(report)
        return OK
    if loaded.envelope is not None:
        state = "verified" if loaded.verified else "NOT checked (give --key to check it)"
        print(f"# SignedMessage from {loaded.envelope.sender_domain} "
              f"({loaded.envelope.sender_role}); signature {state}")
    print(f"{loaded.message_type!r}")
    print(format_payload(loaded.message_type, loaded.payload))
    return OK


def add_show(commands: Commands[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands, "show", "print a message as its dict",
        "Print a message (payload XML, a SignedMessage, or the JSON form) as the dict pyuftp "
        "makes of it, in the message's field order. A SignedMessage is opened; with --key "
        "its signature is checked too (exit status 1 if it does not verify).", _show)
    add_file(parser)
    parser.add_argument("--key", metavar="PUBLIC",
                        help="the sender's public key (base64, cs1., or a keys file)")
    add_json(parser, "the message in its JSON form")


# --- convert ------------------------------------------------------------------------------


def _convert(args: argparse.Namespace) -> int:
    from ..message.json_form import to_json

    data = read_input(args.file)
    loaded = load(data)
    target = args.to or ("xml" if loaded.form == "json" else "json")
    if target == "json":
        print(to_json(loaded.message_type, loaded.payload))
    else:
        text = loaded.payload_xml.decode("utf-8")
        if loaded.form != "json":  # XML in, XML out: the same message, written by pyuftp
            from ..message.codec import create_message
            text = create_message(loaded.message_type, loaded.payload)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return OK


def add_convert(commands: Commands[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands, "convert", "convert a message between XML and JSON",
        "Convert a message between UFTP XML and its JSON form: {\"message_type\": ..., "
        "\"payload\": {...}} with the dict's keys, date-times, dates and durations as ISO "
        "8601 strings and decimals as strings (lossless both ways). XML becomes JSON and "
        "JSON becomes XML unless --to says otherwise; a SignedMessage gives its payload.",
        _convert)
    add_file(parser)
    parser.add_argument("--to", choices=("json", "xml"), help="the form to write")
