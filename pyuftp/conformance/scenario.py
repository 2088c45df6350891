"""Scenarios for ``pyuftp simulate``: a counterparty's behaviour as a small TOML file.

    [party]
    role = "DSO"                    # AGR, CRO or DSO
    domain = "dso.test"
    version = "3.1.0"               # of what it sends (answers take the request's)

    [answers]
    delay = 0.5                     # seconds before every answer
    reject = { FlexOffer = "no budget left today" }   # type -> the rejection reason
    drop = ["Metering"]             # taken with HTTP 200, never answered

    [faults]                        # refuse requests for a while
    status = 503                    # 5xx, or 429 (with Retry-After)
    first = 2                       # the first 2 requests ...
    seconds = 0                     # ... or every request in the first N seconds
    retry_after = 1

    [[send]]                        # send messages on a schedule
    type = "FlexRequest"            # an example payload, moved to now
    to = "agr.test"
    role = "AGR"
    at = 0.5                        # seconds after the start
    every = 0                       # then again every N seconds (0: once)
    count = 1
    fields = { revision = 1 }       # top-level fields changed

    [orders]
    best_offer = true               # order the cheapest option offered for our FlexRequest
    wait = 1.0                      # seconds after the first offer

    [settlement]                    # a DSO: settle what it ordered ("month end")
    after = 0                       # seconds after the start (0: never)

    [offers]                        # an AGR: offer on every FlexRequest (the example offer)
    on_request = true
    wait = 0.2                      # seconds after the request
    revoke_after = 0                # revoke the offer that long after it (0: never)

    [hooks]
    module = "hooks.py"             # Python for what a file cannot say (see docs)

Every key is checked when the file is read; an error names the key (``answers.delay``) and
says what it takes.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from ..message.catalog import MESSAGE_TYPES, ROLES, VERSIONS
from ..message.check import suggest

__all__ = ["Scenario", "Send", "ScenarioError", "load", "parse"]

MAX_SENDS = 10_000  # every scheduled message, in all: a scenario is a test, not a load


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Send:
    message_type: str
    to: str
    role: str
    at: float = 0.0
    every: float = 0.0
    count: int = 1
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    role: str
    domain: str
    version: str = VERSIONS[0]
    delay: float = 0.0
    reject: dict[str, str] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    fault_status: int = 0
    fault_first: int = 0
    fault_seconds: float = 0.0
    retry_after: int = 1
    sends: tuple[Send, ...] = ()
    best_offer: bool = False
    order_wait: float = 1.0
    offer_on_request: bool = False
    offer_wait: float = 0.2
    revoke_after: float = 0.0
    settle_after: float = 0.0
    hooks: str | None = None


_KEYS: dict[str, tuple[str, ...]] = {
    "party": ("role", "domain", "version"),
    "answers": ("delay", "reject", "drop"),
    "faults": ("status", "first", "seconds", "retry_after"),
    "send": ("type", "to", "role", "at", "every", "count", "fields"),
    "orders": ("best_offer", "wait"),
    "offers": ("on_request", "wait", "revoke_after"),
    "settlement": ("after",),
    "hooks": ("module",),
}


def load(path: str | os.PathLike[str]) -> Scenario:
    """The scenario in a TOML file; ScenarioError naming the file and key."""
    try:
        with open(path, "rb") as file:
            data = file.read(1024 * 1024 + 1)
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {os.fspath(path)!r}: "
                            f"{exc.strerror or exc}") from None
    if len(data) > 1024 * 1024:
        raise ScenarioError(f"scenario {os.fspath(path)!r} is larger than 1 MiB")
    scenario = parse(data.decode("utf-8", "replace"), os.path.dirname(os.fspath(path)))
    return scenario


def _unknown(where: str, key: str, known: tuple[str, ...]) -> ScenarioError:
    meant = suggest(key, known)
    hint = f"did you mean {meant!r}?" if meant else f"known: {', '.join(known)}"
    return ScenarioError(f"scenario key {where + key!r} is unknown ({hint})")


def _number(table: dict[str, Any], key: str, where: str, default: float,
            integer: bool = False) -> Any:
    value = table.get(key, default)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < 0:
        what = "a whole number" if integer else "a number"
        raise ScenarioError(f"scenario key '{where}{key}': must be {what} >= 0, not {value!r}")
    return value


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        meant = suggest(str(value), choices) if isinstance(value, str) else None
        hint = f"did you mean {meant!r}?" if meant else f"one of {', '.join(choices)}"
        raise ScenarioError(f"scenario key {key!r}: {value!r} is not allowed ({hint})")
    return str(value)


def _text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(f"scenario key '{where}{key}' is required: a non-empty string")
    return value


def parse(text: str, base: str = ".") -> Scenario:
    """The scenario in TOML ``text`` (``hooks.module`` relative to ``base``)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"the scenario is not valid TOML: {exc}") from None
    for name, value in data.items():
        if name not in _KEYS:
            raise _unknown("", name, tuple(_KEYS))
        tables = value if name == "send" else [value]
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            shape = "[[send]] tables" if name == "send" else f"a [{name}] table"
            raise ScenarioError(f"scenario key {name!r} must be {shape}")
        for table in tables:
            for key in table:
                if key not in _KEYS[name]:
                    raise _unknown(name + ".", key, _KEYS[name])
    party = data.get("party")
    if party is None:
        raise ScenarioError("scenario key 'party' is required: [party] with role and domain")
    role = _choice(party.get("role"), "party.role", ROLES)
    version = _choice(party.get("version", VERSIONS[0]), "party.version", VERSIONS)
    answers, faults = data.get("answers", {}), data.get("faults", {})
    reject = answers.get("reject", {})
    if not isinstance(reject, dict) or not all(isinstance(v, str) for v in reject.values()):
        raise ScenarioError("scenario key 'answers.reject' must be a table: type = \"reason\"")
    for message_type in reject:
        _choice(message_type, f"answers.reject.{message_type}", MESSAGE_TYPES)
    drop = answers.get("drop", [])
    if not isinstance(drop, list):
        raise ScenarioError("scenario key 'answers.drop' must be a list of message types")
    for index, message_type in enumerate(drop):
        _choice(message_type, f"answers.drop[{index}]", MESSAGE_TYPES)
    status = _number(faults, "status", "faults.", 0, integer=True)
    if status and not (status == 429 or 500 <= status <= 599):
        raise ScenarioError(f"scenario key 'faults.status': 429 or 5xx, not {status}")
    sends = tuple(_send(table, index) for index, table in enumerate(data.get("send", [])))
    if sum(s.count for s in sends) > MAX_SENDS:
        raise ScenarioError(f"scenario key 'send': more than {MAX_SENDS} messages in all")
    orders, offers, hooks = data.get("orders", {}), data.get("offers", {}), data.get("hooks", {})
    best = _flag(orders, "best_offer", "orders.")
    on_request = _flag(offers, "on_request", "offers.")
    settle = _number(data.get("settlement", {}), "after", "settlement.", 0.0)
    if (best and role != "DSO") or (on_request and role != "AGR") or (settle and role != "DSO"):
        raise ScenarioError("scenario keys 'orders' and 'settlement' are for a DSO, 'offers' "
                            f"for an AGR (party.role is {role})")
    module = hooks.get("module")
    if module is not None:
        module = os.path.join(base, _text(hooks, "module", "hooks."))
    return Scenario(
        role=role, domain=_text(party, "domain", "party."), version=version,
        delay=_number(answers, "delay", "answers.", 0.0), reject=dict(reject),
        drop=tuple(drop), fault_status=status,
        fault_first=_number(faults, "first", "faults.", 0, integer=True),
        fault_seconds=_number(faults, "seconds", "faults.", 0.0),
        retry_after=_number(faults, "retry_after", "faults.", 1, integer=True),
        sends=sends, best_offer=best, order_wait=_number(orders, "wait", "orders.", 1.0),
        offer_on_request=on_request, offer_wait=_number(offers, "wait", "offers.", 0.2),
        revoke_after=_number(offers, "revoke_after", "offers.", 0.0), settle_after=settle,
        hooks=module)


def _flag(table: dict[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ScenarioError(f"scenario key '{where}{key}': true or false, not {value!r}")
    return value


def _send(table: dict[str, Any], index: int) -> Send:
    where = f"send[{index}]."
    fields = table.get("fields", {})
    if not isinstance(fields, dict):
        raise ScenarioError(f"scenario key '{where}fields' must be a table of payload fields")
    count = _number(table, "count", where, 1, integer=True)
    if count < 1:
        raise ScenarioError(f"scenario key '{where}count': at least 1")
    return Send(_choice(table.get("type"), where + "type", MESSAGE_TYPES),
                _text(table, "to", where), _choice(table.get("role"), where + "role", ROLES),
                _number(table, "at", where, 0.0), _number(table, "every", where, 0.0),
                count, dict(fields))
