"""Speed-ups of the message layer, fenced in one module behind one switch.

Everything here is a faster way of doing what :mod:`pyuftp.message.render`, :mod:`pyuftp.message.check` and
:mod:`pyuftp.message.read` also do plainly, with the same results (``test/test_messaging_speed.py``
holds the two to that, byte for byte and exception for exception):

* rendering: templates compiled to leaner Python (:func:`fast_environment`), the shared
  attribute groups of ``_parts.xml`` written out in place of macro calls
  (:func:`inlining_loader`), and a render call without Jinja2's per-call context set-up
  (:func:`render`);
* checking: one generated function per leaf list (ISPs) that checks all its items in one
  pass (:func:`list_check`);
* reading: leaf lists read a column at a time with compiled XPaths (:class:`Columns`); where
  the optional C extension :mod:`pyuftp.message._native` was built (setup.py), the shape
  check and the reading of attributes into dicts run in C instead (:class:`NativeTable`).

:data:`ENABLED` is the switch. It is on unless the environment says ``PYUFTP_PLAIN=1`` when
pyuftp is imported; code that sets it later (tests do) gets the other implementation from the
next call on. Nothing outside the message layer needs to know this module exists.
:data:`NATIVE` says whether the C extension is used (under :data:`ENABLED`); it is on when
the extension could be imported and the environment does not say ``PYUFTP_NATIVE=0``.
"""
from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from .catalog import Attr, Child, Node
from .fields import FIELD_TYPES, ISP_NUMBER, LONG

if TYPE_CHECKING:
    import jinja2

_TRUE = ("1", "true", "yes", "on")

#: Use the speed-ups (default), or only the plain implementations (``PYUFTP_PLAIN=1``).
ENABLED: bool = os.environ.get("PYUFTP_PLAIN", "").strip().lower() not in _TRUE


def _load_native() -> Any:
    try:
        return importlib.import_module(__name__.rpartition(".")[0] + "._native")
    except ImportError:  # not built (no compiler at install): the pure-Python speed-ups serve
        return None


_native: Any = _load_native()

#: Use the C extension where it helps (when built, unless ``PYUFTP_NATIVE=0``).
NATIVE: bool = _native is not None and (
    os.environ.get("PYUFTP_NATIVE", "").strip().lower() not in ("0", "false", "no", "off"))

# --- rendering ---------------------------------------------------------------------------------


def fast_environment(base: type[jinja2.Environment]) -> type[jinja2.Environment]:
    """A subclass of the plain Environment class ``base`` that compiles the same templates
    to leaner Python (see :func:`_code_generator`)."""
    class Environment(base):  # type: ignore[valid-type, misc]
        code_generator_class = _code_generator()
        escape_str = staticmethod(_escape_str())

    return Environment


