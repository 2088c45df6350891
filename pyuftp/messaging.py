"""The message layer: payload dicts to UFTP XML and back, validated both ways. No I/O.

    xml = create_message("FlexOffer", {...})      # dict -> checked -> rendered -> XSD-valid XML
    message_type, payload = parse_message(xml)    # XML -> XSD-validated -> dict

One generic renderer (a Jinja2 template per message type) and one generic parser (driven by
the field-type table in :mod:`pyuftp.catalog`) serve all message types. Templates, readers and
schemas are built once per process, on first use, so that ``import pyuftp`` stays cheap.
"""
from __future__ import annotations

import datetime as _dt
import logging
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

from lxml import etree

from .catalog import DEFAULT_VERSION, MESSAGES, RECEIVED, SIGNED_MESSAGE, Node, snake_case, spec
from .exceptions import (
    MalformedXML,
    excerpt,
    quote,
    UnknownMessageType,
    UnsupportedVersion,
    ValidationError,
)
from .fields import FIELD_TYPES, FILTERS, ISP_NUMBER, LONG

logger = logging.getLogger("pyuftp")

__all__ = ["create_message", "build_message", "parse_message", "check_payload", "supported_version"]

# --- versions and schemas ----------------------------------------------------------------------


def supported_version(version: Any) -> str:
    """The schema version that serves ``version`` ('3.1.2' is served by 3.1.0's schema)."""
    return spec(version).version


@lru_cache(maxsize=None)
def schema(version: str, received: bool = False) -> etree.XMLSchema:
    """pyuftp's packaged XSD for ``version`` (every payload message and SignedMessage):
    the strict one for what pyuftp writes, or (``received``) the one for what it reads."""
    name = "uftp-received.xsd" if received else "uftp.xsd"
    source = resources.files("pyuftp").joinpath("schemas", version, name)
    with resources.as_file(source) as path:
        return etree.XMLSchema(etree.parse(str(path)))


def _node(message_type: str, version: str, received: bool = False) -> Node:
    if message_type == "SignedMessage":
        return SIGNED_MESSAGE
    try:
        return (RECEIVED if received else MESSAGES)[version][message_type]
    except KeyError:
        raise UnknownMessageType(
            f"{quote(message_type)} is not a UFTP message type; known types: "
            + ", ".join(sorted(MESSAGES[version]))
        ) from None


# --- checking payload dicts ------------------------------------------------------------------


class _Checker:
    """The checks for one node of the table, precomputed so that a 96-ISP list is cheap."""

    __slots__ = ("allowed", "attrs", "children", "names", "all_fine")

    def __init__(self, node: Node) -> None:
        self.names = node.keys()
        self.allowed = frozenset(self.names)
        self.attrs = tuple((a.key, a.required, FIELD_TYPES[a.type].check) for a in node.attrs)
        self.children = tuple(
            (c.key, _Checker(c.node), c.min, c.max, c.many) for c in node.children
        )
        self.all_fine = None if node.children else _items_check(self.allowed, node.attrs)

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise ValidationError(path, f"expected a dict, got {type(value).__name__}")
        if not self.allowed.issuperset(value):
            unknown = sorted(str(k) for k in value if k not in self.allowed)[0]
            raise ValidationError(
                f"{path}.{unknown}", f"unknown field; the fields here are {', '.join(self.names)}"
            )
        for key, required, check in self.attrs:
            item = value.get(key)
            if item is None:
                if required:
                    raise ValidationError(f"{path}.{key}", "is required but missing")
            else:
                reason = check(item)
                if reason is not None:
                    raise ValidationError(f"{path}.{key}", reason)
        for key, checker, low, high, many in self.children:
            item = value.get(key)
            if not many:
                if item is not None:
                    checker.check(item, f"{path}.{key}")
                elif low:
                    raise ValidationError(f"{path}.{key}", "is required but missing")
                continue
            if item is None:
                item = ()
            elif not isinstance(item, (list, tuple)):
                raise ValidationError(
                    f"{path}.{key}", f"expected a list, got {type(item).__name__}"
                )
            if len(item) < low:
                raise ValidationError(f"{path}.{key}", f"needs at least {low} item(s)")
            checker.check_items(item, path, key)

    def check_items(self, items: Sequence[Any], path: str, key: str) -> None:
        """Check list items: in one quick pass for long lists of leaf items (ISPs), and only
        when that finds something amiss item by item, with paths (see :meth:`check`)."""
        if self.all_fine is not None and self.all_fine(items):
            return
        for index, item in enumerate(items):
            self.check(item, f"{path}.{key}[{index}]")


