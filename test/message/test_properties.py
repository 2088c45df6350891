"""Property-based round trips: payloads generated from the field-type table itself."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyuftp
from pyuftp.message.catalog import MESSAGES, Node
from pyuftp.message.fields import CHOICES

from conftest import assert_officially_valid

BIG = ["FlexOffer", "FlexRequest", "FlexOrder", "D-Prognosis", "FlexSettlement", "Metering"]

ZONES = st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=1)),
                         dt.timezone(dt.timedelta(hours=-5, minutes=-30))])
_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
    | st.sampled_from("\t\n\r"),
    max_size=20,
).map(str.strip)

SCALARS = {
    "string": _TEXT,
    "integer": st.integers(-(10**12), 10**12),
    "positive": st.integers(1, 10**6),
    "nonnegative": st.integers(0, 10**12),
    "long": st.integers(-(2**63), 2**63 - 1),
    "decimal": st.decimals(allow_nan=False, allow_infinity=False, places=6,
                           min_value=-(10**9), max_value=10**9),
    "amount": st.decimals(allow_nan=False, allow_infinity=False, places=4,
                          min_value=-(10**9), max_value=10**9),
    "nonnegative_amount": st.decimals(allow_nan=False, allow_infinity=False, places=4,
                                      min_value=0, max_value=10**9),
    "factor": st.integers(1, 100).map(lambda n: Decimal(n) / 100),
    "datetime": st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1),
                             timezones=ZONES),
    "date": st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 1, 1)),
    "duration": st.sampled_from([dt.timedelta(minutes=5), dt.timedelta(minutes=15),
                                 dt.timedelta(minutes=30), dt.timedelta(hours=1)]),
    "boolean": st.booleans(),
    "version": st.just("3.1.0"),
    "uuid": st.uuids().map(str),
    "domain": st.from_regex(r"[a-z0-9]{1,10}(-[a-z0-9]{1,5})?\.[a-z]{2,6}", fullmatch=True),
    "entity": st.one_of(
        st.from_regex(r"ean\.[0-9]{12,34}", fullmatch=True),
        st.from_regex(r"ea1\.20[0-9]{2}-[01][0-9]\.[a-z]{1,10}\.[a-z]{2,4}:[A-Za-z0-9]{1,12}",
                      fullmatch=True),
    ),
    "ean": st.from_regex(r"E[0-9]{16}", fullmatch=True),
    "currency": st.sampled_from(["EUR", "GBP", "USD", "NOK"]),
    "timezone": st.sampled_from(["Europe/Amsterdam", "Europe/Berlin", "America/New_York"]),
}
for _name, _values in CHOICES.items():
    SCALARS[_name] = st.sampled_from(_values)


def payloads(node: Node, depth: int = 0) -> st.SearchStrategy[dict]:
    """Valid dicts for ``node``: required fields always, optional ones sometimes."""
    required, optional = {}, {}
    for attr in node.attrs:
        (required if attr.required else optional)[attr.key] = SCALARS[attr.type]
    for child in node.children:
        items = payloads(child.node, depth + 1)
        high = 1 if child.max == 1 else (6 if depth == 0 else 4)
        if child.many:
            value = st.lists(items, min_size=max(child.min, 1), max_size=high)
        else:
            value = items
        (required if child.min else optional)[child.key] = value
    return st.fixed_dictionaries(required, optional=optional)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), message_type=st.sampled_from(BIG))
def test_generated_big_payloads_round_trip(data, message_type, official_schema):
    _round_trip(data, message_type, official_schema)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), message_type=st.sampled_from(sorted(MESSAGES["3.1.0"])))
def test_generated_payloads_of_every_type_round_trip(data, message_type, official_schema):
    _round_trip(data, message_type, official_schema)


def _round_trip(data, message_type, official_schema):
    payload = data.draw(payloads(MESSAGES["3.1.0"][message_type]), label="payload")
    xml = pyuftp.create_message(message_type, payload, rules=False)  # shapes, not business
    assert_officially_valid(official_schema("3.1.0"), xml)
    parsed_type, parsed = pyuftp.parse_message(xml)
    assert parsed_type == message_type
    assert parsed == payload
