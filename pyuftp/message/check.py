"""Checking payload dicts against the field-type table, before anything is rendered.

Errors name the field in dict terms, e.g.
``FlexOffer.offer_options[0].isps[3].power: 'abc' is not an integer``, and suggest the field
or message type that was probably meant (``did you mean 'isp_duration'?``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from . import speed
from .catalog import DIALECTS, SIGNED_MESSAGE, Node, Spec, spec
from ..exceptions import UnknownMessageType, ValidationError, quote
from .fields import FIELD_TYPES

# --- names: message types and fields, and what was probably meant -------------------------------


def _fold(name: str) -> str:
    """``FLEX-OFFER``, ``flex_offer``, ``FlexOffer`` -> ``flexoffer``."""
    return name.replace("_", "").replace("-", "").lower()


def suggest(name: Any, candidates: Iterable[str]) -> str | None:
    """The one of ``candidates`` that ``name`` probably means, if one is close enough: the
    same but for case, ``_`` and ``-``, else the closest by :func:`difflib.get_close_matches`.
    """
    if not isinstance(name, str):
        return None
    import difflib  # only when something is misspelled: not worth its import time before
    folded = {_fold(c): c for c in candidates}
    if _fold(name) in folded:
        return folded[_fold(name)]
    close = difflib.get_close_matches(_fold(name), list(folded), n=1)
    return folded[close[0]] if close else None


def message_node(message_type: Any, version: Spec, received: bool = False,
                 dialect: str | None = None) -> Node:
    """The table's node of ``message_type`` in ``version``: what pyuftp writes (to a party
    of ``dialect``, see :data:`~pyuftp.message.catalog.DIALECTS`), or (``received``) what it reads.
    Raises :class:`UnknownMessageType` for anything else."""
    if message_type == "SignedMessage":
        return SIGNED_MESSAGE
    nodes = version.received if received else version.messages
    found = nodes.get(message_type) if isinstance(message_type, str) else None
    if found is None:
        meant = suggest(message_type, version.message_types + ("SignedMessage",))
        hint = (f"did you mean {quote(meant)}?" if meant is not None
                else "known types: " + ", ".join(version.message_types))
        raise UnknownMessageType(f"{quote(message_type)} is not a UFTP message type; {hint}")
    if dialect is not None and not received:
        return DIALECTS[dialect].get(message_type, _same)(found)
    return found


def _same(node: Node) -> Node:
    return node


def _unknown_field(value: Mapping[Any, Any], allowed: frozenset[str], names: Sequence[str],
                   path: str) -> ValidationError:
    unknown = sorted(str(k) for k in value if k not in allowed)[0]
    fields = ", ".join(names)
    meant = suggest(unknown, [n for n in names if n not in value])
    if meant is None:
        return ValidationError(f"{path}.{unknown}", f"unknown field; the fields here are {fields}")
    return ValidationError(f"{path}.{unknown}",
                           f"unknown field; did you mean {quote(meant)}? "
                           f"The fields here are {fields}")


# --- the checker ---------------------------------------------------------------------------------


class Checker:
    """The checks for one node of the table, precomputed so that a 96-ISP list is cheap."""

    __slots__ = ("allowed", "attrs", "children", "names", "all_fine", "attributes_fine")

    def __init__(self, node: Node, fast: bool, native: bool = False) -> None:
        self.names = node.keys()
        self.allowed = frozenset(self.names)
        self.attrs = tuple((a.key, a.required, FIELD_TYPES[a.type].check) for a in node.attrs)
        self.children = tuple(
            (c.key, Checker(c.node, fast, native), c.min, c.many) for c in node.children
        )
        # A quick first pass over a list of these (see check_items), when speed is on.
        self.all_fine: Callable[[Sequence[Any]], bool] | None = (
            speed.list_check(node, native) if fast else None)
        # The same for one dict's attributes, in C (when in use), leaving its children.
        self.attributes_fine: Callable[[Sequence[Any]], bool] | None = (
            speed.attributes_check(node, native) if fast else None)

    def check(self, value: Any, path: str) -> None:
        """Raise :class:`ValidationError` for the first thing wrong with ``value`` at ``path``."""
        if self.attributes_fine is None or not self.attributes_fine((value,)):
            self._check_attributes(value, path)
        for key, checker, low, many in self.children:
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
            checker.check_items(item, f"{path}.{key}")

    def _check_attributes(self, value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise ValidationError(path, f"expected a dict, got {type(value).__name__}")
        if not self.allowed.issuperset(value):
            raise _unknown_field(value, self.allowed, self.names, path)
        for key, required, check in self.attrs:
            item = value.get(key)
            if item is None:
                if required:
                    raise ValidationError(f"{path}.{key}", "is required but missing")
            else:
                reason = check(item)
                if reason is not None:
                    raise ValidationError(f"{path}.{key}", reason)

    def check_items(self, items: Sequence[Any], path: str) -> None:
        """Check list items one by one, naming the index; when speed is on, first in one
        quick pass that only says whether to look closer."""
        if self.all_fine is not None and self.all_fine(items):
            return
        for index, item in enumerate(items):
            self.check(item, f"{path}[{index}]")


@lru_cache(maxsize=None)
def checker(message_type: str, version: str, fast: bool,
            dialect: str | None = None, native: bool = False) -> Checker:
    """The checker of ``message_type`` in the (supported) ``version``, built once; with the
    speed-ups where ``fast``, in C where also ``native``."""
    return Checker(message_node(message_type, spec(version), dialect=dialect), fast,
                   fast and native)


def check(message_type: Any, payload: Any, version: Spec, dialect: str | None = None) -> None:
    """Raise :class:`ValidationError` (naming the field in dict terms) if ``payload`` does not
    fit ``message_type`` in ``version`` (as sent to a party of ``dialect``, if given), or
    :class:`UnknownMessageType`."""
    if not isinstance(message_type, str):
        raise UnknownMessageType(f"message type must be a str, got {quote(message_type)}")
    if dialect is not None and dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {quote(dialect)}; known: {', '.join(DIALECTS)}")
    checker(message_type, version.version, speed.ENABLED, dialect,
            speed.native()).check(payload, message_type)
