"""Write the typed views of the payload dicts from the field-type table.

    python tools/generate.py          # rewrite the generated code (and the other makers')
    python tools/generate.py --check  # exit 1 if the committed code differs from the table

It writes three things, all from :mod:`pyuftp.message.catalog` and :mod:`pyuftp.message.fields`:

- ``pyuftp/types/enums.py``: a ``StrEnum`` per enumeration in ``fields.CHOICES``, and the
  ``...Value`` alias (member or plain string) that payload types declare for such a field;
- ``pyuftp/types/payloads.py``: a ``TypedDict`` per message type (3.1.0, the default version, and
  for other versions only the types whose shape differs), one per nested element too, and
  ``PAYLOADS``;
- ``pyuftp/clients/roles.py``: the six role clients, with a typed ``send_*`` method per
  message type that the route carries, ``CLIENTS`` and ``client_class``.

The naming scheme is described in the docstring written into ``pyuftp/types/payloads.py``.
"""
from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import replace
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyuftp.message import fields  # noqa: E402
from pyuftp.message.catalog import (  # noqa: E402
    DEFAULT_VERSION,
    FLEX,
    PAYLOAD,
    RESPONSE,
    ROLES,
    SIGNED_MESSAGE,
    SPECS,
    Attr,
    Child,
    Node,
    snake_case,
    spec,
)
from pyuftp.message.descriptions import summary  # noqa: E402

COMMAND = "python tools/generate.py"
ENUMS = ROOT / "pyuftp" / "types" / "enums.py"
PAYLOADS = ROOT / "pyuftp" / "types" / "payloads.py"
CLIENT_ROLES = ROOT / "pyuftp" / "clients" / "roles.py"
WIDTH = 99  # the longest line written

# --- naming --------------------------------------------------------------------------------------

#: Enumerations whose class is not simply the CamelCase of their CHOICES key.
ENUM_NAMES = {"redispatch": "RedispatchBy"}
#: Members whose name is not simply the UPPER_SNAKE_CASE of their value.
MEMBER_NAMES = {"kW": "KW", "kWh": "KWH"}


def camel(snake: str) -> str:
    """``offer_option`` -> ``OfferOption``, ``isp`` -> ``Isp``."""
    return "".join(word.capitalize() for word in snake.split("_"))


def enum_name(choice: str) -> str:
    return ENUM_NAMES.get(choice, camel(choice))


def member_name(value: str) -> str:
    return MEMBER_NAMES.get(value, snake_case(value).upper())


def suffix(version: str) -> str:
    """'' for the default version, else ``_3_0_0``."""
    return "" if version == DEFAULT_VERSION else "_" + version.replace(".", "_")


def payload_name(message_type: str, version: str = DEFAULT_VERSION) -> str:
    """``D-Prognosis`` -> ``DPrognosisPayload`` (``DPrognosisPayload_3_0_0``)."""
    return message_type.replace("-", "") + "Payload" + suffix(version)


def item_name(parent: str, child: Child) -> str:
    """The type of a nested element: its parent's name (less ``Payload``), then the CamelCase
    of its singular key: ``FlexOffer`` + ``OfferOption`` + ``Isp``."""
    return parent.removesuffix("Payload") + camel(snake_case(child.xml))


# --- value types ---------------------------------------------------------------------------------

#: The Python type of a field, by the function that parses it from XML (so a new pattern
#: type, parsed by ``str.strip``, needs nothing here).
BY_PARSER: dict[Callable[..., Any], str] = {
    str.strip: "str",
    int: "int",
    fields.parse_boolean: "bool",
    fields.parse_decimal: "Decimal | int",
    fields.parse_datetime: "datetime.datetime",
    fields.parse_date: "datetime.date",
    fields.parse_duration: "datetime.timedelta",
}


def python_type(field_type: str) -> str:
    if field_type in fields.CHOICES:
        return enum_name(field_type) + "Value"
    parse = fields.FIELD_TYPES[field_type].parse
    if parse not in BY_PARSER:
        raise SystemExit(f"make_types: no Python type for field type {field_type!r}; add its "
                         "parser to BY_PARSER")
    return BY_PARSER[parse]


# --- writing helpers -----------------------------------------------------------------------------


