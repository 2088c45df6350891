"""One pass over a message's ISP lists, shared by every rule that reads them (issue #23).

:func:`index` reads each ISP list of a message once (an offer has one per option, metering
one per profile) and keeps what the rules ask of it: the (first, last) span of every ISP in
the message's order, each list's lowest and highest ISP, and whether the list is *ordered*:
every span non-empty and starting after the one before it ends. A list as UFTP senders write
it (ISPs 1, 2, ... 96) is ordered, and then the rules answer with a comparison or a binary
search (no overlap to look for, the ISPs near a requested run found by bisection) instead of
another walk over the list. :class:`~pyuftp.rules.context.Context` computes the index once per
message, lazily, for whichever rule asks first, in create and on receipt alike.

The index is the fast path; each rule keeps its plain path and takes it when there is no
index: for a message whose ISPs are not mappings with whole-number (``int``) starts and
durations (the schema's checker makes every message pyuftp sends or receives so; a payload
handed to :meth:`~pyuftp.rules.Rules.check` directly may be anything), or with :data:`FAST`
off. Both paths give the same problems, texts and order (test/rules/test_one_pass.py).
Time and memory follow the number of ISPs, never their values.
"""
from __future__ import annotations

import bisect
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Whether rules use the index (False: every rule takes its plain path; the tests compare).
FAST = True


class IspList:
    """One ISP list of a message, read once: ``firsts`` and ``lasts`` (the first and last
    ISP each ISP covers, in the message's order), the list's ``low`` and ``high`` ISP (None
    when it is empty) and whether it is ``ordered``: every span non-empty, each beginning
    after the one before it ends (so nothing in it overlaps, and firsts and lasts rise)."""

    __slots__ = ("path", "firsts", "lasts", "low", "high", "ordered", "_spans")

    def __init__(self, path: str, firsts: list[int], lasts: list[int], ordered: bool) -> None:
        self.path, self.firsts, self.lasts, self.ordered = path, firsts, lasts, ordered
        self.low: int | None = None
        self.high: int | None = None
        if firsts:
            self.low, self.high = (firsts[0], lasts[-1]) if ordered else (min(firsts),
                                                                          max(lasts))
        self._spans: list[tuple[int, int]] | None = None

    @property
    def spans(self) -> list[tuple[int, int]]:
        """(first ISP, last ISP) of each ISP, in the message's order (made when asked)."""
        if self._spans is None:
            self._spans = list(zip(self.firsts, self.lasts))
        return self._spans

    def within(self, low: int, high: int) -> bool:
        """Whether the list has ISPs and every one lies in ``low``-``high``."""
        return self.low is not None and self.high is not None and low <= self.low \
            and self.high <= high

    def near(self, low: int, high: int) -> list[tuple[int, int]]:
        """The spans that reach into ``low``-``high`` (in the message's order): two binary
        searches when the list is ordered, a walk otherwise."""
        if self.ordered:  # firsts and lasts both rise: the spans that reach in are a slice
            start = bisect.bisect_left(self.lasts, low)
            end = bisect.bisect_right(self.firsts, high)
            return list(zip(self.firsts[start:end], self.lasts[start:end]))
        return [span for span in self.spans if span[1] >= low and span[0] <= high]

    def meets(self, joined: list[tuple[int, int]]) -> bool:
        """Whether a span of the list shares an ISP with the merged, sorted ``joined``
        spans, as :func:`meet` says (which it asks when the list is
        not ordered: an empty span there counts as it always did)."""
        if not self.ordered:
            return meet(self.spans, joined)
        lasts, firsts = self.lasts, self.firsts
        for first, last in joined:
            at = bisect.bisect_left(lasts, first)  # the first span ending at or after ``first``
            if at < len(firsts) and firsts[at] <= last:
                return True
        return False


@dataclass(frozen=True, slots=True)
class IspIndex:
    """Every ISP list of a message (:class:`IspList`), and the highest ISP of all."""

    lists: tuple[IspList, ...]
    high: int | None               # the highest last ISP of the message; None: no ISPs

    def pairs(self) -> list[tuple[str, list[tuple[int, int]]]]:
        """(path, spans) per list: what :meth:`Context.spans` returns."""
        return [(one.path, one.spans) for one in self.lists]


def read(path: str, isps: Any) -> IspList | None:
    """One list as an :class:`IspList`, or None when it is not a list of mappings with
    ``int`` starts (and durations, where given). A few passes in C over the list; no per-ISP
    Python beyond reading the two keys."""
    if type(isps) is not list:
        return None
    try:
        firsts = [isp["start"] for isp in isps]
        durations = [isp.get("duration", 1) for isp in isps]
    except Exception:  # noqa: BLE001 - no mapping, no start: the plain walk says what
        return None
    if not set(map(type, firsts)) <= {int} or not set(map(type, durations)) <= {int}:
        return None  # bool, float, str, ...: the plain path
    if durations.count(1) == len(durations):  # one ISP each, as most lists say
        return IspList(path, firsts, firsts, all(map(operator.lt, firsts, firsts[1:])))
    lasts = [first + duration - 1 for first, duration in zip(firsts, durations)]
    # every span non-empty, and each begins after the last ISP of the one before it
    return IspList(path, firsts, lasts, all(map(operator.le, firsts, lasts))
                   and all(map(operator.gt, firsts[1:], lasts)))


def index(message_type: str, payload: Mapping[str, Any]) -> IspIndex | None:
    """The :class:`IspIndex` of a message, or None (the rules' plain paths then run): when
    :data:`FAST` is off, or any ISP list is not as :func:`read` wants it."""
    if not FAST:
        return None
    if message_type == "FlexOffer":
        parents, key = payload.get("offer_options", []), "offer_options"
    elif message_type == "Metering":
        parents, key = payload.get("profiles", []), "profiles"
    else:
        one = read("isps", payload.get("isps", []))
        return None if one is None else IspIndex((one,), one.high)
    if type(parents) is not list or not all(isinstance(p, Mapping) for p in parents):
        return None
    lists = []
    for i, parent in enumerate(parents):
        one = read(f"{key}[{i}].isps", parent.get("isps", []))
        if one is None:
            return None
        lists.append(one)
    highs = [one.high for one in lists if one.high is not None]
    return IspIndex(tuple(lists), max(highs) if highs else None)


def merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive (first, last) spans joined where they overlap or touch, sorted: the ISPs
    they cover as intervals, whatever their numbers (never one entry per ISP)."""
    joined: list[tuple[int, int]] = []
    for first, last in sorted(s for s in spans if s[0] <= s[1]):
        if joined and first <= joined[-1][1] + 1:
            joined[-1] = (joined[-1][0], max(joined[-1][1], last))
        else:
            joined.append((first, last))
    return joined


def meet(spans: Iterable[tuple[int, int]], joined: list[tuple[int, int]]) -> bool:
    """Whether any span shares an ISP with the :func:`merged` spans ``joined`` (a binary
    search each: time n log n in the spans, whatever their numbers)."""
    starts = [first for first, _ in joined]
    for first, last in spans:
        at = bisect.bisect_right(starts, last) - 1  # the last joined span starting by ``last``
        if at >= 0 and joined[at][1] >= first:
            return True
    return False
