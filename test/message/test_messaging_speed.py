"""pyuftp.message.speed changes how fast, never what: checker and reader, fast against plain.

(The renderer's byte-for-byte comparison is test_rendering_is_plain_jinja2_output in
test_messaging.py.) Each case runs the same input with the switch on and off and compares
the outcome: the same dict, or the same exception with the same text.
"""
from __future__ import annotations

import copy
import datetime as dt
import enum
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyuftp
from pyuftp.message import speed
from pyuftp.message.catalog import MESSAGE_TYPES, MESSAGES, VERSIONS
from pyuftp.message.examples import example, flex_offer_96

from test_properties import payloads  # the payload strategy driven by the table

ROOT = Path(__file__).resolve().parents[2]
CASES = [(t, v) for v in VERSIONS for t in MESSAGE_TYPES]


def both_ways(monkeypatch, call, *args):
    """``call(*args)`` with speed on and with speed off: (outcome on, outcome off), each the
    result or (exception type, text)."""
    outcomes = []
    for enabled in (True, False):
        monkeypatch.setattr(speed, "ENABLED", enabled)
        try:
            outcomes.append(("ok", call(*args)))
        except pyuftp.PyUFTPError as exc:
            outcomes.append((type(exc), str(exc)))
    return outcomes[0], outcomes[1]


def test_the_switch_is_read_from_the_environment_at_import():
    code = "import pyuftp.message.speed as s; print(s.ENABLED)"
    for value, expected in (("1", "False"), ("", "True"), ("0", "True")):
        env = {**os.environ, "PYUFTP_PLAIN": value}
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=True)
        assert done.stdout.strip() == expected, value


def test_plain_messages_round_trip_in_a_plain_process():
    # The whole way, in a process that never turns speed on.
    code = ("import pyuftp; from pyuftp.message.examples import flex_offer_96 as f; import pyuftp.message.speed as s;"
            "assert not s.ENABLED; p = f(); assert pyuftp.parse_message("
            "pyuftp.create_message('FlexOffer', p)) == ('FlexOffer', p); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYUFTP_PLAIN": "1"},
                          cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


# --- the checker ----------------------------------------------------------------------------

BAD_VALUES = [
    None, "abc", "", " padded ", "1000", 0, -1, 1, 2**31, 2**63, -(2**63) - 1, True, 1.5,
    Decimal("NaN"), Decimal("1.23456"), Decimal("-1"), Decimal("0.001"), [], {}, [{}], ({},),
    dt.date(2026, 1, 1), dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    dt.timedelta(0), dt.timedelta(minutes=15), "x\x00y",
]