def docstring(text: str, indent: str = "    ") -> list[str]:
    """A docstring wrapped to WIDTH (paragraphs separated by blank lines), PEP 257 style."""
    lines: list[str] = []
    for paragraph in text.split("\n\n"):
        if lines:
            lines.append("")
        lines += textwrap.wrap(paragraph, WIDTH - len(indent), initial_indent='"""' * (not lines),
                               break_on_hyphens=False, break_long_words=False)
    if len(lines) == 1 and len(indent) + len(lines[0]) + 3 <= WIDTH:
        return [f'{indent}{lines[0]}"""']
    return [f"{indent}{line}" if line else "" for line in lines] + [f'{indent}"""']


def names_list(names: list[str], first: str, last: str, indent: str = "    ") -> list[str]:
    """``first``, then the names comma separated on lines of their own wrapped to WIDTH,
    then ``last``."""
    lines = [first]
    for name in names:
        if len(lines) == 1 or len(lines[-1]) + len(name) + 2 > WIDTH:
            lines.append(indent)
        lines[-1] += name + ", "
    return [line.rstrip() for line in lines] + [last]


# --- enums.py ------------------------------------------------------------------------------------

ENUMS_DOC = '''\
"""The UFTP enumerations as ``StrEnum`` classes.

Generated by ``{command}`` from ``pyuftp.message.fields.CHOICES``:
do not edit by hand.

A member is a ``str`` equal to its value, so it can stand wherever a payload takes the plain
string: ``{{"result": Result.ACCEPTED}}`` is checked and rendered exactly as
``{{"result": "Accepted"}}``. Payloads read by :func:`pyuftp.parse_message` hold plain ``str``
values, never members; compare them with either (``payload["result"] == Result.ACCEPTED``).

Each ``...Value`` alias is what the payload types of :mod:`pyuftp.types.payloads` declare for
such a field: a member, or one of the plain strings (so that a type checker catches
``"Acepted"``).
"""'''


def _keys_of_type() -> dict[str, list[str]]:
    """For each field type, the dict keys that have it (in any version, SignedMessage too)."""
    found: dict[str, list[str]] = {}

    def walk(node: Node) -> None:
        for attr in node.attrs:
            keys = found.setdefault(attr.type, [])
            if attr.key not in keys:
                keys.append(attr.key)
        for child in node.children:
            walk(child.node)

    for s in SPECS.values():
        for message_type in s.message_types:
            walk(s.messages[message_type])
    walk(SIGNED_MESSAGE)
    return found


def enums_text() -> str:
    used = _keys_of_type()
    names = [enum_name(c) for c in fields.CHOICES]
    lines = [ENUMS_DOC.format(command=COMMAND), "from __future__ import annotations", "",
             "from enum import StrEnum", "from typing import Literal, TypeAlias", ""]
    lines += names_list([f'"{n}"' for n in names] + [f'"{n}Value"' for n in names],
                        "__all__ = [", "]")
    for choice, values in fields.CHOICES.items():
        name = enum_name(choice)
        keys = ", ".join(f"``{k}``" for k in used.get(choice, []))
        lines += ["", "", f"class {name}(StrEnum):"]
        lines += docstring(f"The values of {keys}: {', '.join(values)}.")
        lines += [""] + [f'    {member_name(v)} = "{v}"' for v in values]
    lines.append("")
    for choice, values in fields.CHOICES.items():
        name = enum_name(choice)
        alias = f"{name}Value: TypeAlias = {name} | Literal["
        literal = ", ".join(f'"{v}"' for v in values)
        lines += ["", f"#: A ``{name}`` member or its plain string."]
        if len(alias) + len(literal) + 1 <= WIDTH:
            lines.append(f"{alias}{literal}]")
        else:
            lines += names_list([f'"{v}"' for v in values], alias, "]")
    return "\n".join(line.rstrip() for line in lines) + "\n"


# --- payloads.py ---------------------------------------------------------------------------------

