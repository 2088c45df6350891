"""The typed views of the payload dicts (issue #11): the TypedDicts of pyuftp/types/payloads.py, the
StrEnums of pyuftp/types/enums.py and the typed ``send_*`` methods of the role clients, all generated
by tools/make_types.py from the field-type table. They must be current, fit the table and the
examples, catch what they are for under mypy, and change nothing at run time."""
from __future__ import annotations

import asyncio
import importlib.util
import inspect
import subprocess
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

import pyuftp
from pyuftp.types import enums
from pyuftp.message import speed
from pyuftp.message.catalog import DEFAULT_VERSION, PAYLOAD, ROLES, SPECS, Node, snake_case, spec
from pyuftp.clients import CLIENTS, ShapeshifterClient
from pyuftp.message.descriptions import summary
from pyuftp.message.examples import example
from pyuftp.message.fields import CHOICES
from pyuftp.types.payloads import PAYLOADS, PAYLOADS_3_0_0

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "make_types.py"
TABLES = {"3.1.0": PAYLOADS, "3.0.0": PAYLOADS_3_0_0}
PAIRS = [(version, message_type) for version, s in SPECS.items() for message_type in s.message_types]
METADATA = {attr.key for attr in PAYLOAD.attrs}


def _tool() -> Any:
    loaded = importlib.util.spec_from_file_location("make_types", TOOL)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


# --- the generated code is current ----------------------------------------------------------------






# --- the TypedDicts fit the table and the examples ------------------------------------------------


