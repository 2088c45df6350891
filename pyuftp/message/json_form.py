"""The JSON form of a message: the payload dict in plain JSON, losslessly, both ways.

    {"message_type": "FlexOffer", "payload": {"version": "3.1.0", "time_stamp": "...", ...}}

The payload keeps the dict's keys and nesting; the values JSON has no type for are written
as the strings the XML would hold:

- date-times (``time_stamp``): ISO 8601 with their UTC offset, ``2024-05-01T09:00:00+02:00``;
- dates (``period``): ``2024-05-01``;
- durations (``isp_duration``): ISO 8601 / xs:duration, ``PT15M``;
- decimals (prices, factors): strings, ``"12.50"``, so that no digit is lost to a float;
- integers, booleans and strings stay JSON numbers, booleans and strings.

Reading a JSON form back (:func:`from_json`) turns those strings into the Python types again
by the message's field table (:mod:`pyuftp.message.catalog`), so XML → dict → JSON → dict
gives the same dict for every message type and version. The payload is then checked like any
other.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .catalog import Node, spec
from .check import message_node
from ..exceptions import MessageError, ValidationError, excerpt, quote
from .fields import FIELD_TYPES, render_decimal, render_duration

__all__ = ["to_jsonable", "to_json", "from_json", "from_jsonable"]

#: field types whose JSON form is a string to convert back (the others are JSON-native)
_FROM_STRING = frozenset({"decimal", "amount", "nonnegative_amount", "factor", "datetime",
                          "date", "duration"})
MAX_DEPTH = 64  # the XML reader's nesting limit is smaller; JSON gets the same care


def to_jsonable(value: Any) -> Any:
    """``value`` (a payload, or anything made of dicts, lists and the payload types) with
    every value JSON lacks written as in the JSON form; bytes as base64."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return render_duration(value)
    if isinstance(value, Decimal):
        return render_decimal(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, str) and type(value) is not str:  # a str enum: its plain value
        return str.__str__(value)
    return value


def to_json(message_type: str, payload: Mapping[str, Any], indent: int | None = 2) -> str:
    """The JSON form of a message, as text."""
    return json.dumps({"message_type": message_type, "payload": to_jsonable(payload)},
                      indent=indent, ensure_ascii=False)


def from_json(text: str | bytes) -> tuple[str, dict[str, Any]]:
    """``(message_type, payload)`` from the JSON form; MessageError (or ValidationError
    naming the field) when it is not one."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise MessageError(f"not JSON: {excerpt(exc)}") from None
    if not isinstance(document, dict) or set(document) != {"message_type", "payload"}:
        raise MessageError('expected {"message_type": ..., "payload": {...}} and nothing else')
    message_type = document["message_type"]
    payload = document["payload"]
    if not isinstance(payload, dict):
        raise ValidationError(f"{excerpt(message_type, 40)}", "payload must be a JSON object")
    return message_type, from_jsonable(message_type, payload)


def from_jsonable(message_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload dict of a JSON-form ``payload`` of ``message_type`` (the version the
    payload names, else the default): strings of date-time, date, duration and decimal
    fields become those types again. Unknown keys are kept as they are (the check that
    follows names them)."""
    version = payload.get("version")
    node = message_node(message_type, spec(version if isinstance(version, str) else None),
                        received=True)
    return _convert(node, payload, message_type, 0)


def _convert(node: Node, data: Mapping[str, Any], path: str, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise ValidationError(path, f"nested more than {MAX_DEPTH} levels deep")
    types = {a.key: a.type for a in node.attrs}
    children = {c.key: c for c in node.children}
    out: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{path}.{key}"
        if key in types and types[key] in _FROM_STRING and isinstance(value, str):
            try:
                out[key] = FIELD_TYPES[types[key]].parse(value)
            except (ValueError, ArithmeticError) as exc:
                reason = excerpt(exc)
                if quote(value) not in reason:
                    reason = f"{quote(value)}: {reason}"
                raise ValidationError(where, reason) from None
        elif key in children and isinstance(value, list) and children[key].many:
            out[key] = [_convert(children[key].node, item, f"{where}[{i}]", depth + 1)
                        if isinstance(item, Mapping) else item for i, item in enumerate(value)]
        elif key in children and isinstance(value, Mapping):
            out[key] = _convert(children[key].node, value, where, depth + 1)
        else:
            out[key] = value
    return out
