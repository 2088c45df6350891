"""The value types of UFTP fields: how each is checked in a dict, written to XML and read back.

Each type in the field-type table (:mod:`pyuftp.catalog`) names one :class:`FieldType` here.
``check`` returns ``None`` for a good value or a reason a user can act on; ``parse`` turns the
(schema-valid) attribute text into the Python value; ``xsd`` says how the packaged schema
declares it.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Callable

from markupsafe import Markup, escape


@dataclass(frozen=True)
class FieldType:
    name: str
    description: str  # completes "'abc' is not ..."
    check: Callable[[Any], str | None]
    parse: Callable[[str], Any]
    xsd: str  # an XSD type name, or a restriction body (see tools/make_schemas.py)


# --- rendering (Jinja2 filters; templates apply them only to present, checked values) ---------


def render_datetime(value: Any) -> str:
    if value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: UFTP date-times need a UTC offset")
    return value.isoformat()


def render_date(value: Any) -> str:
    return value.isoformat()


@lru_cache(maxsize=1024)  # the ISP length of every message: a few distinct values
def render_duration(value: Any) -> str:
    total = Decimal(value.days * 86400 + value.seconds) + Decimal(value.microseconds) / 10**6
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if seconds or not (days or clock):
        clock += f"{format(seconds.normalize(), 'f')}S"
    return text + ("T" + clock if clock else "")


def render_decimal(value: Any) -> str:
    if isinstance(value, float):
        value = Decimal(repr(value))
    return format(value, "f")


def render_boolean(value: Any) -> str:
    return "true" if value else "false"


_CONTROL_REFS = {"\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}


def render_text(value: Any) -> Any:
    """Escape free text for an attribute, keeping tabs and line breaks.

    An XML parser turns a raw tab or line break inside an attribute into a space; written as
    character references they survive the trip.
    """
    text = escape(value)
    if "\t" in text or "\n" in text or "\r" in text:
        text = Markup(re.sub("[\t\n\r]", lambda m: _CONTROL_REFS[m.group()], str(text)))
    return text


FILTERS = {
    "datetime": render_datetime,
    "date": render_date,
    "duration": render_duration,
    "decimal": render_decimal,
    "boolean": render_boolean,
    "text": render_text,
}

# --- checking ------------------------------------------------------------------------------------


def _pattern(regex: str, what: str) -> Callable[[Any], str | None]:
    match = re.compile(regex).fullmatch

    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"expected a str ({what}), got {type(value).__name__}"
        return None if match(value) else f"{value!r} is not {what}"

    return check


def _choice(*values: str) -> Callable[[Any], str | None]:
    allowed = frozenset(values)

    def check(value: Any) -> str | None:
        if isinstance(value, str) and value in allowed:
            return None
        return f"{value!r} is not one of {', '.join(values)}"

    return check


# What XML 1.0 cannot carry at all, even as a character reference.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _string(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected a str, got {type(value).__name__}"
    bad = _NOT_XML.search(value)
    if bad:
        return f"{value!r} contains {bad.group()!r}, which XML cannot carry"
    if value != value.strip():
        return f"{value!r} has surrounding white space, which receivers trim; strip it"
    return None


def _integer(low: int | None = None, high: int | None = None, what: str = "an integer"):
    def check(value: Any) -> str | None:
        if value.__class__ is int:  # the common case first: ISP lists are long
            if (low is None or value >= low) and (high is None or value <= high):
                return None
        elif isinstance(value, int) and not isinstance(value, bool):
            if (low is None or value >= low) and (high is None or value <= high):
                return None
        return f"{value!r} is not {what}"

    return check


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
    return None


def _decimal(digits: int | None = None, low: str | None = None, high: str | None = None,
             what: str = "a decimal number"):
    def check(value: Any) -> str | None:
        number = _as_decimal(value)
        if number is None:
            return f"{value!r} is not {what}"
        if digits is not None and number and number.normalize().as_tuple().exponent < -digits:
            return f"{value!r} has more than {digits} decimal places"
        if (low is not None and number < Decimal(low)) or (high is not None and number > Decimal(high)):
            return f"{value!r} is not {what}"
        return None

    return check


def _datetime(value: Any) -> str | None:
    if not isinstance(value, _dt.datetime):
        return f"{value!r} is not a datetime.datetime"
    if value.utcoffset() is None:
        return f"{value!r} is a naive datetime; give it a timezone (e.g. tzinfo=timezone.utc)"
    return None


def _date(value: Any) -> str | None:
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        return None
    return f"{value!r} is not a datetime.date"


def _timedelta(value: Any) -> str | None:
    return None if isinstance(value, _dt.timedelta) else f"{value!r} is not a datetime.timedelta"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{value!r} is not a bool"


# --- parsing -------------------------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_datetime(text: str) -> _dt.datetime:
    text = _FRACTION.sub(r"\1", text.strip())  # Python keeps microseconds; peers may send more
    value = _dt.datetime.fromisoformat(text)
    if value.utcoffset() is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return value


# A message carries few distinct dates and durations (its period, its ISP length), and the
# values are immutable: each text is converted once per process.
@lru_cache(maxsize=1024)
def parse_date(text: str) -> _dt.date:
    # xs:date may carry a zone suffix that a calendar day cannot keep
    return _dt.date.fromisoformat(text.strip()[:10])


_DURATION = re.compile(
    r"(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)


@lru_cache(maxsize=1024)
def parse_duration(text: str) -> _dt.timedelta:
    match = _DURATION.fullmatch(text.strip())
    if not match or text.strip() in ("P", "-P") or text.strip().endswith("T"):
        raise ValueError(f"{text!r} is not an xs:duration")
    sign, years, months, days, hours, minutes, seconds = match.groups()
    if int(years or 0) or int(months or 0):
        raise ValueError(f"{text!r} has years or months, which have no fixed length")
    value = _dt.timedelta(
        days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0),
        seconds=float(Decimal(seconds or 0)),
    )
    return -value if sign else value


def parse_boolean(text: str) -> bool:
    text = text.strip()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"{text!r} is not a boolean")


def parse_decimal(text: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal") from None


# --- the table -----------------------------------------------------------------------------------

_UUID = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_DOMAIN = "([a-z0-9]+(-[a-z0-9]+)*\\.)+[a-z]{2,}"
_ENTITY = "(ea1\\.[0-9]{4}-[0-9]{2}\\..{1,244}:.{1,244}|ean\\.[0-9]{12,34})"
_TIMEZONE = "(Africa|America|Australia|Europe|Pacific)/[a-zA-Z0-9_/]{3,}"

PATTERNS = {
    "version": ("\\d+\\.\\d+\\.\\d+", "a version like 3.1.0"),
    "uuid": (_UUID, "a UUID"),
    "domain": (_DOMAIN, "an internet domain (lower case, e.g. dso.example.com)"),
    "entity": (_ENTITY, "an entity address (ean.<12-34 digits> or ea1.<yyyy-mm>.<name>:<id>)"),
    "ean": ("[Ee][0-9]{16}", "an EAN (E followed by 16 digits)"),
    "ean_received": ("[Ee][0-9]{16,18}", "an EAN (E followed by 16 to 18 digits)"),
    "currency": ("[A-Z]{3}", "an ISO 4217 currency code (e.g. EUR)"),
    "timezone": (_TIMEZONE, "a time zone name (e.g. Europe/Amsterdam)"),
    "base64": ("[A-Za-z0-9+/=\\s]*", "base64 text"),
}

CHOICES = {
    "role": ("AGR", "CRO", "DSO"),
    "result": ("Accepted", "Rejected"),
    "disposition": ("Available", "Requested"),
    "settlement_disposition": ("Accepted", "Disputed"),
    "redispatch": ("AGR", "DSO"),
    "profile_type": ("Power", "ImportEnergy", "ExportEnergy", "ImportMeterReading",
                     "ExportMeterReading"),
    "unit": ("kW", "kWh"),
}

FIELD_TYPES: dict[str, FieldType] = {
    "string": FieldType("string", "a string", _string, str.strip, "xs:string"),
    "integer": FieldType("integer", "an integer", _integer(), int, "xs:integer"),
    "positive": FieldType("positive", "a positive integer", _integer(1, what="a positive integer"),
                          int, "xs:positiveInteger"),
    "long": FieldType("long", "an integer (64-bit)",
                      _integer(-(2**63), 2**63 - 1, "an integer (64-bit)"), int, "xs:long"),
    "decimal": FieldType("decimal", "a decimal number", _decimal(), parse_decimal, "xs:decimal"),
    "amount": FieldType("amount", "an amount (at most 4 decimal places)",
                        _decimal(4, what="an amount"), parse_decimal, "amount"),
    "factor": FieldType("factor", "an activation factor between 0.01 and 1.00",
                        _decimal(2, "0.01", "1.00", "an activation factor between 0.01 and 1.00"),
                        parse_decimal, "factor"),
    "datetime": FieldType("datetime", "a date-time with UTC offset", _datetime, parse_datetime,
                          "xs:dateTime"),
    "date": FieldType("date", "a date", _date, parse_date, "xs:date"),
    "duration": FieldType("duration", "a duration", _timedelta, parse_duration, "xs:duration"),
    "boolean": FieldType("boolean", "a boolean", _boolean, parse_boolean, "xs:boolean"),
}
for _name, (_regex, _what) in PATTERNS.items():
    FIELD_TYPES[_name] = FieldType(_name, _what, _pattern(_regex, _what), str.strip, _name)
for _name, _values in CHOICES.items():
    _what = "one of " + ", ".join(_values)
    FIELD_TYPES[_name] = FieldType(_name, _what, _choice(*_values), str.strip, _name)
