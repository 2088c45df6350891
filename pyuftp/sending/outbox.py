"""Background delivery of stored messages until each is delivered or finally failed.

    outbox = Outbox(SQLiteStore("agr.sqlite"), deliver, on_delivery_failed=alert)
    await outbox.start()             # also resumes what an earlier process left pending
    await outbox.submit(item)        # returns once the item is committed
    await outbox.stop()

``deliver(item)`` makes one attempt and raises a ``TemporaryDeliveryError`` (retried with
back-off until the item expires, an hour by default) or a ``FinalDeliveryError`` (failed at
once); a failed item stays in the store and ``on_delivery_failed(item, error)`` is told. The
outbox *claims* what it delivers, so two outboxes on one database never deliver an item both
while the claim lasts: an item submitted is stored claimed when it goes out at once (or
waits in its peer's queue here), others by :meth:`pyuftp.store.OutboxStore.claim_due`. The
"delivered" marks are committed with the next item stored, or several together
(:mod:`pyuftp.sending.marks`). Delivery is at least once: a POST cut off by a crash, or
whose mark a crash lost, is made again after the restart; recipients drop repeats by id.
Logging: deliveries and retries at INFO, a peer's outage once at WARNING, final failures at
ERROR.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .attempts import Backoff, Outcomes, Peer
from .._shared import positive_int
from ..exceptions import TemporaryDeliveryError
from ..store import OutboxItem, Store
from .marks import DeliveredMarks
from .observe import NO_OBSERVER, Observer

logger = logging.getLogger(__name__)

PRUNE_INTERVAL = 60.0  # seconds between two clean-ups of the store


def _seconds(value: Any, name: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"number of seconds, not {value!r}")
    return float(value)


class Outbox:
    """Delivers stored messages in the background until each is delivered or finally failed.

    :param store: where items are kept (:class:`pyuftp.store.Store`).
    :param deliver: ``async deliver(item)``: one attempt; raises a ``DeliveryError`` (any
        other exception counts as a temporary failure and is logged with its traceback).
    :param retry_for: seconds from creation during which temporary failures are retried
        (:meth:`expires_at`); the spec asks for at least an hour.
    :param first_backoff, max_backoff: the waits between attempts (see :class:`Backoff`);
        never later than the item's expiry.
    :param on_delivery_failed: ``(item, error)``, sync or async, called once per final
        failure (an error from the peer, or expiry: :class:`DeliveryExpired`). Its
        exceptions are logged, never raised; a sync callback runs on the event loop.
    :param per_peer: deliveries in flight at once to one (recipient_domain, recipient_role):
        a slow or dead peer ties up only its own slots.
    :param poll_interval: the longest the loop sleeps before looking at the store again.
    :param attempt_timeout: seconds after which one ``deliver`` call is abandoned and counted
        as a temporary failure (the HTTP timeout is normally much shorter).
    :param lease: seconds an item stays claimed by this outbox while it delivers it (longer
        than ``attempt_timeout``). An item whose outcome could not be stored stays claimed
        until then, so it is not posted again at once.
    :param batch_size: items claimed per query.
    :param keep_delivered: seconds a delivered item stays in the store (for inspection)
        before the loop forgets it; failed items are kept until you forget them. None: all.
    """

    #: rounds claim at most this many batches, so one round stays short with a huge backlog
    MAX_BATCHES_PER_ROUND = 10
    metrics: Observer = NO_OBSERVER  # (#21) a service with metrics=True sets its own

    def __init__(self, store: Store, deliver: Callable[[OutboxItem], Awaitable[None]], *,
                 retry_for: float = 3600.0, first_backoff: float = 1.0,
                 max_backoff: float = 300.0,
                 on_delivery_failed: Callable[[OutboxItem, Exception], Any] | None = None,
                 per_peer: int = 16, poll_interval: float = 1.0,
                 attempt_timeout: float = 600.0, lease: float | None = None,
                 batch_size: int = 100, keep_delivered: float | None = 3600.0) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"store must be a pyuftp.store.Store, not {type(store).__name__}")
        if not callable(deliver):
            raise TypeError("deliver must be an async callable taking an OutboxItem")
        self.store = store
        self.deliver = deliver
        self.retry_for = _seconds(retry_for, "retry_for", allow_zero=True)
        self.backoff = Backoff(_seconds(first_backoff, "first_backoff"),
                               _seconds(max_backoff, "max_backoff"))
        self.outcomes = Outcomes(store, self.backoff, on_delivery_failed)
        self.per_peer = positive_int(per_peer, "per_peer")
        self.poll_interval = _seconds(poll_interval, "poll_interval")
        self.attempt_timeout = _seconds(attempt_timeout, "attempt_timeout")
        self.lease = _seconds(lease if lease is not None else self.attempt_timeout + 60, "lease")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.keep_delivered = (None if keep_delivered is None
                               else _seconds(keep_delivered, "keep_delivered", allow_zero=True))
        self._next_prune = 0.0
        # A peer's claimed items beyond its free slots wait here. A peer whose queue is full
        # is "saturated": no more of its items are claimed until the queue has half drained,
        # so a backlog of thousands for one peer costs neither memory nor longer queries.
        self._queue_cap = max(16, 4 * per_peer)
        self._queued: dict[Peer, collections.deque[OutboxItem]] = {}
        self._saturated: set[Peer] = set()
        self._in_flight: dict[int, Peer] = {}               # item id -> its peer
        self._busy: collections.Counter[Peer] = collections.Counter()  # deliveries in flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._stopping = False
        self._quick_rounds = 0
        self._marks = DeliveredMarks(store)
        self.outcomes.mark_delivered = self._marks.add

    # --- public ----------------------------------------------------------------------------

    def expires_at(self, created_at: float) -> float:
        """When an item created at ``created_at`` is given up: ``created_at + retry_for``."""
        return created_at + self.retry_for

    def backlog(self, peer: Peer) -> int:
        """Items for ``peer`` not yet delivered or failed: those pending in the store when the
        outbox started (:meth:`~pyuftp.store.OutboxStore.pending_counts`), so the figure
        survives a restart, plus those submitted since."""
        return self.outcomes.backlog.get(peer, 0)

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    async def start(self) -> None:
        """Start the delivery loop (idempotent). Items left pending by an earlier process are
        due (or fall due) like any other and are delivered too, and count in
        :meth:`backlog`."""
        if self.running:
            return
        # What the store holds pending is the backlog (this process's count and an earlier
        # one's alike); it replaces the count, which covers items submitted before start.
        counts = await self.store.call(self.store.pending_counts)
        if self.running:
            return  # another start() got there while the store was read
        self.outcomes.backlog.clear()
        self.outcomes.backlog.update(counts)
        self._stopping, self._quick_rounds = False, 0
        self._wake, self._progress = asyncio.Event(), asyncio.Event()  # of the running loop
        self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="pyuftp-outbox")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop; deliveries in flight get ``timeout`` seconds to finish, then are
        cancelled and left pending (the next start sends them again). Claims of items not
        yet attempted are released, so they are due again at once."""
        if self._loop_task is None:
            return
        self._stopping = True
        self._loop_task.cancel()
        await asyncio.gather(self._loop_task, return_exceptions=True)
        self._loop_task = None
        unattempted = [item.id for queue in self._queued.values() for item in queue
                       if item.id is not None]
        self._queued.clear()
        self._saturated.clear()
        if self._tasks:
            _, unfinished = await asyncio.wait(set(self._tasks), timeout=max(0.0, timeout))
            if unfinished:
                logger.warning("outbox stopping: %d deliveries unfinished after %.1fs; they "
                               "stay pending", len(unfinished), timeout)
                unattempted += list(self._in_flight)  # cut off: pending, due again
                for task in unfinished:
                    task.cancel()
                await asyncio.wait(unfinished, timeout=1.0)  # bounded, whatever deliver does
        try:
            if unattempted:
                await self.store.call(self.store.release, unattempted)
        except Exception:  # their claims expire by themselves
            logger.exception("outbox: cannot release %d claims", len(unattempted))
        await self._marks.close()
        self._tasks.clear()
        self._in_flight.clear()
        self._busy.clear()

    async def submit(self, item: OutboxItem, *, answers: tuple[str, str] | None = None,
                     archive: Any = None, outcome: tuple[str, str | None] | None = None) -> int:
        """Commit ``item`` to the store, then deliver it (now, if its peer has a free slot);
        return its id once committed.

        ``answers=(sender_domain, message_id)``: the item answers that received message,
        which the same transaction marks handled (one answer per request, even across a
        crash); ``archive`` (an :class:`~pyuftp.store.ArchivedMessage`) and ``outcome``
        (result, reasons of the answered message) go into the archive in that transaction
        too. An item submitted before :meth:`start` waits in the store.
        """
        extra: dict[str, Any] = {key: value for key, value in (
            ("answers", answers), ("archive", archive), ("outcome", outcome)) if value is not None}
        peer = (item.recipient_domain, item.recipient_role)
        # A free slot, or room in the peer's queue: store it claimed by us and deliver it
        # from memory, rather than on the loop's next claim (a transaction of its own).
        room = len(self._queued.get(peer, ())) < self._queue_cap
        if take := self.running and not self._stopping and (self._busy[peer] < self.per_peer
                                                              or room):
            extra["claim"] = self.lease
        if marks := self._marks.take():  # the delivered marks so far ride on this commit
            extra["delivered"] = marks
        add = functools.partial(self.store.add_outgoing, **extra)
        try:
            item.id = await self.store.call(add, item)
        except BaseException:
            self._marks.give_back(marks)
            raise
        self.outcomes.backlog[peer] += 1
        if take and self.running and not self._stopping and self._take(item, submitted=True):
            return item.id
        if take:  # stopped meanwhile: due again at once
            await self.store.call(self.store.release, [item.id])
        self._wake_up()  # for claim_due
        return item.id

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight and no pending item falls due within ``timeout``
        (everything is delivered, finally failed, or scheduled later); False if that did not
        happen in time. For tests and demos."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while True:
            if self._progress is not None:
                self._progress.clear()  # before looking: a change after this wakes us
            if not (self._in_flight or any(self._queued.values()) or len(self._marks)):
                next_due = await self.store.call(self.store.next_due_time)
                if next_due is None or next_due > time.time() + deadline - loop.time():
                    return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._progress is None:
                await asyncio.sleep(min(remaining, 0.1))
            else:
                await _wait(self._progress, min(remaining, 0.1))

    # --- the loop --------------------------------------------------------------------------

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None and self._progress is not None
        while not self._stopping:
            self._wake.clear()  # before the round: a submit during it wakes the next sleep
            try:
                await self._prune()
                sleep_for = await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.store_error("claim")
                logger.exception("outbox: cannot read the store; trying again in %.1fs",
                                 self.poll_interval)
                sleep_for = self.poll_interval
            self._progress.set()
            await _wait(self._wake, sleep_for)

    async def _prune(self) -> None:
        """Forget delivered items older than ``keep_delivered``, once a minute at most."""
        now = time.time()
        if self.keep_delivered is None or now < self._next_prune:
            return
        self._next_prune = now + PRUNE_INTERVAL
        forgotten = await self.store.call(self.store.forget_outgoing, now - self.keep_delivered)
        if forgotten:
            logger.debug("outbox: forgot %d delivered items", forgotten)

    async def _round(self) -> float:
        """Claim and start the deliveries that are due; return how long to sleep."""
        now = time.time()
        for _ in range(self.MAX_BATCHES_PER_ROUND):
            batch = await self.store.call(self.store.claim_due, now, self.batch_size, self.lease,
                                          frozenset(self._saturated))
            overflow = [item.id for item in batch if not self._take(item) and item.id is not None]
            if overflow:  # a peer's queue filled up: let those be claimed again later
                await self.store.call(self.store.release, overflow)
            if len(batch) < self.batch_size:
                break
        else:
            return 0.01  # a large backlog: claim on soon, after the event loop had a turn
        waits = [self.poll_interval]
        next_due = await self.store.call(self.store.next_due_time)
        now = time.time()
        next_retry = self.outcomes.next_retry(now)
        if next_retry is not None:
            waits.append(next_retry - now)
        quick = False
        if next_due is not None:
            if next_due > now:
                waits.append(next_due - now)
            elif not self._saturated and self._quick_rounds < 3:
                # it fell due during this round: look again at once (not over and over,
                # should the clock have stepped back); a saturated peer's items wait for its
                # queue to drain, which wakes the loop
                waits.append(0.005)
                quick = True
        self._quick_rounds = self._quick_rounds + 1 if quick else 0
        return max(0.0, min(waits))

    def _take(self, item: OutboxItem, submitted: bool = False) -> bool:
        """Deliver a claimed item now or queue it; False when its peer's queue is full (not
        for one ``submitted`` with room: queued, past the cap by concurrent submits at most)."""
        if item.id in self._in_flight:
            return True  # submit() launched it while the store was being read
        peer = (item.recipient_domain, item.recipient_role)
        if self._busy[peer] < self.per_peer:
            self._launch(item, peer)
            return True
        queue = self._queued.setdefault(peer, collections.deque())
        if len(queue) < self._queue_cap or submitted:
            queue.append(item)
            return True
        self._saturated.add(peer)
        return False

    def _launch(self, item: OutboxItem, peer: Peer) -> None:
        assert item.id is not None
        self._busy[peer] += 1
        self._in_flight[item.id] = peer
        task = asyncio.get_running_loop().create_task(self._attempt(item, peer),
                                                      name=f"pyuftp-deliver-{item.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release(self, item: OutboxItem, peer: Peer) -> None:
        """A delivery ended: free its slot for the peer's next queued item."""
        assert item.id is not None
        self._in_flight.pop(item.id, None)
        self._busy[peer] -= 1
        if self._busy[peer] <= 0:
            del self._busy[peer]
        if not self._stopping:
            queue = self._queued.get(peer)
            if queue:
                self._launch(queue.popleft(), peer)
            if not queue:
                self._queued.pop(peer, None)
            if peer in self._saturated and len(queue or ()) <= self._queue_cap // 2:
                self._saturated.discard(peer)
                self._wake_up()  # claim the peer's further items again
        if self._progress is not None:
            self._progress.set()

    async def _attempt(self, item: OutboxItem, peer: Peer) -> None:
        failure: tuple[OutboxItem, Exception] | None = None
        try:
            error: Exception | None = None
            try:
                # asyncio.timeout, not wait_for: it never swallows stop()'s cancellation
                async with asyncio.timeout(self.attempt_timeout):
                    await self.deliver(item)
            except asyncio.CancelledError:
                raise  # stop(): the item stays pending
            except asyncio.TimeoutError:
                error = TemporaryDeliveryError(f"timed out delivering {item.message_id}")
            except Exception as exc:  # noqa: BLE001 - every failure must become an outcome
                error = exc
            try:
                failure = await self.outcomes.record(item, error)
                self.metrics.attempted(item.message_type, item.recipient_domain, item.state)
                if failure is None and item.state == "pending":
                    self._wake_up()  # the loop may be sleeping past this retry
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.store_error("outcome")
                # Not stored: the item stays pending and claimed until its lease ends, so it
                # is not posted again at once (a repeat is a duplicate at the recipient).
                logger.exception("outbox: cannot store the outcome for item %d (%s); it is "
                                 "tried again in %.0f s", item.id, item.message_id, self.lease)
        finally:
            self._release(item, peer)
        if failure is not None:
            await self.outcomes.tell_failed(*failure)


async def _wait(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` passes.

    Not ``asyncio.wait_for``: on Python 3.11 it can swallow a cancellation that arrives just
    as the event is set, and then :meth:`Outbox.stop` would wait for a loop that never ends.
    """
    if event.is_set():
        return
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=max(0.0, timeout))
    finally:
        waiter.cancel()