PAYLOADS_DOC = '''\
"""``TypedDict`` types of the payload dicts, for editors and type checkers.

Generated by ``{command}`` from the field-type table
(``pyuftp/message/catalog.py``): do not edit by hand.

    from pyuftp.types.payloads import FlexOfferPayload

    offer: FlexOfferPayload = {{"isp_duration": timedelta(minutes=15), ...}}

The payloads stay plain dicts: these types only describe them. A checker then catches a
misspelt key (``isp_durations``), a ``str`` where an ``int`` belongs, or ``"Acepted"``; at run
time :func:`pyuftp.create_message` still checks everything.

Naming:

- a message type's payload is its XML name without hyphens, then ``Payload``:
  ``FlexOffer`` -> ``FlexOfferPayload``, ``D-Prognosis`` -> ``DPrognosisPayload``;
- a nested element's type is named after its path: its parent's name (less ``Payload``),
  then the CamelCase of its singular dict key: the items of ``offer_options`` are
  ``FlexOfferOfferOption``, theirs of ``isps`` ``FlexOfferOfferOptionIsp``, the
  ``dso_view`` of an AGRPortfolioQueryResponse ``AGRPortfolioQueryResponseDsoView``;
- the types are those of UFTP {default}, the default version; where another version's
  shape differs, its own type carries the version as a suffix: ``FlexOfferPayload_3_0_0``.
  Every other type serves all versions;
- ``PayloadBase`` holds the metadata keys of every message, ``ResponsePayloadBase`` adds
  ``result`` and ``rejection_reason``, ``FlexPayloadBase`` the keys that flexibility
  messages share (``isp_duration``, ``time_zone``, ``period``, ``congestion_point``).

Keys are required where the XML attribute or element is; optional ones are ``NotRequired``.
The metadata keys (``version``, ``sender_domain``, ``recipient_domain``, ``time_stamp``,
``message_id``, ``conversation_id``) are ``NotRequired``: a client fills them in when sending
(:func:`pyuftp.create_message` all but the two domains); a parsed payload always has them.
Values: ``int``, ``str``, ``bool``, ``datetime.datetime``, ``datetime.date``,
``datetime.timedelta``, ``Decimal | int`` for decimals, and for enumerations
a :mod:`pyuftp.types.enums` member or its plain string (``ResultValue``, ...).
A payload parsed from a peer may carry what pyuftp tolerates but never writes (a ``result``
on a TestMessageResponse); these types describe what pyuftp writes.

``PAYLOADS`` maps each message type to its type (UFTP {default}); ``PAYLOADS_3_0_0`` and the
like do the same for the other versions.
"""
# No ``from __future__ import annotations`` here: with string annotations, Python 3.11 cannot
# tell NotRequired keys from required ones at run time (``__required_keys__``).'''

#: The shared bases, each with the base it extends: the XSD's PayloadMessageType,
#: PayloadMessageResponseType and FlexMessageType.
BASES: tuple[tuple[str, Node, str | None, str], ...] = (
    ("PayloadBase", PAYLOAD, None, "The metadata keys of every payload: all optional, as "
     "sending fills them in; a parsed payload has them all."),
    ("ResponsePayloadBase", RESPONSE, "PayloadBase", "The keys that {users} share."),
    ("FlexPayloadBase", FLEX, "PayloadBase", "The keys that {users} share."),
)


def _base_of(node: Node) -> tuple[str, Node]:
    """The shared base whose attributes ``node`` starts with (the longest such)."""
    best = ("PayloadBase", PAYLOAD)
    for name, base, _, _ in BASES:
        if node.attrs[: len(base.attrs)] == base.attrs and len(base.attrs) > len(best[1].attrs):
            best = (name, base)
    if node.attrs[: len(PAYLOAD.attrs)] != PAYLOAD.attrs:
        raise SystemExit("make_types: a message without the metadata attributes")
    return best


def _field(key: str, type_: str, required: bool) -> str:
    if not required:
        type_ = f"NotRequired[{type_}]"
    return f"    {key}: {type_}"