def _fits(value: Any, hint: Any, path: str) -> None:
    """Assert that ``value`` is what ``hint`` (a type from payloads.py) allows."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        failures = []
        for option in get_args(hint):
            try:
                _fits(value, option, path)
                return
            except AssertionError as exc:
                failures.append(str(exc))
        raise AssertionError(f"{path}: {value!r} fits none of {hint}: {failures}")
    if origin is Literal:
        assert value in get_args(hint), f"{path}: {value!r} is not one of {get_args(hint)}"
    elif origin is list:
        assert isinstance(value, list), f"{path}: {value!r} is not a list"
        for index, item in enumerate(value):
            _fits(item, get_args(hint)[0], f"{path}[{index}]")
    elif is_typeddict(hint):
        _walk(value, hint, path)
    else:
        assert isinstance(value, hint), f"{path}: {value!r} is not a {hint}"


def _walk(payload: Any, typed: Any, path: str) -> None:
    """Assert that ``payload`` has only keys ``typed`` declares, all its required ones, and
    values of the declared types, all the way down."""
    assert isinstance(payload, dict), f"{path}: not a dict"
    hints = get_type_hints(typed)
    assert set(payload) <= set(hints), f"{path}: undeclared {set(payload) - set(hints)}"
    assert typed.__required_keys__ <= set(payload), \
        f"{path}: lacks {typed.__required_keys__ - set(payload)}"
    for key, value in payload.items():
        _fits(value, hints[key], f"{path}.{key}")


@pytest.mark.parametrize("version,message_type", PAIRS)
def test_the_example_fits_its_typeddict(version, message_type):
    payload = example(message_type, version)
    _walk(payload, TABLES[version][message_type], message_type)
    # and so does what the parser makes of it, metadata included
    parsed = pyuftp.parse_message(pyuftp.create_message(message_type, payload, version=version))
    _walk(parsed[1], TABLES[version][message_type], message_type)


def _compare(node: Node, typed: Any, path: str, top: bool) -> None:
    """The TypedDict declares exactly the node's keys, required where the table requires them
    (the metadata, filled in when sending, never)."""
    hints = get_type_hints(typed)
    assert set(hints) == set(node.keys()), (path, set(hints) ^ set(node.keys()))
    required = {a.key for a in node.attrs if a.required} | {c.key for c in node.children if c.min}
    if top:
        required -= METADATA
    assert typed.__required_keys__ == required, path
    for child in node.children:
        hint = hints[child.key]
        if child.many:
            assert get_origin(hint) is list, f"{path}.{child.key} is no list"
            hint = get_args(hint)[0]
        assert is_typeddict(hint), f"{path}.{child.key}"
        _compare(child.node, hint, f"{path}.{child.key}", False)


@pytest.mark.parametrize("version,message_type", PAIRS)
def test_the_typeddict_declares_the_tables_keys(version, message_type):
    _compare(spec(version).messages[message_type], TABLES[version][message_type], message_type,
             True)


def test_the_names():
    assert PAYLOADS["FlexOffer"].__name__ == "FlexOfferPayload"
    assert PAYLOADS["D-Prognosis"].__name__ == "DPrognosisPayload"
    assert PAYLOADS_3_0_0["FlexOffer"].__name__ == "FlexOfferPayload_3_0_0"
    assert PAYLOADS_3_0_0["FlexOrder"].__name__ == "FlexOrderPayload_3_0_0"
    hints = get_type_hints(PAYLOADS["FlexOffer"])
    option = get_args(hints["offer_options"])[0]
    assert option.__name__ == "FlexOfferOfferOption"
    assert get_args(get_type_hints(option)["isps"])[0].__name__ == "FlexOfferOfferOptionIsp"
    # only the types whose shape differs have a 3.0.0 variant
    differ = {t for t in SPECS["3.0.0"].message_types
              if SPECS["3.0.0"].messages[t] != SPECS["3.1.0"].messages[t]}
    assert differ == {"FlexOffer", "FlexOrder"}
    assert {t for t in PAYLOADS if PAYLOADS_3_0_0[t] is not PAYLOADS[t]} == differ
    assert set(PAYLOADS) == set(spec(DEFAULT_VERSION).message_types)


# --- the type checker catches what the types are for -----------------------------------------------

GOOD = '''\
import datetime
from decimal import Decimal
from typing import Any, cast

import pyuftp
from pyuftp.clients import ShapeshifterAgrDsoClient, ShapeshifterDsoAgrClient
from pyuftp.types.enums import Disposition, Result
from pyuftp.types.payloads import (
    FlexOfferPayload, FlexOfferResponsePayload, FlexOrderPayload_3_0_0, FlexRequestIsp,
)

offer: FlexOfferPayload = {
    "sender_domain": "agr.example.com",
    "isp_duration": datetime.timedelta(minutes=15),
    "time_zone": "Europe/Amsterdam",
    "period": datetime.date(2024, 1, 1),
    "congestion_point": "ean.123456789012",
    "expiration_date_time": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    "currency": "EUR",
    "offer_options": [{"option_reference": "A", "price": Decimal("12.50"),
                       "min_activation_factor": 1,
                       "isps": [{"power": 12, "start": 1}]}],
}
accepted = FlexOfferResponsePayload(result=Result.ACCEPTED, flex_offer_message_id="x")
rejected: FlexOfferResponsePayload = {"result": "Rejected", "flex_offer_message_id": "x",
                                      "rejection_reason": "too late"}
isp: FlexRequestIsp = {"min_power": 0, "max_power": 5, "start": 1,
                       "disposition": Disposition.REQUESTED}
isp["disposition"] = "Available"
xml: str = pyuftp.create_message("FlexOffer", offer)
power: int = offer["offer_options"][0]["isps"][0]["power"]
test_xml: str = pyuftp.create_message("TestMessage", {})
literal_xml: str = pyuftp.create_message("FlexOfferResponse", {
    "result": "Accepted", "flex_offer_message_id": "x"})
pyuftp.check_payload("FlexOffer", offer)
kind: pyuftp.MessageType = "TestMessage"  # a type in a variable: its payload is Any
any_xml: str = pyuftp.create_message(kind, cast(Any, {}))


def old_order(order: FlexOrderPayload_3_0_0) -> str:
    return order["flex_offer_message_id"]


async def trade(agr: ShapeshifterAgrDsoClient, dso: ShapeshifterDsoAgrClient) -> str:
    sent = await agr.send_flex_offer(offer)
    answer = await dso.send_flex_offer_response(
        {"result": "Accepted", "flex_offer_message_id": sent.get("message_id", "")})
    return answer["result"]
'''

BAD = '''\
import datetime

from pyuftp.types.payloads import FlexOfferOfferOptionIsp, FlexOfferPayload, FlexOfferResponsePayload

offer: FlexOfferPayload = {
    "isp_durations": datetime.timedelta(minutes=15),
    "time_zone": "Europe/Amsterdam",
    "period": datetime.date(2024, 1, 1),
    "congestion_point": "ean.123456789012",
    "expiration_date_time": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    "currency": "EUR",
    "offer_options": [],
}
isp: FlexOfferOfferOptionIsp = {"power": "12", "start": 1}
answer = FlexOfferResponsePayload(result="Acepted", flex_offer_message_id="x")
'''


#: (#17.2) A literal dict passed straight to create_message / check_payload is checked too:
#: each call below has one fault; the same call without it is in GOOD_CALLS.
CALL = '''\
pyuftp.create_message("FlexOffer", {{
    "{key}": datetime.timedelta(minutes=15),
    "time_zone": "Europe/Amsterdam",
    "period": datetime.date(2024, 1, 1),
    "congestion_point": "ean.123456789012",
    "expiration_date_time": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    "currency": "EUR",
    "offer_options": [{{"option_reference": "A", "price": Decimal("1"),
                       "isps": [{{"power": {power}, "start": 1}}]}}],
}})
pyuftp.check_payload("FlexOfferResponse", {{"result": "{result}", "flex_offer_message_id": "x"}})
'''
HEAD = "import datetime\nfrom decimal import Decimal\n\nimport pyuftp\n\n"
SENDS = '''\


async def go(client: pyuftp.ShapeshifterDsoAgrClient, courier: Courier,
             dso: pyuftp.ShapeshifterDsoService) -> None:
    await client.send("FlexOfferResponse", {{"result": "{result}", "flex_offer_message_id": "x"}})
    await courier.send("TestMessageResponse", {{"{key}": "x"}}, "agr.example.com", "AGR")
    await client.send(client.seal("TestMessage", {{}}))
    await dso.request("agr.example.com", "AGR", "{request}", {{}})
'''
SEND_HEAD = HEAD.replace("import pyuftp\n", "import pyuftp\nfrom pyuftp.sending.delivery import Courier\n")
GOOD_CALLS = (SEND_HEAD + CALL.format(key="isp_duration", power="12", result="Accepted")
              + SENDS.format(result="Accepted", key="conversation_id", request="TestMessage"))
BAD_CALLS = [HEAD + CALL.format(key="isp_durations", power="12", result="Accepted"),
             HEAD + CALL.format(key="isp_duration", power='"12"', result="Accepted"),
             HEAD + CALL.format(key="isp_duration", power="12", result="Acepted"),
             SEND_HEAD + SENDS.format(result="Acepted", key="conversation_id",
                                      request="TestMessage"),
             SEND_HEAD + SENDS.format(result="Accepted", key="conversation",
                                      request="TestMessage"),
             SEND_HEAD + SENDS.format(result="Accepted", key="conversation_id",
                                      request="FlexOffer")]  # a FlexOffer needs its keys


def _mypy(tmp_path: Path, name: str, text: str,
          cache: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    # cwd=ROOT: mypy finds pyuftp there (it cannot see through an editable install's import
    # hook); errors in pyuftp's own modules are test_types.py's business, not this file's.
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--cache-dir", str(cache), str(path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_mypy_accepts_a_well_typed_user_file(tmp_path, mypy_cache):
    result = _mypy(tmp_path, "good.py", GOOD, mypy_cache)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_catches_a_misspelt_key_a_str_power_and_a_misspelt_result(tmp_path, mypy_cache):
    result = _mypy(tmp_path, "bad.py", BAD, mypy_cache)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert 'Extra key "isp_durations" for TypedDict "FlexOfferPayload"' in out, out
    assert 'Missing key "isp_duration" for TypedDict "FlexOfferPayload"' in out, out
    assert 'TypedDict item "power" has type "int"' in out, out
    assert "Acepted" in out and 'TypedDict item "result"' in out, out
    assert "import-not-found" not in out and "pyuftp/" not in out, out


def test_mypy_catches_them_in_a_literal_dict_passed_to_create_message(tmp_path, mypy_cache):
    good = _mypy(tmp_path, "good_calls.py", GOOD_CALLS, mypy_cache)
    assert good.returncode == 0, good.stdout + good.stderr
    for number, (text, line, function) in enumerate(zip(
            BAD_CALLS, (6, 6, 16, 11, 12, 14),
            ("create_message", "create_message", "check_payload", "send", "send", "request"))):
        result = _mypy(tmp_path, f"bad_call_{number}.py", text, mypy_cache)
        assert result.returncode == 1, result.stdout + result.stderr
        errors = [row for row in result.stdout.splitlines() if ": error:" in row]
        assert len(errors) == 1, result.stdout
        assert f"bad_call_{number}.py:{line}: error: No overload variant of \"{function}\"" \
            in errors[0], result.stdout


# --- the enums: members pass through as plain strings ---------------------------------------------

ENUMS = {"role": enums.Role, "result": enums.Result, "disposition": enums.Disposition,
         "settlement_disposition": enums.SettlementDisposition,
         "redispatch": enums.RedispatchBy, "profile_type": enums.ProfileType, "unit": enums.Unit}


def test_every_enumeration_has_its_strenum():
    assert set(ENUMS) == set(CHOICES)
    for choice, enum in ENUMS.items():
        assert [m.value for m in enum] == list(CHOICES[choice])
        assert all(isinstance(m, str) and m == m.value for m in enum)
    assert enums.Result.ACCEPTED == "Accepted" and enums.Unit.KWH == "kWh"
    assert [m.name for m in enums.Role] == list(ROLES)


def _with_members(value: Any, node: Node) -> tuple[Any, int]:
    """A copy of a payload with every enumeration value replaced by its StrEnum member, and
    how many were replaced."""
    out = dict(value)
    count = 0
    for attr in node.attrs:
        if attr.type in ENUMS and attr.key in out:
            out[attr.key] = ENUMS[attr.type](out[attr.key])
            count += 1
    for child in node.children:
        if child.key in out:
            items = out[child.key] if child.many else [out[child.key]]
            replaced = []
            for item in items:
                new, n = _with_members(item, child.node)
                replaced.append(new)
                count += n
            out[child.key] = replaced if child.many else replaced[0]
    return out, count


def _enum_values(value: Any, node: Node) -> list[Any]:
    found = [value[a.key] for a in node.attrs if a.type in ENUMS and a.key in value]
    for child in node.children:
        items = value.get(child.key, []) if child.many else [value.get(child.key)]
        for item in items:
            if item is not None:
                found += _enum_values(item, child.node)
    return found


# the message types whose example has enumeration values: all but metadata-only ones
ENUM_PAIRS = [(v, t) for v, t in PAIRS if _with_members(example(t, v), spec(v).messages[t])[1]]


@pytest.mark.parametrize("fast", [True, False], ids=["speed", "plain"])
@pytest.mark.parametrize("version,message_type", ENUM_PAIRS)
def test_a_member_renders_as_its_plain_string(version, message_type, fast, monkeypatch):
    monkeypatch.setattr(speed, "ENABLED", fast)
    node = spec(version).messages[message_type]
    plain = example(message_type, version)
    members, count = _with_members(plain, node)
    xml = pyuftp.create_message(message_type, members, version=version)
    assert xml == pyuftp.create_message(message_type, plain, version=version)
    # parsed back, the values are plain str, not members (the documented representation)
    parsed = pyuftp.parse_message(xml)[1]
    values = _enum_values(parsed, node)
    assert len(values) == count
    assert all(type(v) is str for v in values), [type(v) for v in values]
    assert parsed == plain


def test_enumerations_in_lists_are_covered():
    # the parametrized test above reaches enums in ISP lists and nested elements too
    covered = {a.type for t in spec().message_types
               for a in _attrs_with_values(spec().messages[t], example(t))}
    assert covered >= set(CHOICES) - {"role"}


def _attrs_with_values(node: Node, value: dict[str, Any]) -> list[Any]:
    found = [a for a in node.attrs if a.type in ENUMS and a.key in value]
    for child in node.children:
        items = value.get(child.key, []) if child.many else [value.get(child.key)]
        for item in items:
            if item is not None:
                found += _attrs_with_values(child.node, item)
    return found


# --- the typed send_* methods -------------------------------------------------------------------


def _senders(cls: type) -> dict[str, Any]:
    return {name: f for name, f in vars(cls).items() if name.startswith("send_")}


@pytest.mark.parametrize("pair", sorted(CLIENTS))
def test_a_client_has_one_typed_send_per_message_type_of_its_route(pair):
    cls = CLIENTS[pair]
    sender, recipient = pair
    assert issubclass(cls, ShapeshifterClient) and cls.__module__ == "pyuftp.clients.roles"
    assert (cls.sender_role, cls.recipient_role) == pair
    assert cls.__name__ == f"Shapeshifter{sender.title()}{recipient.title()}Client"
    assert cls.__doc__ and cls.__doc__.startswith("Client with which ")
    assert f"({sender}) sends to" in cls.__doc__ and cls.__doc__.endswith(f"({recipient}).")
    assert getattr(pyuftp.clients.roles, cls.__name__) is cls and cls.__name__ in pyuftp.clients.roles.__all__
    types_sent = spec().sent_by(sender, recipient)
    assert set(_senders(cls)) == {"send_" + snake_case(t) for t in types_sent}
    assert cls.message_types() == types_sent
    for message_type in types_sent:
        method = getattr(cls, "send_" + snake_case(message_type))
        assert inspect.iscoroutinefunction(method)
        signature = inspect.signature(method, eval_str=True)
        assert list(signature.parameters) == ["self", "message"]
        assert signature.parameters["message"].annotation is PAYLOADS[message_type]
        assert signature.return_annotation is PAYLOADS[message_type]
        assert method.__doc__.startswith(summary(message_type)[:40])
        assert f"Sends a ``{message_type}``; returns the payload as sent." in method.__doc__


def test_every_send_sends_its_own_message_type():
    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str, Any]] = []

        async def send(self, message_type: str, payload: Any) -> dict[str, Any]:
            self.calls.append((message_type, payload))
            return {"sent": message_type}

    async def every_send() -> None:
        for (sender, recipient), cls in CLIENTS.items():
            for message_type in spec().sent_by(sender, recipient):
                recorder = Recorder()
                payload = {"x": 1}
                method = getattr(cls, "send_" + snake_case(message_type))
                assert await method(recorder, payload) == {"sent": message_type}
                assert recorder.calls == [(message_type, payload)]

    asyncio.run(every_send())


def test_client_class_still_finds_them():
    for pair, cls in CLIENTS.items():
        assert pyuftp.clients.client_class(*pair) is cls
    with pytest.raises(ValueError):
        pyuftp.clients.client_class("AGR", "AGR")
    assert {pair for pair in CLIENTS} == set(spec().routes)


def test_the_payload_types_are_plain_dicts_at_run_time():
    offer = PAYLOADS["FlexOffer"](**example("FlexOffer"))
    assert type(offer) is dict
    assert typing.get_type_hints(PAYLOADS["TestMessage"]).keys() == METADATA
