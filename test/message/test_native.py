"""The C reader (pyuftp/message/_native.c) changes how fast, never what.

Each case reads the same input three ways: in C, with the pure-Python speed-ups, and plainly.
The C reader and the plain one must agree byte for byte (the repr of the dict, so key order
too) or raise the same error with the same text; the pure-Python speed-ups agree as dicts
(they order an ISP's keys by the table, not the document, as before).
"""
from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

import pyuftp
from pyuftp.message import read, speed
from pyuftp.message.catalog import MESSAGE_TYPES, MESSAGES, VERSIONS
from pyuftp.message.codec import (
    MAX_ATTRIBUTES, MAX_CHILDREN, MAX_DEPTH, complete_payload, parse_xml)
from pyuftp.message.examples import example, flex_offer_96

from test_messaging_speed import NASTY_TEXTS, _attribute_variants, _isp_variants
from test_properties import payloads

ROOT = Path(__file__).resolve().parents[2]
CASES = [(t, v) for v in VERSIONS for t in MESSAGE_TYPES]

needs_native = pytest.mark.skipif(
    speed._native is None,
    reason="the C extension is not built here: python setup.py build_ext --inplace")


def test_ci_tests_the_c_reader():
    # locally the C tests skip without the extension (they say how to build it); CI must
    # run them, so that the C path is tested where it ships
    if os.environ.get("CI") and speed._native is None:
        pytest.fail("CI must test the C reader: run python setup.py build_ext --inplace")


def three_ways(monkeypatch, call, *args):
    """``call(*args)`` in C, with the pure-Python speed-ups and plainly: each outcome as
    ``("ok", repr of the result, result)`` or ``(exception type, text)``."""
    outcomes = []
    for enabled, native in ((True, True), (True, False), (False, False)):
        monkeypatch.setattr(speed, "ENABLED", enabled)
        monkeypatch.setattr(speed, "NATIVE", native)
        try:
            result = call(*args)
            outcomes.append(("ok", repr(result), result))
        except pyuftp.PyUFTPError as exc:
            outcomes.append((type(exc), str(exc)))
    return outcomes


def agree(outcomes):
    native, python, plain = outcomes
    assert native == plain  # byte for byte: the same repr, or the same error
    assert python[0] == plain[0] and python[-1] == plain[-1]
    return plain


