"""Fuzz: whatever a handler returns or raises, the response builders give a response that
passes pyuftp's own check and renders, within a time bound per example (#16.3, the habit).

Fixed seed (derandomized), a short budget, a deadline: it runs in CI like any other test.
"""
from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyuftp.message.catalog import spec
from pyuftp.signing.envelope import Received
from pyuftp.exceptions import Rejected
from pyuftp.message.examples import example
from pyuftp.core.exchange import Exchange
from pyuftp.message.codec import check_payload, create_message

VERSIONS = ("3.0.0", "3.1.0")
REQUESTS = [(v, t) for v in VERSIONS for t in spec(v).message_types
            if spec(v).response_type(t)]
#: Seconds one example may take (build, check, render), whatever its values.
BOUND = 1.0
# Types whose responses need parts no rejection can honestly fill (see docs/delivery.rst).
NEEDS_DATA = {"AGRPortfolioQuery"}

text = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["\u2028", "\x85", "\n\r\x0b\x0c\x1c\x1d\x1e\u2029", "\ud800", "\x00",
                     "Accepted", "Rejected", "Disputed", "x" * 200_000]),
)
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80), text,
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([dt.datetime.min, dt.datetime.max,
                     dt.datetime.max.replace(tzinfo=dt.timezone.utc),
                     dt.datetime.min.replace(tzinfo=dt.timezone.utc),
                     dt.date.min, dt.date.max, dt.date(9999, 12, 31), dt.date(1, 1, 1),
                     dt.timedelta(days=999_999_999), dt.timedelta(0), Decimal("1E+999999"),
                     float("nan"), b"bytes", object()]),
)


def value_for(keys: list[str]) -> st.SearchStrategy[Any]:
    """Dicts that use a response's own field names (and others) with hostile values."""
    values = st.recursive(scalar, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(keys) | text, inner,
                                                     max_size=4)), max_leaves=12)
    return st.dictionaries(st.sampled_from(keys) | text, values, max_size=6)


def outcomes(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), value_for(keys), scalar, st.lists(scalar, max_size=3),
        st.builds(lambda r, f: Rejected(r, **{k: v for k, v in f.items()
                                               if isinstance(k, str)}), text, value_for(keys)),
        st.sampled_from([RuntimeError("x\u2028y"), OverflowError(), KeyError("k"),
                         RecursionError(), MemoryError()]),
    )


def received(version: str, message_type: str) -> Received:
    payload = example(message_type, version)
    return Received(message_type, payload, payload["sender_domain"], "AGR", b"<x/>")


def _assert_answer(version: str, message_type: str, answer: Any) -> None:
    if answer is None:
        assert message_type in NEEDS_DATA
        return
    answer_type, payload = answer
    assert answer_type == spec(version).response_type(message_type)
    full = dict(payload, time_stamp=dt.datetime.now(dt.timezone.utc))
    check_payload(answer_type, full, version)
    create_message(answer_type, full, version)
    reason = payload.get("rejection_reason")
    assert reason is None or len(reason) <= 1000


@pytest.mark.parametrize("version,message_type", REQUESTS)
def test_any_handler_outcome_gives_a_valid_response(version, message_type):
    request = received(version, message_type)
    exchange = Exchange(request.payload["recipient_domain"], "DSO", version=version)
    keys = spec(version).messages[spec(version).response_type(message_type)].keys()

    @settings(derandomize=True, max_examples=25, deadline=2000, database=None,
              suppress_health_check=list(HealthCheck))
    @given(result=outcomes(keys), handled=st.booleans())
    def run(result: Any, handled: bool) -> None:
        began = time.perf_counter()
        fields = exchange.outcome(request, result, handled=handled)
        assert fields is not None
        _assert_answer(version, message_type, exchange.response(request, fields))
        assert time.perf_counter() - began < BOUND

    run()


@pytest.mark.parametrize("version,message_type", REQUESTS)
def test_any_fields_and_problems_give_a_valid_response(version, message_type):
    request = received(version, message_type)
    exchange = Exchange(request.payload["recipient_domain"], "DSO", version=version)
    keys = spec(version).messages[spec(version).response_type(message_type)].keys()

    @settings(derandomize=True, max_examples=25, deadline=2000, database=None,
              suppress_health_check=list(HealthCheck))
    @given(fields=value_for(keys), problems=st.lists(text, min_size=1, max_size=5))
    def run(fields: dict[Any, Any], problems: list[str]) -> None:
        began = time.perf_counter()
        _assert_answer(version, message_type, exchange.response(request, fields))
        _assert_answer(version, message_type,
                       exchange.response(request, exchange.rejection(problems)))
        assert time.perf_counter() - began < BOUND

    run()
