"""The nodes the catalog (:mod:`pyuftp.message.catalog`) is written in: an element's
attributes (``XMLName:type`` words, a trailing ``?`` for an optional one) and its children,
with the dict keys they become (snake_case; a repeated child's key is plural)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace


def snake_case(xml_name: str) -> str:
    """``D-PrognosisMessageID`` -> ``d_prognosis_message_id``,
    ``ISP-Duration`` -> ``isp_duration``."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", xml_name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return name.replace("-", "_").lower()


def plural(key: str) -> str:
    """``isp`` -> ``isps``, ``flex_order_status`` -> ``flex_order_statuses``."""
    return key + ("es" if key.endswith("s") else "s")


@dataclass(frozen=True)
class Attr:
    xml: str
    type: str
    required: bool
    key: str


@dataclass(frozen=True)
class Child:
    xml: str
    node: Node
    min: int = 1
    max: int | None = None

    @property
    def many(self) -> bool:
        return self.max != 1

    @property
    def key(self) -> str:
        key = snake_case(self.xml)
        return plural(key) if self.many else key


@dataclass(frozen=True)
class Node:
    attrs: tuple[Attr, ...]
    children: tuple[Child, ...] = ()
    by_xml: dict[str, Attr] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_xml", {a.xml: a for a in self.attrs})
        keys = [a.key for a in self.attrs] + [c.key for c in self.children]
        assert len(keys) == len(set(keys)), f"duplicate keys in node: {keys}"

    def extend(self, spec: str = "", *children: Child) -> Node:
        """A node with this one's attributes and children plus more (XSD extension)."""
        return Node(self.attrs + _attrs(spec), self.children + children)

    def change(self, **attrs: str | None) -> Node:
        """A copy with attributes retyped (``'type?'``), or dropped (``None``), by XML name."""
        new = []
        for a in self.attrs:
            spec = attrs.get(a.xml.replace("-", "_"), a.type + ("" if a.required else "?"))
            if spec is not None:
                new.append(_attrs(f"{a.xml}:{spec}")[0])
        return replace(self, attrs=tuple(new))

    def keys(self) -> list[str]:
        return [a.key for a in self.attrs] + [c.key for c in self.children]


def _attrs(spec: str) -> tuple[Attr, ...]:
    out = []
    for word in spec.split():
        xml, type_ = word.split(":")
        required = not type_.endswith("?")
        out.append(Attr(xml, type_.rstrip("?"), required, snake_case(xml)))
    return tuple(out)


def node(spec: str, *children: Child) -> Node:
    return Node(_attrs(spec), children)
