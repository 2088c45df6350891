"""Admission to an :class:`~pyuftp.receiving.inbox.Inbox`: at most so many messages being
handled at once, the next ones waiting their turn, first come first served, for a while."""
from __future__ import annotations

import asyncio

from .._shared import positive_int


class Admission:
    """At most ``size`` messages being handled at once; the next ones wait first in, first
    out, each at most ``timeout`` seconds (then :meth:`enter` returns False: answer 503)."""

    def __init__(self, size: int, timeout: float) -> None:
        self.size, self.timeout, self.inside = positive_int(size, "max_pending"), timeout, 0
        self._queue: list[asyncio.Future[None]] = []

    async def enter(self) -> bool:
        if self.inside < self.size and not self._queue:
            self.inside += 1
            return True
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        try:
            async with asyncio.timeout(self.timeout):
                await turn
        except TimeoutError:
            if turn.done() and not turn.cancelled():
                self.leave()  # our turn came just as the time ran out: pass it on
            return False
        finally:
            if turn in self._queue:
                self._queue.remove(turn)
        return True

    def leave(self) -> None:
        """A message is handled: the longest-waiting one takes over its slot."""
        while self._queue:
            turn = self._queue.pop(0)
            if not turn.done():
                turn.set_result(None)
                return
        self.inside = max(0, self.inside - 1)