class Payloads:
    """The class definitions of payloads.py, children before the types that hold them."""

    def __init__(self) -> None:
        self.blocks: list[list[str]] = []
        self.names: list[str] = []
        self.enums: set[str] = set()

    def declare(self, name: str, base: str, doc: str, attrs: tuple[Attr, ...],
                children: list[tuple[Child, str]]) -> None:
        if name in self.names:
            raise SystemExit(f"make_types: two types named {name}")
        lines = [f"class {name}({base}):"] + docstring(doc)
        if attrs or children:
            lines.append("")
        for attr in attrs:
            type_ = python_type(attr.type)
            if type_.endswith("Value"):
                self.enums.add(type_)
            lines.append(_field(attr.key, type_, attr.required))
        for child, type_ in children:
            lines.append(_field(child.key, f"list[{type_}]" if child.many else type_,
                                child.min > 0))
        self.blocks.append(lines)
        self.names.append(name)

    def node(self, node: Node, name: str, doc: str, version: str, default: Node | None,
             skip: int = 0, base: str = "TypedDict") -> str:
        """Declare ``node`` (and its children) as ``name``; returns the name used. In another
        version, a nested node that is the same as the default version's keeps that type."""
        if default is not None and node == default and version != DEFAULT_VERSION:
            return name.removesuffix(suffix(version))
        children = []
        for index, child in enumerate(node.children):
            item = item_name(name.removesuffix(suffix(version)), child) + suffix(version)
            same = (default.children[index].node if default is not None
                    and index < len(default.children)
                    and default.children[index].xml == child.xml else None)
            holder = name
            what = (f'An item of ``{holder}["{child.key}"]``.' if child.many
                    else f'The ``{child.key}`` of a ``{holder}``.')
            children.append((child, self.node(child.node, item, what, version, same)))
        self.declare(name, base, doc, node.attrs[skip:], children)
        return name

    def message(self, message_type: str, version: str) -> str:
        node = spec(version).messages[message_type]
        default = spec(DEFAULT_VERSION).messages[message_type]
        name = payload_name(message_type, version)
        if version != DEFAULT_VERSION and node == default:
            return payload_name(message_type)
        base, base_node = _base_of(node)
        doc = f"The ``{message_type}`` payload.\n\n{summary(message_type)}"
        if version != DEFAULT_VERSION:
            doc = (f"The ``{message_type}`` payload in UFTP {version}.\n\n"
                   f"As {payload_name(message_type)}, but {_differences(default, node)}.")
        return self.node(node, name, doc, version, default, len(base_node.attrs), base)


def _differences(default: Node, node: Node) -> str:
    """How ``node`` differs from the default version's, in words (top-level keys)."""
    old = {a.key: a for a in default.attrs}
    new = {a.key: a for a in node.attrs}
    parts = []
    lacking = [k for k in old if k not in new]
    if lacking:
        parts.append("no " + ", ".join(f"``{k}``" for k in lacking))
    added = [k for k in new if k not in old]
    if added:
        parts.append("also " + ", ".join(f"``{k}``" for k in added))
    for key in new:
        if key in old and new[key].required != old[key].required:
            parts.append(f"``{key}`` {'required' if new[key].required else 'optional'}")
    if default.children != node.children:
        parts.append("other nested elements")
    return "; ".join(parts) or "the same keys"


def payloads_text() -> str:
    out = Payloads()
    default = spec(DEFAULT_VERSION)
    for name, node, parent, doc in BASES:
        users = [t for t in default.message_types if _base_of(default.messages[t])[0] == name]
        doc = doc.format(users=", ".join(users[:-1]) + " and " + users[-1] if users else "")
        if parent is None:  # the metadata: filled in when sending
            attrs = tuple(replace(a, required=False) for a in node.attrs)
        else:
            attrs = node.attrs[len(next(b for n, b, _, _ in BASES if n == parent).attrs):]
        out.declare(name, parent or "TypedDict", doc, attrs, [])
    mappings: dict[str, dict[str, str]] = {}
    for version in [DEFAULT_VERSION] + [v for v in SPECS if v != DEFAULT_VERSION]:
        mappings[version] = {t: out.message(t, version) for t in spec(version).message_types}
    lines = [PAYLOADS_DOC.format(command=COMMAND, default=DEFAULT_VERSION),
             "import datetime", "from decimal import Decimal",
             "from typing import NotRequired, TypedDict", ""]
    lines += names_list(sorted(out.enums), "from .enums import (", ")")
    lines.append("")
    tables = ["PAYLOADS"] + [f"PAYLOADS{suffix(v)}" for v in mappings if v != DEFAULT_VERSION]
    lines += names_list([f'"{n}"' for n in sorted(out.names, key=str.lower) + tables],
                        "__all__ = [", "]")
    for block in out.blocks:
        lines += ["", ""] + block
    lines += ["", "", f"#: The payload type of every message type (UFTP {DEFAULT_VERSION}).",
              "PAYLOADS: dict[str, type] = {"]
    lines += [f'    "{t}": {n},' for t, n in mappings[DEFAULT_VERSION].items()]
    lines.append("}")
    for version, mapping in mappings.items():
        if version == DEFAULT_VERSION:
            continue
        changed = {t: n for t, n in mapping.items() if n != mappings[DEFAULT_VERSION][t]}
        lines += [f"#: The payload type of every message type (UFTP {version})."]
        lines += names_list(["**PAYLOADS"] + [f'"{t}": {n}' for t, n in changed.items()],
                            f"PAYLOADS{suffix(version)}: dict[str, type] = {{", "}")
    return "\n".join(line.rstrip() for line in lines) + "\n"