# Exact ints in these ranges need no call of their type's check (it would say the same).
_INT_RANGES = {"integer": LONG, "positive": ISP_NUMBER, "long": LONG, "nonnegative": (0, LONG[1])}


def _items_check(allowed: frozenset[str], attrs: Sequence[Any]) -> Any:
    """``f(items) -> bool``: are all these leaf items fine? Generated for one node of the
    table, the checks of its attributes unrolled, because a 96-ISP list is checked on
    every send. False says only "look closer": :meth:`_Checker.check` decides and words it.
    """
    lines = ["def all_fine(items):",
             "    for item in items:",
             "        if item.__class__ is not dict or not allowed.issuperset(item):",
             "            return False"]
    names: dict[str, Any] = {"allowed": allowed}
    for index, attr in enumerate(attrs):
        if attr.type in _INT_RANGES:
            low, high = _INT_RANGES[attr.type]
            bad = "v.__class__ is not int"
            bad += f" or v < {low}" if low is not None else ""
            bad += f" or v > {high}" if high is not None else ""
        else:
            names[f"check{index}"] = FIELD_TYPES[attr.type].check
            bad = f"check{index}(v) is not None"
        lines.append(f"        v = item.get({attr.key!r})")
        lines.append(f"        if v is None or {bad}:" if attr.required
                     else f"        if v is not None and ({bad}):")
        lines.append("            return False")
    lines.append("    return True")
    exec("\n".join(lines), names)  # noqa: S102 - our own table's names and numbers only
    return names["all_fine"]


@lru_cache(maxsize=None)
def _checker(message_type: str, version: str) -> _Checker:
    return _Checker(_node(message_type, version))


def check_payload(message_type: str, payload: Mapping[str, Any], version: str) -> None:
    """Raise :class:`ValidationError` (naming the field in dict terms) if ``payload`` does not
    fit ``message_type`` in ``version``."""
    _checker(message_type, supported_version(version)).check(payload, message_type)