@needs_native
def test_the_extension_is_used_by_default():
    assert speed.NATIVE and speed.native()
    code = "import pyuftp.message.speed as s; print(s.NATIVE, s.native())"
    for value, expected in (("0", "False False"), ("", "True True")):
        env = {**os.environ, "PYUFTP_NATIVE": value}
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=True)
        assert done.stdout.strip() == expected, value
    env = {**os.environ, "PYUFTP_PLAIN": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True False"  # PYUFTP_PLAIN turns every fast path off


@needs_native
@pytest.mark.parametrize("message_type,version", CASES)
def test_every_example_reads_the_same_three_ways(message_type, version, monkeypatch):
    xml = pyuftp.create_message(message_type, example(message_type, version), version=version)
    assert agree(three_ways(monkeypatch, pyuftp.parse_message, xml))[0] == "ok"
    for variant in _attribute_variants(xml):
        agree(three_ways(monkeypatch, pyuftp.parse_message, variant))


@needs_native
@pytest.mark.parametrize("xml", list(_isp_variants()))
def test_odd_isp_lists_read_the_same_three_ways(xml, monkeypatch):
    agree(three_ways(monkeypatch, pyuftp.parse_message, xml))


def _odd_documents():
    xml = pyuftp.create_message("FlexOffer", flex_offer_96(), rules=False)
    yield xml.replace('Start="5"', 'Start="&#x35;"')  # a character reference
    yield xml.replace('Power="1004"', 'Power="+1004"')
    yield xml.replace('Power="1004"', 'Power="-0"')
    yield xml.replace('Power="1004"', 'Power="0001004"')
    yield xml.replace('Power="1004"', f'Power="{"9" * 18}"')
    yield xml.replace('Power="1004"', f'Power="-{"9" * 19}"')
    yield xml.replace('Power="1004"', 'Power="\t1004\n"')
    yield xml.replace('<ISP Power="1010"', '<!-- a comment --><ISP Power="1010"')
    yield xml.replace('<ISP Power="1010"', '<?pi x?><ISP Power="1010"')
    yield xml.replace('ContractID="BC-2026-0042"', 'ContractID="\u20ac &amp; &lt;\U0001f600"')
    yield xml.replace('ContractID="BC-2026-0042"', 'ContractID=""')
    yield xml.replace("<FlexOffer ", '<FlexOffer xml:lang="nl" ')
    yield xml.replace('<ISP Power="1010"', '<ISP xmlns="urn:x" Power="1010"')
    yield xml.replace('<ISP Power="1010" Start="11"/>', '<ISP Power="1010" Start="11"></ISP>')
    yield xml.replace("</OfferOption>", '<x:ISP xmlns:x="urn:x" Power="1" Start="1"/>'
                      "</OfferOption>")
    yield xml.replace("<FlexOffer ", "<FlexOffer  TimeStamp2='x' ")


@needs_native
@pytest.mark.parametrize("xml", list(_odd_documents()))
def test_odd_documents_read_the_same_three_ways(xml, monkeypatch):
    agree(three_ways(monkeypatch, pyuftp.parse_message, xml))


@needs_native
@pytest.mark.parametrize("text", NASTY_TEXTS + ["+7", "٣", "1_000", "0x10", "-", ""])
def test_rows_give_the_plain_values_or_step_aside(text):
    # Directly: the values the plain reader would give, or None where it would raise.
    root = etree.fromstring(f'<p><ISP A="{text}" B="{text}"/><ISP A="1"/></p>'.encode())
    table = speed.NativeTable([], "ISP")
    table.names, table.keys, table.parses = (b"A", b"B"), ("a", "b"), (int, str.strip)
    try:
        expected = [{"a": int(text), "b": text.strip()}, {"a": 1}]
    except ValueError:
        expected = None
    assert repr(table.rows(root)) == repr(expected)


@needs_native
def test_other_errors_of_a_parse_function_are_not_swallowed():
    root = etree.fromstring(b'<p><ISP A="1"/></p>')

    def parse(text):
        raise KeyError(text)

    native = speed._native
    with pytest.raises(KeyError):
        native.rows(root, b"ISP", (b"A",), ("a",), (parse,))
    with pytest.raises(KeyError):
        native.attributes(root[0], (b"A",), ("a",), (parse,))
    with pytest.raises(TypeError):
        native.rows(root, b"ISP", ("A",), ("a",), (int,))
    with pytest.raises(TypeError):
        native.rows(root, b"ISP", (b"A",), ("a", "b"), (int,))
    # Not an element: "read it plainly", never a crash.
    for thing in (None, "<p/>", etree.fromstring(b"<p/>").getroottree(), 1):
        assert native.rows(thing, b"ISP", (), (), ()) is None
        assert native.attributes(thing, (), (), ()) is None
        assert native.shape_fine(thing, 1, 1, 1) is False


@needs_native
@pytest.mark.parametrize("data", [
    "<TestMessage>" + "<a>" * MAX_DEPTH + "</a>" * MAX_DEPTH + "</TestMessage>",
    "<TestMessage>" + "<a>" * (MAX_DEPTH - 1) + "</a>" * (MAX_DEPTH - 1) + "</TestMessage>",
    "<FlexOffer>" + "<ISP/>" * (MAX_CHILDREN + 1) + "</FlexOffer>",
    "<FlexOffer>" + "<ISP/>" * MAX_CHILDREN + "</FlexOffer>",
    "<a " + " ".join(f'x{i}="1"' for i in range(MAX_ATTRIBUTES + 1)) + "/>",
    "<a " + " ".join(f'x{i}="1"' for i in range(MAX_ATTRIBUTES)) + "/>",
    "<r><a " + " ".join(f'x{i}="1"' for i in range(MAX_ATTRIBUTES + 1)) + "/></r>",
    "<r>" + "<a><b/></a>" * 1000 + "<a>" * 9 + "</a>" * 9 + "</r>",
])
def test_the_shape_check_answers_the_same_in_c(data, monkeypatch):
    outcomes = three_ways(monkeypatch, lambda: etree.tostring(parse_xml(data)))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    fine = speed._native.shape_fine(etree.fromstring(data.encode()), MAX_ATTRIBUTES,
                                    MAX_DEPTH, MAX_CHILDREN)
    assert fine is (outcomes[0][0] == "ok")


@needs_native
def test_the_c_shape_check_is_linear():
    # Wide, deep (as deep as libxml2 parses by default) and both: each well under a second.
    shapes = ["<r>" + "<a/>" * 200_000 + "</r>", "<a>" * 255 + "</a>" * 255,
              "<r>" + ("<a>" * 200 + "</a>" * 200) * 500 + "</r>"]
    for data in shapes:
        root = etree.fromstring(data.encode())
        started = time.process_time()
        speed._native.shape_fine(root, 10**9, 10**9, 10**9)
        assert time.process_time() - started < 1.0


@needs_native
@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), message_type=st.sampled_from(sorted(MESSAGES["3.1.0"])))
def test_generated_payloads_read_the_same_three_ways(data, message_type, monkeypatch):
    payload = data.draw(payloads(MESSAGES["3.1.0"][message_type]), label="payload")
    try:
        xml = pyuftp.create_message(message_type, payload, rules=False)
    except pyuftp.PyUFTPError:
        return
    outcome = agree(three_ways(monkeypatch, pyuftp.parse_message, xml))
    assert outcome[-1] == (message_type, payload)


