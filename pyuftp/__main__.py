"""The ``pyuftp`` command line.

    pyuftp example FlexOffer     render an example message, parse it back, show both
    pyuftp keygen                print a new CS1 key pair
    pyuftp demo                  a full UFTP trading cycle between DSO, AGR and CRO on loopback

It also holds the two printers that show a message to people, here and on the docs'
representations page (``tools/make_docs.py`` imports them): :func:`format_xml` (attributes
one per line when a start tag is long) and :func:`format_payload` (a dict in the message's
field order, one line per field).
"""
from __future__ import annotations

import argparse
import datetime
import sys
import textwrap
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape, quoteattr

XML_WIDTH = 80
PAYLOAD_WIDTH = 80
INDENT = "    "

DESCRIPTION = ("pyuftp: the USEF Flex Trading Protocol (UFTP, Shapeshifter) as plain Python "
               "dicts, signed and sent over HTTP.")


# --- showing messages -----------------------------------------------------------------------


def format_xml(xml: str, width: int = XML_WIDTH) -> str:
    """``xml`` indented by two spaces per level; a start tag longer than ``width`` gets its
    attributes one per line, indented below the element name. Comments and text are kept;
    the XML means the same as before."""
    from lxml import etree  # type: ignore[import-untyped, unused-ignore]

    root = etree.fromstring(xml.encode("utf-8"))
    lines: list[str] = []
    _xml_element(root, 0, width, lines)
    return "\n".join(lines)


def _xml_element(element: Any, depth: int, width: int, lines: list[str]) -> None:
    pad = "  " * depth
    if not isinstance(element.tag, str):  # a comment or processing instruction
        lines.append(pad + str(element).strip())
        return
    attrs = [f"{name}={quoteattr(value)}" for name, value in element.attrib.items()]
    children = list(element)
    text = (element.text or "").strip()
    end = "/>" if not children and not text else ">"
    one_line = f"{pad}<{element.tag}{''.join(' ' + a for a in attrs)}{end}"
    if len(one_line) <= width or not attrs:
        lines.append(one_line)
    else:
        lines.append(f"{pad}<{element.tag}")
        lines += [f"{pad}    {a}" for a in attrs]
        lines[-1] += end
    if text and not children:
        lines[-1] += f"{escape(text)}</{element.tag}>"
        return
    for child in children:
        _xml_element(child, depth + 1, width, lines)
    if children or text:
        lines.append(f"{pad}</{element.tag}>")


def _value(value: Any) -> str:
    # repr, except for a date-time with an offset other than UTC, whose repr is long
    if (isinstance(value, datetime.datetime) and value.tzinfo is not None
            and value.tzinfo is not datetime.timezone.utc):
        return f"datetime.datetime.fromisoformat({value.isoformat()!r})"
    return repr(value)


def _ordered(mapping: Mapping[str, Any], order: list[str]) -> list[str]:
    return [k for k in order if k in mapping] + sorted(k for k in mapping if k not in order)


def _node_order(node: Any, key: str) -> tuple[list[str], Any]:
    """The field order of the child ``key`` of ``node`` and that child's node."""
    for child in getattr(node, "children", ()):
        if child.key == key:
            return child.node.keys(), child.node
    return [], None


def _format(value: Any, node: Any, order: list[str], indent: str, width: int) -> str:
    """``value`` as Python source starting at column ``len(indent)``; containers that hold
    only plain values and fit on the line stay on one line."""
    if isinstance(value, Mapping):
        keys = _ordered(value, order)
        inner = indent + INDENT
        items = []
        for key in keys:
            sub_order, sub_node = _node_order(node, key)
            text = _format(value[key], sub_node, sub_order, inner, width)
            head = f"{inner}{key!r}: "
            if "\n" not in text and len(head) + len(text) + 1 > width:
                text = "\n" + inner + INDENT + _format(value[key], sub_node, sub_order,
                                                      inner + INDENT, width)
            items.append(head.rstrip() + text if text.startswith("\n") else head + text)
        flat = all(not isinstance(value[k], (Mapping, list)) for k in keys)
        line = "{" + ", ".join(f"{k!r}: {_value(value[k])}" for k in keys) + "}"
        if flat and indent and len(indent) + len(line) + 1 <= width:
            return line
        return "{\n" + ",\n".join(items) + ",\n" + indent + "}" if items else "{}"
    if isinstance(value, list):
        inner = indent + INDENT
        items = [inner + _format(item, node, order, inner, width) for item in value]
        return "[\n" + ",\n".join(items) + ",\n" + indent + "]" if items else "[]"
    text = _value(value)
    if isinstance(value, str) and len(indent) + len(text) + 1 > width and " " in value:
        return _long_string(value, indent + INDENT, width)
    return text


