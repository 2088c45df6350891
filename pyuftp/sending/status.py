"""What became of a message's delivery, in words a person on call can act on.

The :class:`~pyuftp.sending.outbox.Outbox` hands each attempt of a stored message to the
courier's deliver function; :class:`Deliveries` remembers the latest attempt per message id
(the item itself, whose attempts, last error and next attempt the outbox updates in place,
and the time and HTTP status of a success), for a bounded number of recent messages. A
request that times out asks it whether its message was delivered at all.
"""
from __future__ import annotations

import collections
import datetime as dt
import time

from ..exceptions import excerpt
from ..store import OutboxItem

#: How many messages' latest attempts are remembered (the oldest are forgotten first).
REMEMBERED = 4096
#: What a refusal's HTTP status asks the person on call to check ({} is the recipient).
HINTS = {
    401: " (does {} know our key, the current one?)",
    419: " ({} cannot look our key up: does it know our domain and role?)",
    404: " (is the endpoint of {} right?)",
}


def _clock(when: float) -> str:
    """A unix time as the UTC wall clock, to the second: what an operator compares logs with."""
    moment = dt.datetime.fromtimestamp(when, dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


class Deliveries:
    """The latest delivery attempt of recent messages, by message id (see the module)."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        self.limit = limit
        self._items: collections.OrderedDict[str, OutboxItem] = collections.OrderedDict()
        self._delivered: dict[str, tuple[float, int]] = {}  # message id -> (time, status)
        self._in_flight: set[str] = set()

    def _remember(self, item: OutboxItem) -> None:
        self._items[item.message_id] = item
        self._items.move_to_end(item.message_id)
        while len(self._items) > self.limit:
            gone, _ = self._items.popitem(last=False)
            self._delivered.pop(gone, None)
            self._in_flight.discard(gone)

    def started(self, item: OutboxItem) -> None:
        """An attempt of ``item`` begins."""
        self._remember(item)
        self._in_flight.add(item.message_id)

    def ended(self, item: OutboxItem, status: int | None) -> None:
        """The attempt ended: with the HTTP ``status`` of a success, or None (it failed; the
        outbox notes the error, the attempts and the next attempt on the item itself)."""
        self._in_flight.discard(item.message_id)
        if status is not None and item.message_id in self._items:
            self._delivered[item.message_id] = (time.time(), status)

    def describe(self, message_id: str, waited: float | None = None) -> str:
        """Whether ``message_id`` was delivered, and what is known: for a timeout's text."""
        delivered = self._delivered.get(message_id)
        item = self._items.get(message_id)
        if delivered is not None and item is not None:
            when, status = delivered
            text = f"delivered at {_clock(when)} with HTTP {status}"
            if waited is not None:
                text += f" and no answer within {waited:g} s"
            # It took our message, so it knows our key; its answer may not reach us
            return (f"{text} (is {excerpt(item.recipient_domain)}'s answer refused by our "
                    "service, see its log, or sent to another endpoint?)")
        if item is None:
            return "not delivered yet: no delivery attempt was made for it in this process"
        tries = f"{item.attempts} attempt{'s' if item.attempts != 1 else ''}"
        last = f"; the last error: {excerpt(item.last_error, 200)}" if item.last_error else ""
        last += HINTS.get(item.last_status or 0, "").format(excerpt(item.recipient_domain))
        if item.state == "failed":
            return f"not delivered: failed for good after {tries}{last}"
        if message_id in self._in_flight:
            return f"not delivered yet: an attempt is under way after {tries}{last}"
        if item.attempts == 0:
            return "not delivered yet: its first attempt is still to come"
        wait = max(0.0, item.next_attempt_at - time.time())
        return (f"not delivered: {tries} failed{last}; the next attempt at "
                f"{_clock(item.next_attempt_at)} (in {wait:.0f} s), retried until "
                f"{_clock(item.expires_at)}")


__all__ = ["Deliveries"]
