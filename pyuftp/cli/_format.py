"""The two printers that show a message to people, on the command line and on the docs'
representations page (``tools/make_docs.py`` imports them): :func:`format_xml` (attributes
one per line when a start tag is long) and :func:`format_payload` (a dict in the message's
field order, one line per field).
"""
from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

XML_WIDTH = 80
PAYLOAD_WIDTH = 80
INDENT = "    "


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
    from xml.sax.saxutils import escape, quoteattr  # here: its import is slow for --help

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
    child elements, as in the field table of :mod:`pyuftp.message.catalog`), one line per field;
    nested lists and dicts are indented, small ones of plain values kept on one line."""
    from ..message.catalog import spec

    node = spec(version if version is not None else payload.get("version")).received.get(
        message_type)
    order = node.keys() if node is not None else []
    return _format(payload, node, order, "", width)
