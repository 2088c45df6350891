"""What one delivery attempt leads to: delivered, tried again later, or failed for good.

The :class:`~pyuftp.sending.outbox.Outbox` runs the attempts; :class:`Outcomes` stores what came of
each (in the same store), decides when the next attempt is due (:class:`Backoff`, the peer's
Retry-After, the item's expiry), tells ``on_delivery_failed`` about final failures, keeps one
warning per peer outage, and counts per peer what is not yet delivered (the backlog a
service weighs before taking more work from that peer).
"""
from __future__ import annotations

import asyncio
import collections
import heapq
import inspect
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..exceptions import DeliveryError, DeliveryExpired, about
from ..store import OutboxItem, Store

logger = logging.getLogger(__name__)

Peer = tuple[str, str]  # (recipient_domain, recipient_role)


class Backoff:
    """Exponential back-off with full jitter: the wait after failure ``n`` is drawn between
    50 % and 100 % of ``first * 2**(n-1)`` (at most ``most``), so that many senders
    recovering at once do not hit a peer together; at least the peer's Retry-After."""

    def __init__(self, first: float, most: float) -> None:
        if most < first:
            raise ValueError("max_backoff must not be smaller than first_backoff")
        self.first, self.most = first, most

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        base = min(self.most, self.first * 2.0 ** min(max(attempts - 1, 0), 64))
        delay = random.uniform(base / 2, base)
        if retry_after is not None and math.isfinite(retry_after) and retry_after > delay:
            delay = retry_after
        return delay



class Outcomes:
    """Stores and reports the outcome of delivery attempts (see the module docstring)."""

    def __init__(self, store: Store, backoff: Backoff,
                 on_delivery_failed: Callable[[OutboxItem, Exception], Any] | None) -> None:
        self.store, self.backoff, self.on_delivery_failed = store, backoff, on_delivery_failed
        self.backlog: collections.Counter[Peer] = collections.Counter()
        self.failing: set[Peer] = set()     # peers whose outage was logged already
        self._retry_times: list[float] = []  # heap: the retries scheduled
        # the Outbox replaces this: it commits several marks at once (sending.marks)
        self.mark_delivered: Callable[[int], Awaitable[None]] = self._mark_delivered

    async def _mark_delivered(self, item_id: int) -> None:
        await self.store.call(self.store.mark_delivered, item_id)

    def next_retry(self, now: float) -> float | None:
        """The earliest retry scheduled after ``now``, if any."""
        while self._retry_times and self._retry_times[0] <= now:
            heapq.heappop(self._retry_times)
        return self._retry_times[0] if self._retry_times else None

    async def record(self, item: OutboxItem,
                      error: Exception | None) -> tuple[OutboxItem, Exception] | None:
        """Store the outcome of one attempt; return (item, error) for a final failure."""
        assert item.id is not None
        peer = (item.recipient_domain, item.recipient_role)
        if error is None:
            await self.mark_delivered(item.id)
            item.state = "delivered"
            self._settled(peer)
            if peer in self.failing:
                self.failing.discard(peer)
                logger.info("delivering to %s (%s) works again", peer[0], peer[1])
            if logger.isEnabledFor(logging.INFO):  # about() reads the body: not for nothing
                who = about(item)
                logger.info("delivered %s after %d failed attempts", who, item.attempts,
                            extra=who)
            return None
        who = about(item)  # (#21) in the text and as extra fields of every line about it
        status = error.status if isinstance(error, DeliveryError) else None
        if isinstance(error, DeliveryError) and not error.temporary:
            return await self._fail(item, error, status, who)
        if not isinstance(error, DeliveryError):
            # a bug in deliver, not the peer's doing: show where, then retry like a 5xx
            logger.error("unexpected error delivering %s; treated as temporary", who,
                         exc_info=error, extra=who)
        attempts, now = item.attempts + 1, time.time()
        if now >= item.expires_at:
            item.attempts = attempts
            expired = DeliveryExpired(
                f"gave up on {who} after {attempts} attempts over {now - item.created_at:.0f}s; "
                f"last error: {_describe(error)}", error, status=status,
                url=getattr(error, "url", None))
            expired.__cause__ = error
            return await self._fail(item, expired, status, who)
        retry_after = error.retry_after if isinstance(error, DeliveryError) else None
        next_at = min(now + self.backoff.delay(attempts, retry_after), item.expires_at)
        await self.store.call(self.store.mark_retry, item.id, attempts, next_at,
                              _describe(error), status)
        item.attempts, item.next_attempt_at = attempts, next_at
        item.last_error, item.last_status = _describe(error), status
        heapq.heappush(self._retry_times, next_at)
        # One warning per peer outage, not per message and attempt: a peer down for an hour
        # with a thousand messages queued must not flood the log.
        if peer not in self.failing:
            self.failing.add(peer)
            logger.warning("cannot deliver to %s (%s): %s; retrying (further failures are "
                           "logged at INFO)", peer[0], peer[1], _describe(error))
        logger.info("delivering %s failed (attempt %d): %s; next attempt in %.2fs",
                    who, attempts, _describe(error), next_at - now, extra=who)
        return None

    async def _fail(self, item: OutboxItem, reported: Exception, status: int | None,
                    who: Any) -> tuple[OutboxItem, Exception]:
        assert item.id is not None
        await self.store.call(self.store.mark_failed, item.id, _describe(reported), status)
        item.state, item.last_error, item.last_status = "failed", _describe(reported), status
        self._settled((item.recipient_domain, item.recipient_role))
        logger.error("delivering %s failed for good: %s", who, _describe(reported), extra=who)
        return item, reported

    def _settled(self, peer: Peer) -> None:
        if self.backlog[peer] > 1:
            self.backlog[peer] -= 1
        else:
            self.backlog.pop(peer, None)

    async def tell_failed(self, item: OutboxItem, error: Exception) -> None:
        if self.on_delivery_failed is None:
            return
        try:
            result = self.on_delivery_failed(item, error)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("on_delivery_failed raised for %s", about(item), extra=about(item))


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