# --- client.py -----------------------------------------------------------------------------------

ARTICLE = {"AGR": "an aggregator", "CRO": "the common reference operator",
           "DSO": "a grid operator"}


def _method(message_type: str) -> list[str]:
    method = "send_" + snake_case(message_type)
    type_ = payload_name(message_type)
    head = f"    async def {method}(self, message: {type_}) -> {type_}:"
    if len(head) > WIDTH:
        head = (f"    async def {method}(\n        self, message: {type_}\n"
                f"    ) -> {type_}:")
    lines = head.split("\n")
    lines += docstring(f"{summary(message_type)}\n\nSends a ``{message_type}``; returns the "
                       "payload as sent.", "        ")
    call = f'await self.send("{message_type}", message)'
    body = f"        return cast({type_}, {call})"
    if len(body) > WIDTH:
        body = f"        return cast({type_},\n                    {call})"
    return lines + body.split("\n")


ROLES_DOC = '''\
"""The role clients: one class per sender and recipient role, with a typed ``send_*`` method
for each message type that route carries.

Generated by ``{command}`` from the catalog (``pyuftp/message/catalog.py``):
do not edit by hand. What they share is :class:`~pyuftp.clients.client.ShapeshifterClient`.
"""'''


def roles_text() -> str:
    """pyuftp/clients/roles.py: the six role clients, ``CLIENTS`` and ``client_class``."""
    routes = [(s, r) for s in ROLES for r in ROLES if (s, r) in spec().routes]
    names = [f"Shapeshifter{s.title()}{r.title()}Client" for s, r in routes]
    types = sorted({payload_name(t) for s, r in routes for t in spec().sent_by(s, r)},
                   key=str.lower)
    lines = [ROLES_DOC.format(command=COMMAND), "from __future__ import annotations", "",
             "from typing import cast", ""]
    lines += names_list(types, "from ..types.payloads import (", ")")
    lines += ["from .client import ShapeshifterClient", ""]
    lines += names_list([f'"{n}"' for n in names] + ['"CLIENTS"', '"client_class"'],
                        "__all__ = [", "]")
    for (sender, recipient), name in zip(routes, names):
        lines += ["", "", f"class {name}(ShapeshifterClient):"]
        lines += docstring(f"Client with which {ARTICLE[sender]} ({sender}) sends to "
                           f"{ARTICLE[recipient]} ({recipient}).")
        lines += ["", f'    sender_role = "{sender}"', f'    recipient_role = "{recipient}"']
        for message_type in spec().sent_by(sender, recipient):
            lines += [""] + _method(message_type)
    lines += ["", "", "CLIENTS: dict[tuple[str, str], type[ShapeshifterClient]] = {"]
    lines += [f'    ("{s}", "{r}"): {name},' for (s, r), name in zip(routes, names)]
    lines += ["}", "", "", '''\
def client_class(sender_role: str, recipient_role: str) -> type[ShapeshifterClient]:
    """The client class for messages from ``sender_role`` to ``recipient_role``."""
    try:
        return CLIENTS[(sender_role, recipient_role)]
    except KeyError:
        raise ValueError(
            f"UFTP has no messages from a {sender_role} to a {recipient_role}") from None''']
    return "\n".join(line.rstrip() for line in lines) + "\n"


def outputs() -> dict[Path, str]:
    """Every file this maker writes, and its text."""
    return {ENUMS: enums_text(), PAYLOADS: payloads_text(), CLIENT_ROLES: roles_text()}
