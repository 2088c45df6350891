"""The fast renderer's loops (pyuftp.message.speed: a flat loop as one comprehension, other
loops into a list) write exactly what plain Jinja2 writes, for whatever the items hold.

render() checks nothing, so the items here carry what a checked payload never would: text
to escape, Markup, None, ints where strs belong, dict subclasses and mappings that are not
dicts; the fast and the plain renderer must agree byte for byte, or fail alike.
"""
from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal

import pytest
from markupsafe import Markup

from pyuftp.message import speed
from pyuftp.message.catalog import MESSAGE_TYPES, VERSIONS
from pyuftp.message.codec import complete_payload, render
from pyuftp.message.examples import example, flex_offer_96

CASES = [(t, v) for v in VERSIONS for t in MESSAGE_TYPES]
ODD = ['"quoted" <b>&amp;</b> \'it\'', Markup("<i>kept</i>"), None, 7, -7, 2**63, 2**70, True,
       Decimal("1.50"), Decimal("-0E-7"), "\t\n", "\u20ac", dt.date(2026, 1, 2),
       dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc), dt.datetime(2026, 1, 2)]


def test_rows_in_c_step_aside_for_what_they_do_not_know():
    if speed._native is None:
        pytest.skip("the C extension is not built here")
    rows = speed._native.render_rows
    ops = (("c", "<I A=\""), ("f", "a"), ("c", "\""), ("g", "b", (("c", " B="), ("f", "b"))),
           ("c", "/>"))
    assert rows([{"a": 1}, {"a": -2, "b": 3}, {"a": 0, "b": None}], ops) == (
        '<I A="1"/><I A="-2" B=3/><I A="0"/>')
    assert rows((), ops) == ""
    # an ASCII str is escaped as MarkupSafe does it; the extremes of a 64-bit int in full
    assert rows([{"a": "1 & <2> \"3\" '4'"}, {"a": -2**63, "b": 2**63 - 1}], ops) == (
        '<I A="1 &amp; &lt;2&gt; &#34;3&#34; &#39;4&#39;"/>'
        f'<I A="{-2**63}" B={2**63 - 1}/>')
    for items in ([{"a": "\u20ac"}], [{"a": Markup("1")}], [{"a": None}], [{}], [{"a": True}],
                  [{"a": 2**63}], [{"a": 1, "b": 1.5}], [Item(a=1)], ({"a": 1}, 5),
                  iter([{"a": 1}])):
        assert rows(items, ops) is None, items
    for odd in ((("x", "a"),), (("x", "a", 0),), (("x", "a", -1),), (("c", "\u20ac"),),
                ((1, 2),), ("c",), (("g", "a"),)):
        assert rows([{"a": 1}], odd) is None, odd
    with pytest.raises(TypeError):
        rows([{"a": 1}], [("c", "x")])


def test_rows_in_c_call_the_loops_filters_as_the_template_would():
    if speed._native is None:
        pytest.skip("the C extension is not built here")
    rows = speed._native.render_rows
    seen = []

    def twice(value):
        seen.append(value)
        return None if value == "none" else "" if value is None else value * 2

    ops = (("c", "<I A=\""), ("x", "a", 1), ("c", "\"/>"))
    assert rows([{"a": 1}, {"a": "<"}, {}], ops, (str, twice)) == (
        '<I A="2"/><I A="&lt;&lt;"/><I A=""/>')  # an absent field reaches it as None
    assert seen == [1, "<", None]
    # what the filter returns decides: an int or an ASCII str is written, anything else is not
    assert rows([{"a": "none"}], ops, (str, twice)) is None
    assert rows([{"a": "\u20ac"}], ops, (str, twice)) is None
    assert rows([{"a": 1}], ops, (str,)) is None  # no such filter

    def fails(value):
        raise ValueError(f"no {value}")

    with pytest.raises(ValueError, match="no 1"):  # as the template's own call would raise
        rows([{"a": 1}], ops, (str, fails))


class Item(dict):
    pass


class View(Mapping):  # a mapping that is not a dict: Jinja2's getattr path
    def __init__(self, data):
        self.data = data

    def __getitem__(self, key):
        return self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def _lists(value):
    """Every list of dicts in a payload, depth first."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _lists(item)
    elif isinstance(value, list):
        if value and all(isinstance(item, dict) for item in value):
            yield value
        for item in value:
            yield from _lists(item)


def both(message_type, payload, version, monkeypatch):
    """The outcomes plain and fast (in C where the extension is built, and without it)."""
    outcomes = []
    for enabled, native in ((True, True), (True, False), (False, False)):
        monkeypatch.setattr(speed, "ENABLED", enabled)
        monkeypatch.setattr(speed, "NATIVE", native)
        try:
            outcomes.append(("ok", render(message_type, payload, version)))
        except Exception as exc:  # noqa: BLE001 - the same failure every way is the point
            outcomes.append((type(exc), str(exc)))
    assert outcomes[0] == outcomes[1]
    return outcomes[1:]


@pytest.mark.parametrize("message_type,version", CASES)
def test_list_items_render_the_same_both_ways(message_type, version, monkeypatch):
    message = complete_payload(message_type, example(message_type, version), version)
    lists = list(_lists(message))
    fast, plain = both(message_type, message, version, monkeypatch)
    assert fast == plain and fast[0] == "ok"
    tried = 0
    for index in range(len(lists)):
        for value in ODD:
            changed = copy.deepcopy(message)
            for item in list(_lists(changed))[index]:
                for key in item:
                    if not isinstance(item[key], list):
                        item[key] = value
            fast, plain = both(message_type, changed, version, monkeypatch)
            assert fast == plain, (index, value)
            tried += 1
        for wrap in (Item, View):
            changed = copy.deepcopy(message)
            items = list(_lists(changed))[index]
            items[:] = [wrap(item) for item in items]
            fast, plain = both(message_type, changed, version, monkeypatch)
            assert fast == plain, (index, wrap)
    assert tried == len(lists) * len(ODD)


def test_a_96_isp_offer_renders_the_same_both_ways(monkeypatch):
    message = complete_payload("FlexOffer", flex_offer_96())
    isps = message["offer_options"][0]["isps"]
    isps[3]["duration"] = 4
    isps[4]["power"] = "<&>"
    del isps[5]["start"]  # absent: None, as Jinja2's getattr on the plain way says
    message["offer_options"].append(copy.deepcopy(message["offer_options"][0]))
    message["offer_options"][1]["isps"] = []
    fast, plain = both("FlexOffer", message, "3.1.0", monkeypatch)
    assert fast == plain and fast[0] == "ok"
    assert '<ISP Power="&lt;&amp;&gt;"' in fast[1] and 'Duration="4"' in fast[1]
