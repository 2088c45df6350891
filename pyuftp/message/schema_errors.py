"""Schema errors in dict terms: libxml2's ``/FlexOffer/OfferOption/ISP[4]`` + ``Power`` and
its prose become ``FlexOffer.offer_options[0].isps[3].power: 'abc' is not an integer``.

Values are quoted from the document itself (as excerpts), never from libxml2's messages.
"""
from __future__ import annotations

import logging
import re
from typing import Any

from .catalog import Node, Spec, snake_case
from .check import message_node
from ..exceptions import ValidationError, excerpt, quote
from .fields import FIELD_TYPES, FieldType

logger = logging.getLogger(__name__)

_SEGMENT = re.compile(r"([^/\[]+)(?:\[(\d+)\])?")


class Unreadable(Exception):
    """A schema-valid attribute that has no Python value (``T24:00:00``, a year 0)."""

    def __init__(self, element: Any, attribute: str, error: Exception) -> None:
        super().__init__(str(error))
        self.element, self.attribute, self.error = element, attribute, error


def dict_path(message_type: str, version: Spec, xpath: str, attribute: str | None = None,
              received: bool = False) -> str:
    """``/FlexOffer/OfferOption/ISP[4]`` + ``Power`` ->
    ``FlexOffer.offer_options[0].isps[3].power``."""
    node = message_node(message_type, version, received)
    path = message_type
    for segment in xpath.strip("/").split("/")[1:]:
        match = _SEGMENT.fullmatch(segment)
        if not match:
            break
        name, index = match.group(1), int(match.group(2) or 1) - 1
        child = next((c for c in node.children if c.xml == name), None)
        if child is None:
            return f"{path}.{snake_case(name)}"
        path += f".{child.key}[{index}]" if child.many else f".{child.key}"
        node = child.node
    if attribute:
        known = node.by_xml.get(attribute)
        path += "." + (known.key if known else snake_case(attribute))
    return path


def schema_error(message_type: str, version: Spec, root: Any, log: Any,
                 received: bool = False) -> ValidationError:
    """The :class:`ValidationError` for the first entry of an XSD validation's error log."""
    entry = log[0] if len(log) else None
    if entry is None:
        return ValidationError(message_type, "does not match the UFTP schema")
    text, xpath = str(entry.message), str(entry.path or f"/{message_type}")
    named = re.search(r"attribute '([^']+)'", text)
    attribute = named.group(1) if named else None
    field = dict_path(message_type, version, xpath, attribute, received)
    logger.debug("schema error in %s: %s (%s)", message_type, excerpt(text), excerpt(xpath))
    node = message_node(message_type, version, received)
    return ValidationError(field, _reason(text, node, root, xpath, attribute))


def _reason(text: str, node: Node, root: Any, xpath: str, attribute: str | None) -> str:
    if "is required but missing" in text:
        return "is required but missing"
    if "is not allowed" in text:
        return "unknown field (not in the UFTP schema)"
    if "Missing child element" in text:
        expected = re.search(r"Expected is \(?\s*([^)]+?)\s*\)?\.?$", text)
        return f"missing child element {expected.group(1) if expected else ''}".rstrip()
    if "This element is not expected" in text:
        return "unexpected element (not in the UFTP schema at this place)"
    if attribute:
        # Quote the value from the document itself rather than from libxml2's prose.
        found = root.getroottree().xpath(xpath)
        value = found[0].get(attribute) if found else None
        field_type = _attribute_type(node, xpath, attribute)
        if value is not None and field_type is not None:
            return f"{quote(value)} is not {field_type.description}"
    return excerpt(re.sub(r"^Element '[^']+'(, attribute '[^']+')?: ", "", text), 200)


def _attribute_type(node: Node, xpath: str, attribute: str) -> FieldType | None:
    for segment in xpath.strip("/").split("/")[1:]:
        match = _SEGMENT.fullmatch(segment)
        child = next((c for c in node.children if match and c.xml == match.group(1)), None)
        if child is None:
            return None
        node = child.node
    known = node.by_xml.get(attribute)
    return FIELD_TYPES[known.type] if known else None


def unreadable_reason(exc: Unreadable) -> str:
    """What to say about a value that :class:`Unreadable` reports."""
    text = exc.element.get(exc.attribute) or ""
    reason = str(exc.error)
    if text and text.strip() and quote(text.strip()) not in reason:
        reason = f"{quote(text.strip())}: {excerpt(reason)}"
    return reason