# --- rendering -------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _environment() -> "jinja2.Environment":
    import jinja2  # here, not at import time: it is a third of `import pyuftp`
    from jinja2.compiler import CodeGenerator

    class FastCodeGenerator(CodeGenerator):
        """Compiles the same templates to leaner Python for pyuftp's payloads.

        Rendering a 96-ISP FlexOffer spends most of its time in two calls per value:
        ``environment.getattr(isp, 'power')`` and ``escape(...)`` (a Python function since
        MarkupSafe 3). Payloads are plain dicts of checked values, so the generated code
        looks dict keys up inline, writes ints without escaping them (digits need none),
        escapes plain strs to plain strs and tests ``is none`` by identity; everything else
        takes Jinja2's ordinary path. Should Jinja2 stop calling these hooks, templates
        simply render the ordinary, slower way.
        """

        def visit_Getattr(self, node: Any, frame: Any) -> None:
            if self.environment.is_async:
                return super().visit_Getattr(node, frame)
            # An absent optional field reads as None, as with Environment.getattr below.
            self.write("(_o_.get(%r) if (_o_ := " % node.attr)
            self.visit(node.node, frame)
            self.write(").__class__ is dict else environment.getattr(_o_, %r))" % node.attr)

        def _plain_escape(self, frame: Any, finalize: Any) -> bool:
            return (frame.eval_ctx.autoescape and not frame.eval_ctx.volatile
                    and finalize.src is None)

        def _output_child_pre(self, node: Any, frame: Any, finalize: Any) -> None:
            if self._plain_escape(frame, finalize):
                self.write("(environment.escape_str(_v_) if (_v_ := ")
            else:
                super()._output_child_pre(node, frame, finalize)

        def _output_child_post(self, node: Any, frame: Any, finalize: Any) -> None:
            # A plain str is escaped to a plain str: the Markup that escape() wraps it in
            # costs a Python-level __new__ per value, and the output is joined to a str anyway.
            if self._plain_escape(frame, finalize):
                self.write(").__class__ is str else str(_v_) if _v_.__class__ is int"
                           " else escape(_v_))")
            else:
                super()._output_child_post(node, frame, finalize)

        def visit_Test(self, node: Any, frame: Any) -> None:
            # `x is none` / `is not none` guard every optional attribute: a plain identity
            # test rather than a call of Jinja2's test function.
            if node.name == "none" and not (node.args or node.kwargs or node.dyn_args
                                            or node.dyn_kwargs):
                self.write("(")
                self.visit(node.node, frame)
                self.write(" is None)")
            else:
                super().visit_Test(node, frame)

    class Environment(jinja2.Environment):
        code_generator_class = FastCodeGenerator
        escape_str = staticmethod(_escape_str())

        def getattr(self, obj: Any, attribute: str) -> Any:
            # Payloads are plain dicts that the checker has already vetted: look the key up
            # directly, an absent optional field being None, rather than paying for an
            # AttributeError and an Undefined on every `m.field`.
            if isinstance(obj, Mapping):
                return obj.get(attribute)
            return super().getattr(obj, attribute)

    class Loader(jinja2.PackageLoader):
        """Loads a template with the calls of the shared attribute groups in ``_parts.xml``
        written out in place: a macro call costs more than the rest of a small message's
        render. The templates themselves keep the calls, and mean the same either way."""

        def get_source(self, environment: Any, template: str) -> Any:
            source, filename, uptodate = super().get_source(environment, template)
            if template != _PARTS:
                source = _inline_parts(source, super().get_source(environment, _PARTS)[0])
            return source, filename, uptodate

    env = Environment(
        loader=Loader("pyuftp", "templates"),
        autoescape=True,  # a value can never break out of its attribute
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters.update(FILTERS)
    return env


_PARTS = "_parts.xml"
_IMPORT = re.compile(r'{%-?\s*import\s+"_parts\.xml"\s+as\s+(\w+)\s*-?%}\n?')
_MACRO = re.compile(r"{%-?\s*macro\s+(\w+)\((\w+)\)\s*-%}(.*?){%-\s*endmacro\s*-?%}", re.S)


def _inline_parts(source: str, parts: str) -> str:
    """``{{ parts.response(m) }}`` -> the body of ``_parts.xml``'s ``response`` macro, with the
    macros it calls written out too; calls that don't pass the macro's own parameter name
    (none do today) are left alone, and so is the import they need."""
    bodies = {name: (param, body.strip()) for name, param, body in _MACRO.findall(parts)}

    def expand(text: str, prefix: str) -> str:
        def one(match: re.Match) -> str:
            name, arg = match.group(1), match.group(2)
            if name not in bodies or bodies[name][0] != arg:
                return match.group(0)
            return expand(bodies[name][1], "")
        return re.sub(r"{{\s*" + re.escape(prefix) + r"(\w+)\((\w+)\)\s*}}", one, text)

    imported = _IMPORT.search(source)
    if not imported or not bodies:
        return source
    alias = imported.group(1)
    inlined = _IMPORT.sub("", expand(source, alias + "."))
    calls = re.compile(r"{{\s*(%s\.\w+|%s)\(" % (re.escape(alias), "|".join(bodies)))
    if calls.search(inlined):
        return source  # a call stayed a call: keep the template as it is, import and all
    return inlined


def _escape_str() -> Any:
    """``str -> str`` escaping for attribute values (``&<>"'``), as MarkupSafe does it."""
    try:
        from markupsafe import _escape_inner  # the C speedup that escape() itself calls
    except ImportError:  # pragma: no cover - another MarkupSafe: the public way, a bit slower
        from markupsafe import escape

        def _escape_inner(text: str) -> str:
            return str(escape(text))
    return _escape_inner


@lru_cache(maxsize=None)
def _template(message_type: str) -> "jinja2.Template":
    return _environment().get_template(f"{message_type}.xml")


def render(message_type: str, payload: Mapping[str, Any]) -> str:
    """Render a complete, checked payload with its template (no defaults, no checks)."""
    template = _template(message_type)
    # What Template.render(m=payload) does, less merging Jinja2's globals (range, dict, ...)
    # into a new context dict on every call: no template uses them, and it was half the
    # time of rendering a small message.
    context = template.new_context({"m": payload}, shared=True)
    return template.environment.concat(template.root_render_func(context))


def _with_metadata(payload: Mapping[str, Any], version: str) -> dict[str, Any]:
    message = dict(payload)
    if message.get("version") is None:
        message["version"] = version
    if message.get("message_id") is None:
        message["message_id"] = str(uuid.uuid4())
    if message.get("conversation_id") is None:
        message["conversation_id"] = str(uuid.uuid4())
    if message.get("time_stamp") is None:
        message["time_stamp"] = _dt.datetime.now(_dt.timezone.utc)
    return message


def complete_payload(message_type: str, payload: Mapping[str, Any],
                     version: str | None = None) -> dict[str, Any]:
    """A copy of ``payload`` with the metadata filled in and everything checked.

    ``version``, ``message_id``, ``conversation_id`` (new UUID4s) and ``time_stamp`` (now,
    UTC) are added where the payload leaves them out; ``sender_domain`` and
    ``recipient_domain`` are required.
    """
    if not isinstance(payload, Mapping):
        raise ValidationError(message_type, f"payload must be a dict, got {type(payload).__name__}")
    if not isinstance(message_type, str):
        raise UnknownMessageType(f"message type must be a str, got {quote(message_type)}")
    own = payload.get("version")
    if own is not None and version is not None and own != version:
        raise ValidationError(f"{message_type}.version",
                              f"the payload says {quote(own)} but version={quote(version)} was asked for")
    requested = own or version or DEFAULT_VERSION
    schema_version = supported_version(requested)
    message = _with_metadata(payload, requested)
    _checker(message_type, schema_version).check(message, message_type)
    return message


def create_message(message_type: str, payload: Mapping[str, Any],
                   version: str | None = None) -> str:
    """Render ``payload`` as the XML of a UFTP ``message_type`` message.

    ``version`` defaults to the payload's own ``version``, else 3.1.0; the two may not differ.
    The payload is checked against the field-type table first (errors name the field, e.g.
    ``FlexOffer.offer_options[0].isps[3].power: 'abc' is not an integer``), then the XML is
    validated against pyuftp's schema for the version, so nothing invalid leaves this call.
    """
    return build_message(message_type, payload, version)[0]


def build_message(message_type: str, payload: Mapping[str, Any],
                  version: str | None = None) -> tuple[str, dict[str, Any]]:
    """Like :func:`create_message`, also returning the payload as sent (metadata filled in)."""
    message = complete_payload(message_type, payload, version)
    try:
        xml = render(message_type, message)
    except Exception as exc:  # noqa: BLE001 - any template failure is reported the same way
        # The checker should have caught this; say where it happened in dict terms anyway.
        raise ValidationError(message_type, f"cannot be rendered: {exc}") from exc
    root = etree.fromstring(xml.encode("utf-8"), _xml_parser())
    version_used = supported_version(message["version"])
    if not schema(version_used).validate(root):
        raise _schema_error(message_type, version_used, root, schema(version_used).error_log)
    return xml, message


# --- parsing ---------------------------------------------------------------------------------

_local = threading.local()


def _xml_parser() -> etree.XMLParser:
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


def parse_xml(xml: str | bytes | bytearray | memoryview) -> etree._Element:
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
    _check_shape(root)
    return root


def _check_shape(root: etree._Element) -> None:
    """Refuse, in one linear pass, elements shaped unlike anything in UFTP."""
    level, depth = [root], 1
    while level:  # breadth first: one list per level, so the depth comes for free
        if depth > MAX_DEPTH:
            raise MalformedXML(f"elements nested more than {MAX_DEPTH} levels deep; no UFTP "
                               "message is")
        below: list[etree._Element] = []
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


class _Reader:
    """Turns one schema-valid element of a node into its dict.

    A list of leaf elements (an ISP list is most of a message) is read a column at a time:
    one compiled XPath per attribute yields all of that attribute's values in document
    order, in C, where reading element by element costs an lxml proxy, an ``items()`` list
    and a tuple per element. The columns line up because every element of the list carries
    each attribute that was found, which the schema guarantees for required ones and
    :func:`_read_columns` checks for the others.
    """

    __slots__ = ("attrs", "parts")

    def __init__(self, node: Node) -> None:
        self.attrs = {a.xml: (a.key, FIELD_TYPES[a.type].parse) for a in node.attrs}
        # In schema order, which is the order of a valid document's children.
        self.parts = tuple(_Part(child) for child in node.children)

    def read(self, element: etree._Element) -> dict[str, Any]:
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
                raise _Unreadable(element, name, exc) from None
        for part in self.parts:
            if part.columns:
                rows = _read_columns(element, part)
            elif part.many:
                rows = [part.reader.read(child) for child in element.iterchildren(part.tag)]
            else:
                child = next(element.iterchildren(part.tag), None)
                if child is not None:
                    out[part.key] = part.reader.read(child)
                continue
            if rows:
                out[part.key] = rows
        return out


class _Unreadable(Exception):
    """A schema-valid attribute that has no Python value (``T24:00:00``, a year 0)."""

    def __init__(self, element: etree._Element, attribute: str, error: Exception) -> None:
        super().__init__(str(error))
        self.element, self.attribute, self.error = element, attribute, error


class _Part:
    """One kind of child element of a node, as :class:`_Reader` reads it."""

    __slots__ = ("columns", "count", "key", "many", "reader", "tag")

    def __init__(self, child: Any) -> None:
        self.key, self.tag, self.many = child.key, child.xml, child.many
        self.reader = _Reader(child.node)
        self.columns: tuple = ()
        self.count: Any = None
        if child.many and not child.node.children and child.node.attrs:
            # Required attributes first: the first one's column says how many elements.
            # (Compiled XPaths are safe to share between threads: lxml locks each one.)
            ordered = sorted(child.node.attrs, key=lambda a: not a.required)
            self.columns = tuple(
                (a.key, FIELD_TYPES[a.type].parse, a.required,
                 etree.XPath(f"{child.xml}/@{a.xml}", smart_strings=False, regexp=False))
                for a in ordered
            )
            self.count = etree.XPath(f"count({child.xml})", regexp=False)


def _read_columns(element: etree._Element, part: _Part) -> list[dict[str, Any]]:
    found = []
    count = None
    for key, parse, required, xpath in part.columns:
        texts = xpath(element)
        if count is None:
            count = len(texts) if required else int(part.count(element))
            if not count:
                return []
        if texts:
            found.append((key, parse, texts))
    if any(len(texts) != count for _, _, texts in found):
        # An optional attribute on some of the elements only: the columns don't line up.
        return [part.reader.read(child) for child in element.iterchildren(part.tag)]
    build = _row_builder(tuple(key for key, _, _ in found))
    try:
        columns = [list(map(parse, texts)) for _, parse, texts in found]
    except (ValueError, ArithmeticError):
        # Read again element by element, which says which one it was.
        return [part.reader.read(child) for child in element.iterchildren(part.tag)]
    return build(*columns)


@lru_cache(maxsize=None)
def _row_builder(keys: tuple[str, ...]) -> Any:
    """``f(col_a, col_b)`` -> ``[{'a': a0, 'b': b0}, ...]``, compiled for these keys.

    A dict display in a comprehension builds the rows of a 96-ISP list in about a third of
    the time that ``dict(zip(keys, row))`` takes; the keys are the table's own identifiers.
    """
    names = [f"c{i}" for i in range(len(keys))]
    row = ", ".join(f"{key!r}: v{i}" for i, key in enumerate(keys))
    targets = "".join(f"v{i}, " for i in range(len(keys)))
    return eval(f"lambda {', '.join(names)}: "
                f"[{{{row}}} for ({targets}) in zip({', '.join(names)})]")


@lru_cache(maxsize=None)
def _reader(message_type: str, version: str) -> _Reader:
    return _Reader(_node(message_type, version, received=True))


def _strip_attributes(root: etree._Element) -> bool:
    """Trim surrounding white space off attribute values in place; True if any changed."""
    changed = False
    for element in root.iter():
        for name, value in element.items():
            if value != value.strip():
                element.set(name, value.strip())
                changed = True
    return changed


def validate_element(message_type: str, version: str, root: etree._Element) -> None:
    """Validate what was received, forgiving white space around attribute values."""
    xsd = schema(version, received=True)
    if xsd.validate(root):
        return
    # Peers pad attribute values; trim and try again before calling the message invalid.
    if _strip_attributes(root) and xsd.validate(root):
        return
    raise _schema_error(message_type, version, root, xsd.error_log)


def read_element(root: etree._Element) -> tuple[str, dict[str, Any]]:
    """Turn a parsed element into ``(message_type, payload)``, validating it first."""
    message_type = root.tag
    if not isinstance(message_type, str) or message_type not in MESSAGES[DEFAULT_VERSION]:
        raise UnknownMessageType(
            f"<{excerpt(message_type, 40)}> is not a UFTP payload message; known types: "
            + ", ".join(sorted(MESSAGES[DEFAULT_VERSION]))
        )
    declared = root.get("Version")
    if declared is None:
        raise ValidationError(f"{message_type}.version", "is required but missing")
    version = supported_version(declared)
    validate_element(message_type, version, root)
    try:
        return message_type, _reader(message_type, version).read(root)
    except _Unreadable as exc:  # schema-valid, yet not representable (e.g. no UTC offset)
        path = root.getroottree().getpath(exc.element)
        field = dict_path(message_type, version, path, exc.attribute)
        raise ValidationError(field, _unreadable_reason(exc)) from None


def parse_message(xml: str | bytes) -> tuple[str, dict[str, Any]]:
    """Parse UFTP payload XML into ``(message_type, payload)``.

    Raises :class:`MalformedXML`, :class:`UnknownMessageType`, :class:`UnsupportedVersion` or
    :class:`ValidationError` (naming the field in dict terms), all :class:`PyUFTPError`.
    """
    return read_element(parse_xml(xml))


# --- errors in dict terms --------------------------------------------------------------------

_SEGMENT = re.compile(r"([^/\[]+)(?:\[(\d+)\])?")


def dict_path(message_type: str, version: str, xpath: str, attribute: str | None = None) -> str:
    """``/FlexOffer/OfferOption/ISP[4]`` + ``Power`` -> ``FlexOffer.offer_options[0].isps[3].power``."""
    node = _node(message_type, version)
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


def _schema_error(message_type: str, version: str, root: etree._Element,
                  log: etree._ListErrorLog) -> ValidationError:
    entry = log[0] if len(log) else None
    if entry is None:
        return ValidationError(message_type, "does not match the UFTP schema")
    text, xpath = entry.message, entry.path or f"/{message_type}"
    named = re.search(r"attribute '([^']+)'", text)
    attribute = named.group(1) if named else None
    field = dict_path(message_type, version, xpath, attribute)
    logger.debug("schema error in %s: %s (%s)", message_type, excerpt(text), excerpt(xpath))
    return ValidationError(field, _reason(text, message_type, version, root, xpath, attribute))


def _reason(text: str, message_type: str, version: str, root: etree._Element, xpath: str,
            attribute: str | None) -> str:
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
        field_type = _attribute_type(message_type, version, xpath, attribute)
        if value is not None and field_type is not None:
            return f"{quote(value)} is not {field_type.description}"
    return excerpt(re.sub(r"^Element '[^']+'(, attribute '[^']+')?: ", "", text), 200)


def _attribute_type(message_type: str, version: str, xpath: str, attr: str):
    node = _node(message_type, version)
    for segment in xpath.strip("/").split("/")[1:]:
        match = _SEGMENT.fullmatch(segment)
        child = next((c for c in node.children if match and c.xml == match.group(1)), None)
        if child is None:
            return None
        node = child.node
    known = node.by_xml.get(attr)
    return FIELD_TYPES[known.type] if known else None


def _unreadable_reason(exc: _Unreadable) -> str:
    text = exc.element.get(exc.attribute) or ""
    reason = str(exc.error)
    if text and text.strip() and quote(text.strip()) not in reason:
        reason = f"{quote(text.strip())}: {excerpt(reason)}"
    return reason
