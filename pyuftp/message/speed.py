"""Speed-ups of the message layer, fenced in one module behind one switch.

Everything here is a faster way of doing what :mod:`pyuftp.message.render`,
:mod:`pyuftp.message.check` and :mod:`pyuftp.message.read` also do plainly, with the same results
(``test/test_messaging_speed.py`` holds the two to that, byte for byte and exception for
exception):

* rendering: templates compiled to leaner Python (:func:`fast_environment`), the shared
  attribute groups of ``_parts.xml`` written out in place of macro calls
  (:func:`inlining_loader`), a render call without Jinja2's per-call context set-up
  (:func:`render`), and flat loops (ISP lists) written by the C extension where it is built,
  their ints and ASCII strs written and their plain filters called from C
  (:func:`render_rows`);
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
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from .catalog import Attr, Child, Node
from .fields import FIELD_TYPES, ISP_NUMBER, LONG

if TYPE_CHECKING:
    import jinja2
# The renderer's speed-ups live in a module of their own, and are used from here.
from .speed_render import PARTS as PARTS
from .speed_render import fast_environment as _fast_environment
from .speed_render import inline_parts as inline_parts
from .speed_render import inlining_loader as inlining_loader
from .speed_render import render as render

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

def fast_environment(base: type[jinja2.Environment]) -> type[jinja2.Environment]:
    """The renderer's fast Environment class (:mod:`pyuftp.message.speed_render`), whose
    flat loops (ISP lists) are written in C where the extension is in use."""
    return _fast_environment(base, render_rows)


def render_rows(items: Any, ops: tuple[Any, ...], filters: tuple[Any, ...] = ()) -> str | None:
    """A flat template loop's text, written by the C extension; None (the generated Python
    writes it) when the extension is not in use or the items hold, or the loop's filters
    return, more than exact ints and ASCII strs."""
    if not native():
        return None
    return cast("str | None", _native.render_rows(items, ops, filters))


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


def attributes_check(node: Node, native: bool) -> Callable[[Sequence[Any]], bool] | None:
    """``f((value,)) -> bool``: are ``value``'s attributes fine (a dict with no unknown key,
    every attribute present where required and of its type)? In C, for a node with child
    elements too (their keys are allowed and left to their own checks); None where the C
    extension is not in use. False says only "look closer", as for :func:`list_check`."""
    if not native or _native is None:
        return None
    return _native_list_check(node)


def _native_list_check(node: Node) -> Callable[[Sequence[Any]], bool]:
    """:func:`list_check`'s function, calling the C extension's ``all_fine``."""
    keys = tuple(a.key for a in node.attrs)
    required = tuple(a.required for a in node.attrs)
    ranges = [_INT_RANGES.get(a.type, (0, 0)) for a in node.attrs]
    lows, highs = tuple(r[0] for r in ranges), tuple(r[1] for r in ranges)
    checks = tuple(None if a.type in _INT_RANGES else FIELD_TYPES[a.type].check
                   for a in node.attrs)
    others = tuple(c.key for c in node.children)
    check = _native.all_fine

    def all_fine(items: Sequence[Any]) -> bool:
        return bool(check(items, keys, required, lows, highs, checks, others))

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
