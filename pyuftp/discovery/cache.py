"""A short memory of failed key look-ups, so that unknown senders cost one look-up each.

    lookup = cached_lookup(directory.key, ttl=30.0, size=10_000)
    key = lookup("agr.example.com", "AGR")     # or: await lookup(...) for an async look-up

Anyone can send a SignedMessage naming any sender domain, and each one makes the service
look up that party's key: cheap in a :class:`~pyuftp.discovery.Directory`, a DNS query or a
registry request elsewhere. A :class:`NegativeCache` remembers a look-up that found nothing
(None or an empty key) for ``ttl`` seconds, for at most ``size`` (domain, role) pairs, the
least recently used going first. Keys that were found are not cached (the source stays the
one truth for them), nor are look-ups that raised (the next message tries again), nor pairs
longer than :data:`MAX_NAME` characters (no domain is: they never take the cache's memory).
Concurrent async look-ups of one pair share one call.
"""
from __future__ import annotations

import asyncio
import inspect
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["NegativeCache", "cached_lookup", "NEGATIVE_TTL", "NEGATIVE_SIZE", "MAX_NAME"]

#: Seconds a failed look-up is remembered by default.
NEGATIVE_TTL = 30.0
#: (domain, role) pairs remembered at most by default.
NEGATIVE_SIZE = 10_000
#: Longer domains (a DNS name has at most 253 characters) are looked up but not remembered.
MAX_NAME = 255

Lookup = Callable[[str, str], Any]  # (domain, role) -> key | None, or an awaitable of that


class NegativeCache:
    """Wraps a ``(domain, role) -> key`` look-up (sync or async); call it like the look-up.

    A sync look-up stays sync; an async one (or one returning an awaitable) gives an
    awaitable. :meth:`forget` drops one pair (say, right after adding its key elsewhere)."""

    def __init__(self, lookup: Lookup, ttl: float = NEGATIVE_TTL, size: int = NEGATIVE_SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl < 0 or size < 0:
            raise ValueError(f"ttl and size must not be negative (ttl={ttl!r}, size={size!r})")
        self.lookup, self.ttl, self.size, self.clock = lookup, ttl, size, clock
        self._until: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Future[Any]] = {}
        # Whether callers await the answer: then a remembered None is given as an awaitable.
        self._async = inspect.iscoroutinefunction(lookup) or \
            inspect.iscoroutinefunction(getattr(lookup, "__call__", None))
        self.calls = 0  # look-ups passed on to the wrapped one
        self.hits = 0  # look-ups answered None from memory
        self._changes = _changes(lookup)

    def __len__(self) -> int:
        return len(self._until)

    def __call__(self, domain: str, role: str) -> Any:
        pair = (domain, role)
        changes = _changes(self.lookup)
        if changes != self._changes:  # a party was added where the look-up reads: ask again
            self._changes = changes
            self._until.clear()
        if self._known_missing(pair):
            self.hits += 1
            return _none() if self._async else None
        shared = self._inflight.get(pair)
        if shared is not None:
            return _wait(shared)
        self.calls += 1
        answer = self.lookup(domain, role)
        if inspect.isawaitable(answer):
            self._async = True
            return self._share(pair, answer)
        self._remember(pair, answer)
        return answer

    def refresh(self, domain: str, role: str) -> Any:
        """Ask again after a signature failure (a key may have rotated): forget what this
        cache holds for the pair and pass the call to the wrapped look-up's own ``refresh``,
        if it has one (None otherwise)."""
        self.forget(domain, role)
        inner = refresher(self.lookup)
        return None if inner is None else inner(domain, role)

    def forget(self, domain: str, role: str) -> None:
        """Look this pair up again next time."""
        self._until.pop((domain, role), None)

    def clear(self) -> None:
        self._until.clear()

    def _known_missing(self, pair: tuple[str, str]) -> bool:
        until = self._until.get(pair)
        if until is None:
            return False
        if self.clock() >= until:
            del self._until[pair]
            return False
        self._until.move_to_end(pair)
        return True

    def _remember(self, pair: tuple[str, str], answer: Any) -> None:
        if answer or self.ttl == 0 or self.size == 0:
            return
        if len(pair[0]) > MAX_NAME or len(pair[1]) > MAX_NAME:
            return
        self._until[pair] = self.clock() + self.ttl
        self._until.move_to_end(pair)
        while len(self._until) > self.size:
            self._until.popitem(last=False)

    def _share(self, pair: tuple[str, str], answer: Awaitable[Any]) -> Awaitable[Any]:
        # Registered before the caller awaits: look-ups of this pair made meanwhile wait for
        # this one instead of making their own.
        future: asyncio.Future[Any] = asyncio.ensure_future(answer)
        self._inflight[pair] = future

        def done(finished: asyncio.Future[Any]) -> None:
            self._inflight.pop(pair, None)
            if not finished.cancelled() and finished.exception() is None:
                self._remember(pair, finished.result())

        future.add_done_callback(done)
        return _wait(future)


async def _wait(future: asyncio.Future[Any]) -> Any:
    # Shielded: one waiter given up (a closed connection) does not cancel the others' look-up.
    return await asyncio.shield(future)


async def _none() -> None:
    return None


def cached_lookup(lookup: Lookup, ttl: float = NEGATIVE_TTL,
                  size: int = NEGATIVE_SIZE) -> NegativeCache:
    """``lookup`` with failed answers remembered for ``ttl`` seconds (see the module)."""
    return NegativeCache(lookup, ttl, size)


def refresher(lookup: Any) -> Any:
    """The ``refresh(domain, role)`` of a key look-up: its own, or that of the object whose
    bound method it is (``chain.key``); None when it has none."""
    found = getattr(lookup, "refresh", None)
    if found is None:
        found = getattr(getattr(lookup, "__self__", None), "refresh", None)
    return found if callable(found) else None


def _changes(lookup: Any) -> Any:
    """The ``changes`` counter of what a look-up reads (a Directory's, through the bound
    method ``directory.key`` or a chain over one), or None: when it moves, what this cache
    remembers as unknown may be known now."""
    return getattr(getattr(lookup, "__self__", lookup), "changes", None)