@needs_native
def test_the_reader_is_chosen_per_call(monkeypatch):
    # The switches take effect on the next call, as the speed module promises.
    monkeypatch.setattr(speed, "NATIVE", False)
    assert read.reader("FlexOffer", "3.1.0", True).native is None
    monkeypatch.setattr(speed, "NATIVE", True)
    assert read.reader("FlexOffer", "3.1.0", True).native is not None
    assert read.reader("FlexOffer", "3.1.0", False).native is None


def test_the_extension_builds_from_source(tmp_path):
    # What a fresh machine does when it installs from source: the compiler it has, Python's
    # headers and lxml's (the wheel carries them). Then the module reads a message.
    done = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path),
         "--build-temp", str(tmp_path / "tmp")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    built = list((tmp_path / "pyuftp" / "message").glob("_native*"))
    if not built:
        pytest.skip(f"no C compiler here; the pure-Python reader serves ({done.stderr[-300:]})")
    code = ("import importlib.util, sys; from lxml import etree; "
            "spec = importlib.util.spec_from_file_location("
            f"'pyuftp.message._native', {str(built[0])!r}); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "print(m.rows(etree.fromstring(b'<p><I A=\"7\"/></p>'), b'I', (b'A',), ('a',), "
            "(int,)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "[{'a': 7}]", done.stderr


# --- the checker's quick pass over leaf lists -----------------------------------------------

EDGE_VALUES = [0, 1, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**40,
               True, False, None, "1", 1.0, Decimal("1"), [], {}]


def _list_checks(message_type, key_path):
    from pyuftp.message import check

    def at(checker):
        for step in key_path:
            checker = next(c for k, c, _, _ in checker.children if k == step)
        return checker.all_fine

    python = at(check.checker(message_type, "3.1.0", True, None, False))
    native = at(check.checker(message_type, "3.1.0", True, None, True))
    return python, native


@needs_native
@pytest.mark.parametrize("key", ["power", "start", "duration", "pwer", 5])
def test_the_c_list_check_answers_as_the_python_one(key):
    python, native = _list_checks("FlexOffer", ("offer_options", "isps"))
    for value in EDGE_VALUES:
        for index in (0, 47, 95):
            isps = flex_offer_96()["offer_options"][0]["isps"]
            isps[index][key] = value
            assert native(isps) is python(isps), (key, value, index)
            assert native(tuple(isps)) is python(tuple(isps))
    isps = flex_offer_96()["offer_options"][0]["isps"]
    del isps[3]["power"]
    assert native(isps) is python(isps) is False
    assert native([]) is python([]) is True


@needs_native
def test_the_c_list_check_calls_the_checks_of_other_types():
    # Connections carry strings and dates: their check functions are called, not skipped.
    payload = example("AGRPortfolioUpdate")
    python, native = _list_checks("AGRPortfolioUpdate", ("connections",))
    items = payload["connections"]
    assert native(items) is python(items) is True
    for key in items[0]:
        for value in EDGE_VALUES + ["", " x ", "E123", dt.date(2026, 1, 1)]:
            changed = [dict(item) for item in items]
            changed[-1][key] = value
            assert native(changed) is python(changed), (key, value)


@needs_native
def test_the_c_list_check_refuses_what_is_not_a_plain_list_of_dicts():
    python, native = _list_checks("FlexOffer", ("offer_options", "isps"))

    class Item(dict):
        pass

    class Items(list):
        pass

    isps = flex_offer_96()["offer_options"][0]["isps"]
    assert native(Items(isps)) is False  # a list subclass: "look closer", always safe
    for odd in (Item(isps[2]), None, 17, [("power", 1)]):
        changed = list(isps)
        changed[2] = odd
        assert native(changed) is python(changed) is False


@needs_native
@pytest.mark.parametrize("message_type", ["FlexOffer", "FlexOrder", "D-Prognosis",
                                          "AGRPortfolioUpdate", "FlexSettlement"])
def test_bad_payloads_are_refused_the_same_three_ways(message_type, monkeypatch):
    from test_messaging_speed import _bad_payloads

    checked = 0
    for payload in _bad_payloads(example(message_type)):
        agree(three_ways(monkeypatch, pyuftp.check_payload, message_type, payload))
        checked += 1
    assert checked > 50


@needs_native
def test_the_c_attribute_check_leaves_children_to_their_own_checks():
    from types import MappingProxyType

    from pyuftp.message.catalog import spec
    from pyuftp.message.check import message_node

    node = message_node("FlexOffer", spec("3.1.0"))
    fine = speed.attributes_check(node, True)
    payload = complete_payload("FlexOffer", flex_offer_96())
    assert fine((payload,)) is True
    assert fine(({**payload, "offer_options": "not checked here"},)) is True
    assert fine(({k: v for k, v in payload.items() if k != "offer_options"},)) is True
    for key, value in (("colour", 1), ("currency", "euro"), ("period", None),
                       ("isp_duration", 15), ("unsolicited", 1)):
        assert fine(({**payload, key: value},)) is False, key
    assert fine((MappingProxyType(payload),)) is False
    assert speed.attributes_check(node, False) is None
