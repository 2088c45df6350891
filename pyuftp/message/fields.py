"""The value types of UFTP fields: how each is checked in a dict, written to XML and read back.

Each type in the field-type table (:mod:`pyuftp.message.catalog`) names one :class:`FieldType`
here. ``check`` returns ``None`` for a good value or a reason a user can act on; ``parse`` turns
the (schema-valid) attribute text into the Python value; ``xsd`` says how the packaged schema
declares it.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Callable

from markupsafe import Markup, escape

from ..exceptions import quote


@dataclass(frozen=True)
class FieldType:
    name: str
    description: str  # completes "'abc' is not ..."
    check: Callable[[Any], str | None]
    parse: Callable[[str], Any]
    #: how pyuftp's schema declares it: a built-in XSD type name, or the body of a named
    #: simple type (``<xs:restriction ...>``) that tools/make_schemas.py writes out
    xsd: str


# --- rendering (Jinja2 filters; templates apply them only to present, checked values) ---------


def render_datetime(value: _dt.datetime) -> str:
    if value.utcoffset() is None:
        raise ValueError(f"naive datetime {quote(value)}: UFTP date-times need a UTC offset")
    return value.isoformat()


def render_date(value: _dt.date) -> str:
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
    # ints too: format(12, "f") would write 12.000000
    return format(value, "f") if isinstance(value, Decimal) else str(value)


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
        return None if match(value) else f"{quote(value)} is not {what}"

    return check


def _choice(*values: str) -> Callable[[Any], str | None]:
    allowed = frozenset(values)

    def check(value: Any) -> str | None:
        if isinstance(value, str) and value in allowed:
            return None
        return f"{quote(value)} is not one of {', '.join(values)}"

    return check


def _xml_attribute(text: str) -> str:
    return '"' + text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;") + '"'


# What XML 1.0 cannot carry at all, even as a character reference.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _string(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected a str, got {type(value).__name__}"
    bad = _NOT_XML.search(value)
    if bad:
        return f"{quote(value)} contains {bad.group()!r}, which XML cannot carry"
    if value != value.strip():
        return f"{quote(value)} has surrounding white space, which receivers trim; strip it"
    return None


def _integer(low: int, high: int, what: str = "an integer") -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value.__class__ is int or (isinstance(value, int) and not isinstance(value, bool)):
            if low <= value <= high:
                return None
            if value < low <= 1:  # zero or negative where UFTP counts from 0 or 1
                return f"{quote(value)} is not {what}"
            return f"{quote(value)} is out of range ({low} to {high})"
        return f"{quote(value)} is not {what}"

    return check


def _decimal(digits: int | None = None, low: str | None = None, high: str | None = None,
             what: str = "a decimal number", total: int = 30) -> Callable[[Any], str | None]:
    lowest = None if low is None else Decimal(low)
    highest = None if high is None else Decimal(high)

    def check(value: Any) -> str | None:
        if value.__class__ is Decimal:
            number = value
        elif isinstance(value, float):
            # Decided once for all decimals: a float is refused, not converted, because it
            # is rarely the number meant (0.1 + 0.2 == 0.30000000000000004).
            return (f"{quote(value)} is a float; use decimal.Decimal (e.g. Decimal('12.50')), "
                    "as floats are inexact")
        elif isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            return f"{quote(value)} is not {what}"
        else:
            number = Decimal(value)
        if not number.is_finite():
            return f"{quote(value)} is not {what}"
        # Decimal places: the written exponent says enough unless it is below the bound
        # (normalize() only raises it: trailing zeros, 12.5000); normalizing every value
        # was most of this check, and overflowed on a huge one instead of saying it is so.
        written = number.as_tuple().exponent if digits is not None and number else 0
        if digits is not None and isinstance(written, int) and written < -digits:
            exponent = number.normalize().as_tuple().exponent
            if isinstance(exponent, int) and exponent < -digits:
                return f"{quote(value)} has more than {digits} decimal places"
        if (lowest is not None and number < lowest) or (highest is not None and number > highest):
            return f"{quote(value)} is not {what}"
        if number.adjusted() >= total - (digits or 0):
            return (f"{quote(value)} is too large "
                    f"(at most {total - (digits or 0)} digits before the point)")
        return None

    return check


def _datetime(value: Any) -> str | None:
    if not isinstance(value, _dt.datetime):
        return f"{quote(value)} is not a datetime.datetime"
    if value.utcoffset() is None:
        return f"{quote(value)} is a naive datetime; give it a timezone (e.g. tzinfo=timezone.utc)"
    return None


def _date(value: Any) -> str | None:
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        return None
    return f"{quote(value)} is not a datetime.date"


_ONE_DAY = _dt.timedelta(days=1)


def _isp_duration(value: Any) -> str | None:
    # ISP-Duration is the only duration in UFTP: the length of an ISP, minutes in practice
    if not isinstance(value, _dt.timedelta):
        return f"{quote(value)} is not a datetime.timedelta"
    if not _dt.timedelta(0) < value <= _ONE_DAY:
        return f"{quote(value)} is not an ISP duration (more than 0, at most a day)"
    return None


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{quote(value)} is not a bool"


# --- parsing -------------------------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_datetime(text: str) -> _dt.datetime:
    text = _FRACTION.sub(r"\1", text.strip())  # Python keeps microseconds; peers may send more
    try:
        value = _dt.datetime.fromisoformat(text)
    except ValueError:  # valid xs:dateTime that Python has no value for, e.g. T24:00:00
        raise ValueError(f"{quote(text)} is not a date-time Python can hold "
                         "(write T24:00:00 as T00:00:00 of the next day)") from None
    if value.utcoffset() is None:
        raise ValueError(f"{quote(text)} has no UTC offset")
    return value


# A message carries few distinct dates and durations (its period, its ISP length), and the
# values are immutable: each text is converted once per process.
_DATE = re.compile(r"(-?[0-9]{4,}-[0-9]{2}-[0-9]{2})(?:Z|[+-][0-9]{2}:[0-9]{2})?")


@lru_cache(maxsize=1024)
def parse_date(text: str) -> _dt.date:
    # xs:date may carry a zone suffix that a calendar day cannot keep
    match = _DATE.fullmatch(text.strip())
    try:
        return _dt.date.fromisoformat(match.group(1) if match else text.strip())
    except ValueError:  # valid xs:date that Python has no value for, e.g. year 0 or -1
        raise ValueError(f"{quote(text.strip())} is not a date Python can hold") from None


_DURATION = re.compile(
    r"(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)


@lru_cache(maxsize=1024)
def parse_duration(text: str) -> _dt.timedelta:
    match = _DURATION.fullmatch(text.strip())
    if not match or text.strip() in ("P", "-P") or text.strip().endswith("T"):
        raise ValueError(f"{quote(text)} is not an xs:duration")
    sign, years, months, days, hours, minutes, seconds = match.groups()
    if int(years or 0) or int(months or 0):
        raise ValueError(f"{quote(text)} has years or months, which have no fixed length")
    try:
        value = _dt.timedelta(
            days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0),
            seconds=float(Decimal(seconds or 0)),
        )
    except (OverflowError, ValueError):  # P1000000000D: beyond what timedelta holds
        raise ValueError(
            f"{quote(text)} is not an ISP duration (more than 0, at most a day)") from None
    value = -value if sign else value
    reason = _isp_duration(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def parse_boolean(text: str) -> bool:
    text = text.strip()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"{quote(text)} is not a boolean")


def parse_decimal(text: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{quote(text)} is not a decimal") from None


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
    "ean_java": ("[Ee][0-9]{18}", "an EAN of the java dialect (E followed by 18 digits)"),
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

# Bounds beyond the official schemas' (which allow unbounded xs:integer and xs:decimal): no
# grid has 2**63 W, and a 4,000-digit price only costs the receiver CPU time.
LONG = (-(2**63), 2**63 - 1)
ISP_NUMBER = (1, 2**31 - 1)
AMOUNT_DIGITS = 22  # 18 before the decimal point, 4 after
_DECIMAL = ('<xs:restriction base="xs:decimal"><xs:totalDigits value="{total}"/>{more}'
            '</xs:restriction>')
_INTEGER = ('<xs:restriction base="{base}"><xs:minInclusive value="{low}"/>'
            '<xs:maxInclusive value="{high}"/></xs:restriction>')


def _int_type(name: str, what: str, low: int, high: int, base: str = "xs:integer") -> FieldType:
    return FieldType(name, what, _integer(low, high, what), int,
                     _INTEGER.format(base=base, low=low, high=high))


FIELD_TYPES: dict[str, FieldType] = {
    "string": FieldType("string", "a string", _string, str.strip, "xs:string"),
    "integer": _int_type("integer", "an integer", *LONG),
    "nonnegative": _int_type("nonnegative", "an integer of 0 or more", 0, LONG[1]),
    "positive": _int_type("positive", "a positive integer", *ISP_NUMBER,
                          base="xs:positiveInteger"),
    "long": _int_type("long", "an integer (64-bit)", *LONG, base="xs:long"),
    "decimal": FieldType("decimal", "a decimal number", _decimal(), parse_decimal,
                         _DECIMAL.format(total=30, more="")),
    "amount": FieldType("amount", "an amount (at most 4 decimal places)",
                        _decimal(4, what="an amount", total=AMOUNT_DIGITS), parse_decimal,
                        _DECIMAL.format(total=AMOUNT_DIGITS,
                                        more='<xs:fractionDigits value="4"/>')),
    "nonnegative_amount": FieldType(
        "nonnegative_amount", "an amount of 0 or more (at most 4 decimal places)",
        _decimal(4, "0", what="an amount of 0 or more", total=AMOUNT_DIGITS), parse_decimal,
        _DECIMAL.format(total=AMOUNT_DIGITS,
                        more='<xs:fractionDigits value="4"/><xs:minInclusive value="0"/>')),
    "factor": FieldType("factor", "an activation factor between 0.01 and 1.00",
                        _decimal(2, "0.01", "1.00", "an activation factor between 0.01 and 1.00"),
                        parse_decimal,
                        '<xs:restriction base="xs:decimal"><xs:fractionDigits value="2"/>'
                        '<xs:minInclusive value="0.01"/><xs:maxInclusive value="1.00"/>'
                        '</xs:restriction>'),
    "datetime": FieldType("datetime", "a date-time with UTC offset", _datetime, parse_datetime,
                          "xs:dateTime"),
    "date": FieldType("date", "a date", _date, parse_date, "xs:date"),
    "duration": FieldType("duration", "an ISP duration (more than 0, at most a day)",
                          _isp_duration, parse_duration,
                          '<xs:restriction base="xs:duration"><xs:minExclusive value="PT0S"/>'
                          '<xs:maxInclusive value="P1D"/></xs:restriction>'),
    "boolean": FieldType("boolean", "a boolean", _boolean, parse_boolean, "xs:boolean"),
}
for _name, (_regex, _what) in PATTERNS.items():
    FIELD_TYPES[_name] = FieldType(_name, _what, _pattern(_regex, _what), str.strip,
                                   '<xs:restriction base="xs:string"><xs:pattern value='
                                   f'{_xml_attribute(_regex)}/></xs:restriction>')
FIELD_TYPES["base64"] = replace(FIELD_TYPES["base64"],
                                xsd='<xs:restriction base="xs:base64Binary"/>')
for _name, _values in CHOICES.items():
    _what = "one of " + ", ".join(_values)
    FIELD_TYPES[_name] = FieldType(
        _name, _what, _choice(*_values), str.strip,
        '<xs:restriction base="xs:string">'
        + "".join(f'<xs:enumeration value="{v}"/>' for v in _values) + "</xs:restriction>")
