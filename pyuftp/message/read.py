"""Reading untrusted XML: parse it, refuse odd shapes, validate it, turn it into a dict.

    root = parse_xml(data)                  # well-formed, no DOCTYPE, shaped like UFTP
    message_type, payload = read_element(root)   # XSD-validated, then read by the table

The schemas are pyuftp's packaged XSDs (generated from the field-type table), one pair per
version: the strict one for what pyuftp writes and a more tolerant one for what it reads.
Errors name the field in dict terms (:mod:`pyuftp.message.schema_errors`).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import Any

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from . import speed
from .catalog import Child, Node, Spec, spec
from .check import message_node
from ..exceptions import MalformedXML, UnknownMessageType, ValidationError, excerpt
from .fields import FIELD_TYPES
from .schema_errors import Unreadable, dict_path, schema_error, unreadable_reason

logger = logging.getLogger(__name__)

# --- parsing -----------------------------------------------------------------------------------

_local = threading.local()


def _xml_parser() -> Any:
    # One parser per thread (lxml parsers are not shareable across threads); nothing that
    # could reach a file or the network, and no entity expansion.
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
            remove_comments=True, remove_pis=True, huge_tree=False, collect_ids=False,
        )
    return parser


# What UFTP needs at most, with room to spare; anything beyond is refused right after parsing,
# before any work that is not linear in the input (lxml's attribute access is quadratic in the
# number of attributes of one element: 40,000 of them took 10 s).
MAX_ATTRIBUTES = 40    # FlexOrder, the widest element, has 21
MAX_DEPTH = 8          # AGRPortfolioQueryResponse, the deepest message, has 5 levels
MAX_CHILDREN = 50_000  # ISPs of a month of settled orders fit many times over


def parse_xml(xml: str | bytes | bytearray | memoryview) -> Any:
    """Parse untrusted XML text into an lxml element, refusing DOCTYPEs and shapes that no
    UFTP message has (see :data:`MAX_ATTRIBUTES`, :data:`MAX_DEPTH`, :data:`MAX_CHILDREN`)."""
    if isinstance(xml, str):
        try:
            xml = xml.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate: no UTF-8 for it
            raise MalformedXML(f"the text cannot be encoded as UTF-8 ({exc.reason} at "
                               f"position {exc.start})") from None
    elif isinstance(xml, (bytearray, memoryview)):
        xml = bytes(xml)
    elif not isinstance(xml, bytes):
        raise MalformedXML(f"expected XML as str or bytes, got {type(xml).__name__}")
    if not xml.strip():
        raise MalformedXML("the message is empty")
    try:
        root = etree.fromstring(xml, _xml_parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedXML(f"not well-formed XML: {excerpt(exc)}") from None
    except ValueError as exc:  # e.g. an encoding lxml cannot handle
        raise MalformedXML(f"cannot read XML: {excerpt(exc)}") from None
    if root.getroottree().docinfo.doctype:
        raise MalformedXML("XML with a DOCTYPE is refused (no DTDs or entities in UFTP)")
    if not speed.shape_fine(root, MAX_ATTRIBUTES, MAX_DEPTH, MAX_CHILDREN):
        _check_shape(root)  # the plain walk: it words the error, if there is one
    return root


def _check_shape(root: Any) -> None:
    """Refuse, in one linear pass, elements shaped unlike anything in UFTP."""
    level, depth = [root], 1
    while level:  # breadth first: one list per level, so the depth comes for free
        if depth > MAX_DEPTH:
            raise MalformedXML(f"elements nested more than {MAX_DEPTH} levels deep; no UFTP "
                               "message is")
        below: list[Any] = []
        for element in level:
            if len(element.attrib) > MAX_ATTRIBUTES:
                raise MalformedXML(f"<{excerpt(element.tag, 40)}> has more than "
                                   f"{MAX_ATTRIBUTES} attributes; no UFTP element has that many")
            if len(element):
                if len(element) > MAX_CHILDREN:
                    raise MalformedXML(f"<{excerpt(element.tag, 40)}> has more than "
                                       f"{MAX_CHILDREN} child elements")
                below.extend(element)
        level, depth = below, depth + 1


# --- schemas and validation --------------------------------------------------------------------


def schema(version: Any = None, received: bool = False) -> Any:
    """pyuftp's packaged XSD (an ``lxml.etree.XMLSchema``) for ``version`` (every payload
    message and SignedMessage): the strict one for what pyuftp writes, or (``received``) the
    one for what it reads."""
    return _schema(spec(version).schema_dir, received)


@lru_cache(maxsize=None)
def _schema(schema_dir: str, received: bool) -> Any:
    name = "uftp-received.xsd" if received else "uftp.xsd"
    source = resources.files("pyuftp").joinpath(*schema_dir.split("/"), name)
    with resources.as_file(source) as path:
        return etree.XMLSchema(etree.parse(str(path)))


def _strip_attributes(root: Any) -> bool:
    """Trim surrounding white space off attribute values in place; True if any changed."""
    changed = False
    for element in root.iter():
        for name, value in element.items():
            if value != value.strip():
                element.set(name, value.strip())
                changed = True
    return changed


def validate_element(message_type: str, version: Any, root: Any) -> None:
    """Validate what was received, forgiving white space around attribute values."""
    served = spec(version)
    xsd = schema(served, received=True)
    if xsd.validate(root):
        return
    # Peers pad attribute values; trim and try again before calling the message invalid.
    if _strip_attributes(root) and xsd.validate(root):
        logger.debug("%s valid once white space around attribute values was trimmed",
                     message_type)
        return
    raise schema_error(message_type, served, root, xsd.error_log, received=True)


def validate_rendered(message_type: str, version: Spec, xml: str,
                      received: bool = False) -> None:
    """Validate XML that pyuftp rendered against the strict schema (a debugging aid: the
    checker and the schema are made from the same table), or the lenient one of what pyuftp
    reads (``received``: for a message written in a counterparty's dialect)."""
    try:
        root = etree.fromstring(xml.encode("utf-8"), _xml_parser())
    except etree.XMLSyntaxError as exc:
        raise ValidationError(message_type,
                              f"rendered XML is not well-formed: {excerpt(exc)}") from None
    xsd = schema(version, received)
    if not xsd.validate(root):
        raise schema_error(message_type, version, root, xsd.error_log)


# --- elements to dicts -------------------------------------------------------------------------


class Reader:
    """Turns one schema-valid element of a node into its dict."""

    __slots__ = ("attrs", "native", "parts")

    def __init__(self, node: Node, fast: bool, native: bool = False) -> None:
        self.attrs = {a.xml: (a.key, FIELD_TYPES[a.type].parse) for a in node.attrs}
        self.native = speed.NativeTable(node.attrs) if native else None
        # In schema order, which is the order of a valid document's children.
        self.parts = tuple(_Part(child, fast, native) for child in node.children)

    def read(self, element: Any) -> dict[str, Any]:
        out = self.native.attributes(element) if self.native is not None else None
        if out is None:
            out = self._attributes(element)
        for part in self.parts:
            if part.many:
                rows = part.rows(element) if part.rows is not None else None
                if rows is None:
                    rows = [part.reader.read(child) for child in element.iterchildren(part.tag)]
                if rows:
                    out[part.key] = rows
            else:
                child = next(element.iterchildren(part.tag), None)
                if child is not None:
                    out[part.key] = part.reader.read(child)
        return out

    def _attributes(self, element: Any) -> dict[str, Any]:
        attrs = self.attrs
        out = {}
        for name, text in element.items():
            known = attrs.get(name)
            if known is None:
                # The schema let it through, so it is an xsi: hint (schemaLocation and the
                # like) that a validator accepts on any element: it carries no UFTP field.
                continue
            key, parse = known
            try:
                out[key] = parse(text)
            except (ValueError, ArithmeticError) as exc:
                raise Unreadable(element, name, exc) from None
        return out


class _Part:
    """One kind of child element of a node, as :class:`Reader` reads it."""

    __slots__ = ("key", "many", "reader", "rows", "tag")

    def __init__(self, child: Child, fast: bool, native: bool) -> None:
        self.key, self.tag, self.many = child.key, child.xml, child.many
        self.reader = Reader(child.node, fast, native)
        # A faster way to read a whole list of leaf elements, None where there is none:
        # in C, or a column at a time; either may answer None ("read them one by one").
        self.rows: Callable[[Any], list[dict[str, Any]] | None] | None = None
        if fast and speed.Columns.fit(child):
            self.rows = (speed.NativeTable(child.node.attrs, child.xml).rows if native
                         else speed.Columns(child).read)


def reader(message_type: str, version: str, fast: bool, native: bool | None = None) -> Reader:
    """The reader of received ``message_type`` elements in the (supported) ``version``:
    plain, or (``fast``) with the speed-ups, in C where ``native`` (by default where
    :func:`pyuftp.message.speed.native` says so)."""
    if native is None:
        native = fast and speed.native()
    return _reader(message_type, version, fast, fast and native)


@lru_cache(maxsize=None)
def _reader(message_type: str, version: str, fast: bool, native: bool) -> Reader:
    return Reader(message_node(message_type, spec(version), received=True), fast, native)


def read_element(root: Any) -> tuple[str, dict[str, Any]]:
    """Turn a parsed element into ``(message_type, payload)``, validating it first against
    the schema of the version its ``Version`` attribute names."""
    message_type = root.tag
    declared = root.get("Version")
    served = spec(declared)  # the default version's when there is none: to name the types
    if not isinstance(message_type, str) or message_type not in served.messages:
        raise UnknownMessageType(
            f"<{excerpt(message_type, 40)}> is not a UFTP payload message; known types: "
            + ", ".join(served.message_types)
        )
    if declared is None:
        raise ValidationError(f"{message_type}.version", "is required but missing")
    validate_element(message_type, served, root)
    try:
        return message_type, reader(message_type, served.version, speed.ENABLED).read(root)
    except Unreadable as exc:  # schema-valid, yet not representable (e.g. no UTC offset)
        path = root.getroottree().getpath(exc.element)
        field = dict_path(message_type, served, path, exc.attribute, received=True)
        raise ValidationError(field, unreadable_reason(exc)) from None
