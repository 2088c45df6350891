"""The check registry: every conformance check has an id, the spec section it comes from, a
one-line explanation, a level and the role pairs it applies to.

    checks = registry("AGR", "DSO", versions=("3.1.0", "3.0.0"))   # pyuftp.conformance.suite
    chosen = select(checks, only=["transport.*"], skip=["transport.redirect"])

A check is a coroutine function ``run(link) -> Outcome`` (``link``: the
:class:`~pyuftp.conformance.runner.Link` to the other party). The transport checks live in
:mod:`pyuftp.conformance.transport`, the message checks in
:mod:`pyuftp.conformance.messages`; :func:`pyuftp.conformance.suite.registry` joins them.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Check", "Outcome", "select", "PASS", "FAIL", "SKIP", "LEVELS"]

PASS, FAIL, SKIP = "pass", "fail", "skip"
#: "must": the spec requires it; "should": the spec recommends it or leaves it open
LEVELS = ("must", "should")
TRANSPORT = "appendix/message-transport-mechanism.md"


@dataclass(frozen=True)
class Outcome:
    """What one check found: ``status`` (pass, fail or skip), what it expected, what it got,
    and an excerpt of the evidence (a status line, a reason, a response's attributes)."""

    status: str
    expected: str
    got: str
    excerpt: str = ""


#: a check's work: ``run(link)`` with the :class:`~pyuftp.conformance.runner.Link`
Run = Callable[[Any], Awaitable[Outcome]]


@dataclass(frozen=True)
class Check:
    """One conformance check."""

    id: str
    section: str
    explanation: str
    run: Run = field(repr=False, compare=False)
    #: what it sends, in words (``--dry-run`` lists it)
    sends: str = ""
    level: str = "must"
    #: the (our role, their role) pairs it applies to; empty: every pair
    pairs: frozenset[tuple[str, str]] = frozenset()
    #: the messages it sends at most (the runner's budget counts them)
    cost: int = 1

    def applies(self, us: str, them: str) -> bool:
        return not self.pairs or (us, them) in self.pairs


def select(checks: Iterable[Check], only: Sequence[str] = (), skip: Sequence[str] = (),
           level: str | None = None) -> list[Check]:
    """The checks whose id matches a pattern of ``only`` (all when empty; shell-style
    wildcards, or a prefix ending in a dot: ``transport.``) and none of ``skip``; with
    ``level="must"`` only the required ones. ValueError for a pattern that matches nothing
    (a typo must not silently select no check)."""
    every = list(checks)

    def matches(check: Check, pattern: str) -> bool:
        return (fnmatch.fnmatchcase(check.id, pattern)
                or (pattern.endswith(".") and check.id.startswith(pattern)))

    for option, patterns in (("--only", only), ("--skip", skip)):
        for pattern in patterns:
            if not any(matches(check, pattern) for check in every):
                raise ValueError(f"{option} {pattern!r} matches no check id (see --list)")
    if level is not None and level not in LEVELS:
        raise ValueError(f"level {level!r}: one of {', '.join(LEVELS)}")
    return [check for check in every
            if (not only or any(matches(check, p) for p in only))
            and not any(matches(check, p) for p in skip)
            and (level is None or level == "should" or check.level == "must")]