def _long_string(value: str, indent: str, width: int) -> str:
    """A long string as adjacent literals in parentheses, cut after spaces."""
    room = max(20, width - len(indent) - 3)
    parts, current = [], ""
    for word in value.split(" "):
        if current and len(repr(current + word)) > room:
            parts.append(current)
            current = ""
        current += word + " "
    parts.append(current[:-1])
    return "(\n" + "\n".join(indent + repr(part) for part in parts) + "\n" + indent[
        :-len(INDENT)] + ")"


def format_payload(message_type: str, payload: Mapping[str, Any], version: str | None = None,
                   width: int = PAYLOAD_WIDTH) -> str:
    """``payload`` as Python source in the message's own field order (attributes, then
    child elements, as in the field table of :mod:`pyuftp.catalog`), one line per field;
    nested lists and dicts are indented, small ones of plain values kept on one line."""
    from .catalog import spec

    node = spec(version if version is not None else payload.get("version")).received.get(
        message_type)
    order = node.keys() if node is not None else []
    return _format(payload, node, order, "", width)


# --- the commands -----------------------------------------------------------------------------


def _example(args: argparse.Namespace) -> int:
    from . import create_message, parse_message
    from .examples import example

    xml = create_message(args.message_type, example(args.message_type, args.version),
                         version=args.version)
    message_type, payload = parse_message(xml)
    print(format_xml(xml))
    print()
    print(f"{message_type!r}")
    print(format_payload(message_type, payload, args.version))
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from .crypto import SigningKey, generate_keypair

    private_key, public_key = generate_keypair()
    print(f"private key (keep secret): {private_key}")
    print(f"public key:                {public_key}")
    print(f"publish as:                {SigningKey(private_key).public_key_cs1}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main(quiet=args.quiet)


def _store(args: argparse.Namespace) -> int:
    from .store import StoreError, open_store

    try:
        store = open_store(args.url)
    except (StoreError, ValueError) as exc:
        print(f"pyuftp store migrate: {exc}", file=sys.stderr)
        return 1
    try:
        migrate = getattr(store, "migrate", None)  # SQLite and memory stores migrate on open
        found = migrate() if migrate is not None else None
    except StoreError as exc:
        print(f"pyuftp store migrate: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"{store!r}: schema up to date" + (f" (was {found})" if found is not None else ""))
    return 0


def _types_epilog(message_types: tuple[str, ...]) -> str:
    return "message types:\n" + textwrap.fill(", ".join(message_types), width=78,
                                               initial_indent="  ", subsequent_indent="  ",
                                               break_on_hyphens=False)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m pyuftp``."""
    from . import __version__
    from .catalog import DEFAULT_VERSION, MESSAGE_TYPES, VERSIONS

    parser = argparse.ArgumentParser(
        prog="pyuftp", description=DESCRIPTION,
        epilog="Try 'pyuftp demo' first. Docs: docs/cli.rst (python -m pyuftp COMMAND --help).")
    parser.add_argument("--version", action="version", version=f"pyuftp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    example = commands.add_parser(
        "example", help="render and parse an example message",
        description=textwrap.fill(
            "Render the example payload of one message type to UFTP XML, parse the XML back, "
            "and print both: the XML, then the dict in the message's field order.", width=78),
        epilog=_types_epilog(MESSAGE_TYPES), formatter_class=argparse.RawDescriptionHelpFormatter)
    example.add_argument("message_type", nargs="?", default="FlexOffer", choices=MESSAGE_TYPES,
                         metavar="MESSAGE_TYPE",
                         help="the message type (default: FlexOffer; the list is below)")
    example.add_argument("--version", default=DEFAULT_VERSION, choices=VERSIONS,
                         help=f"the UFTP version: {' or '.join(VERSIONS)} "
                              f"(default: {DEFAULT_VERSION})")
    example.set_defaults(run=_example)

    keygen = commands.add_parser(
        "keygen", help="print a new CS1 signing key pair",
        description="Generate an Ed25519 key pair for signing UFTP messages. Prints the "
                    "private key (base64, keep it secret), the public key (base64) and the "
                    "cs1. string to publish for other parties.")
    keygen.set_defaults(run=_keygen)

    demo = commands.add_parser(
        "demo", help="play a full UFTP cycle on 127.0.0.1",
        description="Start a DSO, an AGR and a CRO service on 127.0.0.1 with new keys, send "
                    "every UFTP message type between them and check that each one is "
                    "answered. Exits 0 when all are.")
    demo.add_argument("--quiet", action="store_true", help="print only the summary")
    demo.set_defaults(run=_demo)

    store = commands.add_parser(
        "store", help="manage a store (migrate its schema)",
        description="'store migrate URL' makes or upgrades the store's tables now (a store "
                    "also does it on first use), e.g. before starting several instances.")
    store.add_argument("action", choices=("migrate",), help="what to do: migrate")
    store.add_argument("url", help="the store: postgresql://user@host/db, sqlite:///path")
    store.set_defaults(run=_store)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
