"""The layers of pyuftp, lowest first: the one source of the map.

``test/face/test_architecture.py`` checks the imports against it and ``docs/architecture.rst``
draws it (a directive in ``docs/conf.py``). A module may import from its own layer and the
layers below, never from one above; each entry of ``parts`` is a folder of ``pyuftp/`` or a
loose module beside them.
"""
from __future__ import annotations

from typing import NamedTuple


class Layer(NamedTuple):
    name: str
    parts: tuple[str, ...]
    job: str


LAYERS: tuple[Layer, ...] = (
    Layer("types · errors", ("types", "exceptions", "_layers", "_shared"),
          "generated TypedDicts and enums; every error, with its HTTP status; two shared "
          "helpers"),
    Layer("message", ("message",),
          "dict ⇄ XML with no I/O: catalog (a Spec per version), fields, check, render, "
          "read, templates, schemas"),
    Layer("store", ("store",),
          "the contract (outbox, journal, archive) and its SQLite, memory and PostgreSQL "
          "stores"),
    Layer("signing", ("signing",), "keys, seal and open, the SignedMessage envelope"),
    Layer("discovery · auth", ("discovery", "auth"),
          "finding parties (Directory, DNS with DNSSEC, registries); OAuth2 out, bearer "
          "tokens in"),
    Layer("rules", ("rules",), "the business rules: registry, stateless and stateful checks"),
    Layer("core", ("core",),
          "the sans-I/O exchange: owns the order of steps, says its decisions as values"),
    Layer("receiving · sending", ("receiving", "sending"),
          "one door each: receive, record, handle, answer; seal, then queue or post"),
    Layer("clients", ("clients",),
          "role-pair clients, standalone or made from a party's service"),
    Layer("server", ("server",), "the aiohttp adapter: bytes in, bytes out, within limits"),
    Layer("face · cli", ("__init__", "api", "__main__", "cli", "sync", "logs", "conformance"),
          "the public face, the blocking facade, the command line and the demo; the "
          "conformance runner and the scriptable counterparty"),
)


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of a module named below ``pyuftp`` (``"store.sqlite"``).
    KeyError for a module that no layer names."""
    top = module.split(".")[0]
    for index, layer in enumerate(LAYERS):
        if top in layer.parts:
            return index
    raise KeyError(module)
