"""The outbox's "delivered" marks, committed several at a time.

An item the recipient accepted need not be marked in a transaction of its own: losing the
mark in a crash only means the item is posted again after the restart (delivery is at least
once; a recipient drops a repeat by its message id). So :class:`DeliveredMarks` collects the
ids and commits them with the next item the outbox stores (``add_outgoing(delivered=...)``,
the answer to the next request, which is committed anyway) or, when none comes within
``delay`` seconds, in one :meth:`~pyuftp.store.OutboxStore.mark_delivered_many` of their own.
Until then an item stays claimed (its lease, minutes), so no outbox posts it again.
"""
from __future__ import annotations

import asyncio
import logging

from ..store import Store

logger = logging.getLogger(__name__)


class DeliveredMarks:
    """Ids of delivered items not yet marked so in the store (see the module docstring)."""

    def __init__(self, store: Store, delay: float = 0.05) -> None:
        self.store, self.delay = store, delay
        self._ids: list[int] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._ids) + (self._flushing is not None and not self._flushing.done())

    async def add(self, item_id: int) -> None:
        """Note ``item_id`` delivered; committed within ``delay`` seconds."""
        self._ids.append(item_id)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self._flush_soon)

    def take(self) -> list[int]:
        """The ids noted so far, for a transaction the caller commits now; on failure it
        gives them back (:meth:`give_back`)."""
        ids, self._ids = self._ids, []
        return ids

    def give_back(self, ids: list[int]) -> None:
        self._ids[:0] = ids
        if ids and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self._flush_soon)

    def _flush_soon(self) -> None:
        self._timer = None
        if self._ids and (self._flushing is None or self._flushing.done()):
            self._flushing = asyncio.get_running_loop().create_task(
                self.flush(), name="pyuftp-outbox-marks")

    async def flush(self) -> None:
        """Commit the marks noted so far, in one transaction. A store error is logged: the
        items stay claimed until their lease ends, then are posted again."""
        ids = self.take()
        if not ids:
            return
        try:
            await self.store.call(self.store.mark_delivered_many, ids)
        except asyncio.CancelledError:
            self.give_back(ids)
            raise
        except Exception:
            logger.exception("outbox: cannot mark %d delivered items; they are posted again "
                             "when their claims end", len(ids))

    async def close(self) -> None:
        """Commit what is left (an outbox stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self.flush()