def _paths(value, path=()):
    """Every place in a payload: dict keys and list indexes, depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path + (key,)
            yield from _paths(item, path + (key,))
    elif isinstance(value, list):  # the first two items and the last
        for index in sorted({0, 1, len(value) - 1} & set(range(len(value)))):
            yield path + (index,)
            yield from _paths(value[index], path + (index,))


def _at(payload, path):
    target = payload
    for step in path[:-1]:
        target = target[step]
    return target, path[-1]


def _bad_payloads(payload):
    """The payload changed in one place at a time: every value replaced by each bad value,
    removed, and every dict given an unknown or misspelled key."""
    for path in list(_paths(payload)):
        for value in BAD_VALUES:
            changed = copy.deepcopy(payload)
            target, step = _at(changed, path)
            target[step] = value
            yield changed
        changed = copy.deepcopy(payload)
        target, step = _at(changed, path)
        if isinstance(target, dict):
            del target[step]
            yield changed
            for key in ("colour", f"{step}s", str(step).upper()):
                changed = copy.deepcopy(payload)
                _at(changed, path)[0][key] = 1
                yield changed


@pytest.mark.parametrize("message_type,version", CASES)
def test_checker_fast_and_plain_agree_on_bad_payloads(message_type, version, monkeypatch):
    checked = 0
    for payload in _bad_payloads(example(message_type, version)):
        fast, plain = both_ways(monkeypatch, pyuftp.check_payload, message_type, payload, version)
        assert fast == plain, payload
        checked += 1
    assert checked > 50


LIST_ITEM_CHANGES = [
    ("power", "abc"), ("power", True), ("power", 2**63), ("power", -(2**63)), ("power", None),
    ("start", 0), ("start", 2**31), ("start", 2**31 - 1), ("start", -5), ("duration", 0),
    ("duration", 7), ("duration", "7"), ("pwer", 1), ("isp", {}), (5, 5),
]


@pytest.mark.parametrize("index", [0, 1, 50, 95])
@pytest.mark.parametrize("key,value", LIST_ITEM_CHANGES)
def test_checker_fast_and_plain_agree_on_long_lists(index, key, value, monkeypatch):
    payload = flex_offer_96()
    payload["offer_options"][0]["isps"][index][key] = value
    fast, plain = both_ways(monkeypatch, pyuftp.check_payload, "FlexOffer", payload, "3.1.0")
    assert fast == plain


@pytest.mark.parametrize("item", [17, None, "isp", [("power", 1)], ()])
def test_checker_fast_and_plain_agree_on_items_that_are_not_dicts(item, monkeypatch):
    payload = flex_offer_96()
    payload["offer_options"][0]["isps"][40] = item
    fast, plain = both_ways(monkeypatch, pyuftp.check_payload, "FlexOffer", payload, "3.1.0")
    assert fast == plain and plain[0] is pyuftp.ValidationError


def test_checker_fast_and_plain_agree_on_int_and_dict_subclasses(monkeypatch):
    class Level(enum.IntEnum):
        LOW = 5

    class Item(dict):
        pass

    payload = flex_offer_96()
    isps = payload["offer_options"][0]["isps"]
    isps[3]["power"] = Level.LOW
    isps[4] = Item(isps[4])
    isps[5]["start"] = Level.LOW
    fast, plain = both_ways(monkeypatch, pyuftp.check_payload, "FlexOffer", payload, "3.1.0")
    assert fast == plain == ("ok", None)


# --- the reader ---------------------------------------------------------------------------

NASTY_TEXTS = ["", " ", " 5 ", "abc", "-1", "0", "1", "1.5", "9" * 30, "-0001-01-01",
               "2026-11-23T24:00:00Z", "2026-11-23T09:00:00", "PT15M", "P2D", "true", "E1",
               "ean.123456789012", "\u20ac"]


def _attribute_variants(xml: str):
    """The document with one attribute value at a time replaced by each nasty text."""
    for match in re.finditer(r' ([\w-]+)="([^"]*)"', xml):
        for text in NASTY_TEXTS:
            yield xml[:match.start(2)] + text + xml[match.end(2):]


@pytest.mark.parametrize("message_type,version", CASES)
def test_reader_fast_and_plain_agree(message_type, version, monkeypatch):
    xml = pyuftp.create_message(message_type, example(message_type, version), version=version)
    fast, plain = both_ways(monkeypatch, pyuftp.parse_message, xml)
    assert fast == plain and fast[0] == "ok"
    for variant in _attribute_variants(xml):
        fast, plain = both_ways(monkeypatch, pyuftp.parse_message, variant)
        assert fast == plain, variant


def _isp_variants():
    payload = flex_offer_96()
    isps = payload["offer_options"][0]["isps"]
    for index in (0, 9, 95):
        isps[index]["duration"] = index + 1
    xml = pyuftp.create_message("FlexOffer", payload, rules=False)  # odd ISPs on purpose
    yield xml
    yield re.sub(r'<ISP Power="(\d+)" Start="(\d+)"/>',
                 lambda m: f'<ISP Start=" {m.group(2)}" Power="{m.group(1)} "/>', xml)
    yield xml.replace("<ISP ", '<ISP xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                      'xsi:type="x" ', 3)
    for old, new in (('Start="7"', 'Start="0"'), ('Power="1050"', 'Power="x"'),
                     ('Power="1050"', f'Power="{2**63}"'), (' Start="7"', ""),
                     ('Duration="10"', 'Duration="-1"'), ('<ISP ', '<ISP Extra="1" ')):
        yield xml.replace(old, new, 1)
    yield re.sub(r' Duration="\d+"', "", xml)  # no optional attribute at all
    yield xml.replace(' Duration="1"', ' Duration="1" Duration2="2"')


@pytest.mark.parametrize("xml", list(_isp_variants()))
def test_reader_fast_and_plain_agree_on_long_lists(xml, monkeypatch):
    fast, plain = both_ways(monkeypatch, pyuftp.parse_message, xml)
    assert fast == plain


def test_reader_fast_and_plain_agree_on_an_unreadable_date_in_a_list(monkeypatch):
    xml = pyuftp.create_message("AGRPortfolioUpdate", example("AGRPortfolioUpdate"))
    bad = re.sub(r'StartPeriod="[^"]+"', 'StartPeriod="-0001-01-01"', xml, count=2)
    fast, plain = both_ways(monkeypatch, pyuftp.parse_message, bad)
    assert fast == plain
    assert plain == (pyuftp.ValidationError, "AGRPortfolioUpdate.connections[0].start_period: "
                     "'-0001-01-01' is not a date Python can hold")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data(), message_type=st.sampled_from(sorted(MESSAGES["3.1.0"])))
def test_generated_payloads_read_the_same_both_ways(data, message_type, monkeypatch):
    payload = data.draw(payloads(MESSAGES["3.1.0"][message_type]), label="payload")
    fast, plain = both_ways(monkeypatch, pyuftp.create_message, message_type, payload)
    assert fast == plain
    if fast[0] == "ok":
        assert both_ways(monkeypatch, pyuftp.parse_message, fast[1]) == (("ok", (message_type, payload)),) * 2