def _code_generator() -> type[Any]:
    """Jinja2's CodeGenerator with shortcuts for pyuftp's payloads.

    Rendering a 96-ISP FlexOffer spends most of its time in two calls per value:
    ``environment.getattr(isp, 'power')`` and ``escape(...)`` (a Python function since
    MarkupSafe 3). Payloads are plain dicts of checked values, so the generated code looks
    dict keys up inline, writes ints without escaping them (digits need none), escapes plain
    strs to plain strs and tests ``is none`` by identity; everything else takes Jinja2's
    ordinary path. Should Jinja2 stop calling these hooks, templates simply render the
    ordinary, slower way.
    """
    from jinja2.compiler import CodeGenerator

    class FastCodeGenerator(CodeGenerator):
        def visit_Getattr(self, node: Any, frame: Any) -> None:
            if self.environment.is_async:
                return super().visit_Getattr(node, frame)
            # An absent optional field reads as None, as with the plain Environment.getattr.
            self.write("(_o_.get(%r) if (_o_ := " % node.attr)
            self.visit(node.node, frame)
            self.write(").__class__ is dict else environment.getattr(_o_, %r))" % node.attr)
            return None

        def _plain_escape(self, frame: Any, finalize: Any) -> bool:
            return bool(frame.eval_ctx.autoescape and not frame.eval_ctx.volatile
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

    return FastCodeGenerator


def _escape_str() -> Callable[[str], str]:
    """``str -> str`` escaping for attribute values (``&<>"'``), as MarkupSafe does it."""
    try:
        # The C speedup that markupsafe.escape() itself calls: private, hence fenced here.
        from markupsafe import _escape_inner  # type: ignore[attr-defined, unused-ignore]
    except ImportError:  # pragma: no cover - another MarkupSafe: the public way, a bit slower
        from markupsafe import escape

        def plain(text: str) -> str:
            return str(escape(text))
        return plain
    return _escape_inner  # type: ignore[no-any-return, unused-ignore]


PARTS = "_parts.xml"
_IMPORT = re.compile(r'{%-?\s*import\s+"_parts\.xml"\s+as\s+(\w+)\s*-?%}\n?')
_MACRO = re.compile(r"{%-?\s*macro\s+(\w+)\((\w+)\)\s*-%}(.*?){%-\s*endmacro\s*-?%}", re.S)


def inlining_loader(inner: jinja2.BaseLoader) -> jinja2.BaseLoader:
    """A loader that gives ``inner``'s templates with the calls of the shared attribute
    groups in ``_parts.xml`` written out in place: a macro call costs more than the rest of
    a small message's render. The templates themselves keep the calls, and mean the same
    either way."""
    import jinja2

    class Loader(jinja2.BaseLoader):
        def get_source(self, environment: jinja2.Environment,
                       template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
            source, filename, uptodate = inner.get_source(environment, template)
            if template != PARTS:
                try:
                    parts = inner.get_source(environment, PARTS)[0]
                except jinja2.TemplateNotFound:
                    return source, filename, uptodate
                source = inline_parts(source, parts)
            return source, filename, uptodate

        def list_templates(self) -> list[str]:
            return inner.list_templates()

    return Loader()


def inline_parts(source: str, parts: str) -> str:
    """``{{ parts.response(m) }}`` -> the body of ``_parts.xml``'s ``response`` macro, with the
    macros it calls written out too; calls that don't pass the macro's own parameter name
    (none do today) are left alone, and so is the import they need."""
    bodies = {name: (param, body.strip()) for name, param, body in _MACRO.findall(parts)}

    def expand(text: str, prefix: str) -> str:
        def one(match: re.Match[str]) -> str:
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


def render(template: jinja2.Template, payload: Mapping[str, Any]) -> str:
    """What ``template.render(m=payload)`` does, less merging Jinja2's globals (range, dict,
    ...) into a new context dict on every call: no template uses them, and it was half the
    time of rendering a small message."""
    context = template.new_context({"m": payload}, shared=True)
    return template.environment.concat(template.root_render_func(context))


# --- checking ----------------------------------------------------------------------------------

# Exact ints in these ranges need no call of their type's check (it would say the same).
_INT_RANGES = {"integer": LONG, "positive": ISP_NUMBER, "long": LONG, "nonnegative": (0, LONG[1])}


def list_check(node: Node, native: bool = False) -> Callable[[Sequence[Any]], bool] | None:
    """``f(items) -> bool``: are all these items of ``node`` fine? Generated for a leaf node
    of the table (None for others), the checks of its attributes unrolled, because a 96-ISP
    list is checked on every send; in C where ``native`` (the C extension is built). False
    says only "look closer": the plain checker then decides, item by item, and words the
    error."""
    if native and not node.children and _native is not None:
        return _native_list_check(node)
    if node.children:
        return None
    lines = ["def all_fine(items):",
             "    for item in items:",
             "        if item.__class__ is not dict or not allowed.issuperset(item):",
             "            return False"]
    names: dict[str, Any] = {"allowed": frozenset(node.keys())}
    for index, attr in enumerate(node.attrs):
        if attr.type in _INT_RANGES:
            low, high = _INT_RANGES[attr.type]
            bad = f"v.__class__ is not int or v < {low} or v > {high}"
        else:
            names[f"check{index}"] = FIELD_TYPES[attr.type].check
            bad = f"check{index}(v) is not None"
        lines.append(f"        v = item.get({attr.key!r})")
        lines.append(f"        if v is None or {bad}:" if attr.required
                     else f"        if v is not None and ({bad}):")
        lines.append("            return False")
    lines.append("    return True")
    exec("\n".join(lines), names)  # noqa: S102 - our own table's names and numbers only
    return cast("Callable[[Sequence[Any]], bool]", names["all_fine"])


def _native_list_check(node: Node) -> Callable[[Sequence[Any]], bool]:
    """:func:`list_check`'s function, calling the C extension's ``all_fine``."""
    keys = tuple(a.key for a in node.attrs)
    required = tuple(a.required for a in node.attrs)
    ranges = [_INT_RANGES.get(a.type, (0, 0)) for a in node.attrs]
    lows, highs = tuple(r[0] for r in ranges), tuple(r[1] for r in ranges)
    checks = tuple(None if a.type in _INT_RANGES else FIELD_TYPES[a.type].check
                   for a in node.attrs)
    check = _native.all_fine

    def all_fine(items: Sequence[Any]) -> bool:
        return bool(check(items, keys, required, lows, highs, checks))

    return all_fine


# --- reading -----------------------------------------------------------------------------------


class Columns:
    """All elements of one leaf list (an ISP list is most of a message), read a column at a
    time: one compiled XPath per attribute yields all of that attribute's values in document
    order, in C, where reading element by element costs an lxml proxy, an ``items()`` list
    and a tuple per element. The columns line up when every element of the list carries each
    attribute that was found, which the schema guarantees for required ones and
    :meth:`read` checks for the others.
    """

    __slots__ = ("columns", "count")

    def __init__(self, child: Child) -> None:
        # Required attributes first: the first one's column says how many elements there are.
        # (Compiled XPaths are safe to share between threads: lxml locks each one.)
        ordered: list[Attr] = sorted(child.node.attrs, key=lambda a: not a.required)
        self.columns = tuple(
            (a.key, FIELD_TYPES[a.type].parse, a.required,
             etree.XPath(f"{child.xml}/@{a.xml}", smart_strings=False, regexp=False))
            for a in ordered
        )
        self.count = etree.XPath(f"count({child.xml})", regexp=False)

    @staticmethod
    def fit(child: Child) -> bool:
        """Whether ``child`` is a list of leaf elements with attributes, which this reads."""
        return child.many and not child.node.children and bool(child.node.attrs)

    def read(self, element: Any) -> list[dict[str, Any]] | None:
        """The dicts of ``element``'s children of this list, or None when they are better
        read element by element: an optional attribute on some only (the columns would not
        line up) or a value that does not parse (which that way is named)."""
        found = []
        count = None
        for key, parse, required, xpath in self.columns:
            texts = xpath(element)
            if count is None:
                count = len(texts) if required else int(self.count(element))
                if not count:
                    return []
            if texts:
                found.append((key, parse, texts))
        if any(len(texts) != count for _, _, texts in found):
            return None
        try:
            columns = [list(map(parse, texts)) for _, parse, texts in found]
        except (ValueError, ArithmeticError):
            return None
        return _row_builder(tuple(key for key, _, _ in found))(*columns)


@lru_cache(maxsize=None)
def _row_builder(keys: tuple[str, ...]) -> Callable[..., list[dict[str, Any]]]:
    """``f(col_a, col_b)`` -> ``[{'a': a0, 'b': b0}, ...]``, compiled for these keys.

    A dict display in a comprehension builds the rows of a 96-ISP list in about a third of
    the time that ``dict(zip(keys, row))`` takes; the keys are the table's own identifiers.
    """
    names = [f"c{i}" for i in range(len(keys))]
    row = ", ".join(f"{key!r}: v{i}" for i, key in enumerate(keys))
    targets = "".join(f"v{i}, " for i in range(len(keys)))
    built = eval(f"lambda {', '.join(names)}: "  # noqa: S307 - the table's keys only
                 f"[{{{row}}} for ({targets}) in zip({', '.join(names)})]")
    return cast("Callable[..., list[dict[str, Any]]]", built)


# --- reading in C (pyuftp/message/_native.c) -----------------------------------------------


def native() -> bool:
    """Whether the C extension is to be used now (:data:`ENABLED` and :data:`NATIVE`)."""
    return ENABLED and NATIVE and _native is not None


def shape_fine(root: Any, max_attributes: int, max_depth: int, max_children: int) -> bool:
    """True when the C walk finds ``root``'s tree within the limits; False says only that the
    plain walk must look (and word the error), as does an extension that is not in use."""
    if not native():
        return False
    return bool(_native.shape_fine(root, max_attributes, max_depth, max_children))


class NativeTable:
    """One node's attributes as the C reader takes them: XML names, dict keys and parse
    functions, in the table's order. :meth:`attributes` and :meth:`rows` give what the plain
    reader gives for the element(s), key order included, or None to say "read it plainly"
    (a value that does not parse, which the plain reader then names)."""

    __slots__ = ("keys", "names", "parses", "tag")

    def __init__(self, attrs: Sequence[Attr], tag: str = "") -> None:
        self.names = tuple(a.xml.encode("ascii") for a in attrs)
        self.keys = tuple(a.key for a in attrs)
        self.parses = tuple(FIELD_TYPES[a.type].parse for a in attrs)
        self.tag = tag.encode("ascii")

    def attributes(self, element: Any) -> dict[str, Any] | None:
        """The fields of ``element``'s attributes."""
        return cast("dict[str, Any] | None",
                    _native.attributes(element, self.names, self.keys, self.parses))

    def rows(self, element: Any) -> list[dict[str, Any]] | None:
        """The fields of each of ``element``'s children of this node's tag, in order."""
        return cast("list[dict[str, Any]] | None",
                    _native.rows(element, self.tag, self.names, self.keys, self.parses))
