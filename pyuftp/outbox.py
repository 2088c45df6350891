"""Background delivery of stored messages, with the spec's retries, until each is delivered or
finally failed.

    outbox = Outbox(SQLiteStore("agr.sqlite"), deliver, on_delivery_failed=alert)
    await outbox.start()             # also resumes what an earlier process left pending
    await outbox.submit(item)        # returns once the item is committed
    ...
    await outbox.stop()

``deliver(item)`` makes one attempt (one POST of ``item.body``) and raises pyuftp's
:class:`~pyuftp.client.TemporaryDeliveryError` or :class:`~pyuftp.client.FinalDeliveryError`.
Temporary failures are retried with exponential back-off and jitter until the item's
``expires_at`` (an hour by default, the spec's minimum); final ones fail at once. Either way a
failed item stays in the store, and ``on_delivery_failed(item, error)`` is told.

Logging (``pyuftp``): a delivery and each retry at INFO, a peer's outage once at WARNING
(not per message), a final failure at ERROR, a bug in ``deliver`` at ERROR with traceback.

Delivery is at least once: a process killed during a POST tries it again after the restart,
so the recipient may see a message twice; UFTP recipients drop repeats by message id.
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
from typing import Any, Awaitable, Callable

from .exceptions import DeliveryError, DeliveryExpired, TemporaryDeliveryError
from .store import OutboxItem, Store, check_item

logger = logging.getLogger("pyuftp")

Peer = tuple[str, str]  # (recipient_domain, recipient_role)
PRUNE_INTERVAL = 60.0  # seconds between two clean-ups of the store


def positive_int(value: Any, name: str) -> int:
    """``value`` if it is an int of 1 or more (not a bool), else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int of 1 or more, not {value!r}")
    return value


def _positive(value: float, name: str, allow_zero: bool = False) -> float:
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
    :param first_backoff: the wait after the first failure; it doubles with each further one,
    :param max_backoff: up to this. Each wait is drawn between 50 % and 100 % of that (full
        jitter, so many senders recovering at once do not hit a peer together), but is at
        least the peer's Retry-After, and never later than the item's expiry.
    :param on_delivery_failed: ``(item, error)``, sync or async, called once per final
        failure (an error from the peer, or expiry: :class:`DeliveryExpired`). Its
        exceptions are logged, never raised. A sync callback runs on the event loop: keep it
        quick.
    :param per_peer: deliveries in flight at once to one (recipient_domain, recipient_role);
        a slow or dead peer ties up only its own slots, never other peers' deliveries.
    :param poll_interval: the longest the loop sleeps before looking at the store again (it
        wakes earlier when an item falls due or is submitted, or a retry is scheduled).
    :param attempt_timeout: seconds after which one ``deliver`` call is abandoned and counted
        as a temporary failure, so a ``deliver`` that never returns cannot hold a slot
        forever (the client's own HTTP timeout is normally much shorter); None: no limit.
    :param batch_size: items read from the store per query.
    :param keep_delivered: seconds a delivered item stays in the store (for inspection) before
        the loop forgets it, so that the store does not grow for ever; failed items are kept
        until you forget them (:meth:`pyuftp.store.Store.forget_outgoing`). None: keep all.
    """

    #: rounds read at most this many batches, so one round stays short with a huge backlog
    MAX_BATCHES_PER_ROUND = 10

    def __init__(self, store: Store, deliver: Callable[[OutboxItem], Awaitable[None]], *,
                 retry_for: float = 3600.0,
                 first_backoff: float = 1.0, max_backoff: float = 300.0,
                 on_delivery_failed: Callable[[OutboxItem, Exception], Any] | None = None,
                 per_peer: int = 16,
                 poll_interval: float = 1.0,
                 attempt_timeout: float | None = 600.0,
                 batch_size: int = 100,
                 keep_delivered: float | None = 3600.0) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"store must be a pyuftp.store.Store, not {type(store).__name__}")
        if not callable(deliver):
            raise TypeError("deliver must be an async callable taking an OutboxItem")
        self.store = store
        self.deliver = deliver
        self.retry_for = _positive(retry_for, "retry_for", allow_zero=True)
        self.first_backoff = _positive(first_backoff, "first_backoff")
        self.max_backoff = _positive(max_backoff, "max_backoff")
        if self.max_backoff < self.first_backoff:
            raise ValueError("max_backoff must not be smaller than first_backoff")
        self.on_delivery_failed = on_delivery_failed
        self.per_peer = positive_int(per_peer, "per_peer")
        self.poll_interval = _positive(poll_interval, "poll_interval")
        self.attempt_timeout = (None if attempt_timeout is None
                                else _positive(attempt_timeout, "attempt_timeout"))
        self.batch_size = positive_int(batch_size, "batch_size")
        self.keep_delivered = (None if keep_delivered is None
                               else _positive(keep_delivered, "keep_delivered", allow_zero=True))
        self._next_prune = 0.0
        # A peer's items beyond its free slots wait here (fetched once, not re-read per
        # round). A peer whose queue is full is "saturated": the store is not asked for more
        # of its items until the queue has half drained, so a backlog of thousands for one
        # peer costs neither memory nor a longer query per round.
        self._queue_cap = max(16, 4 * per_peer)
        self._saturated: set[Peer] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()        # deliveries and callbacks
        self._in_flight: dict[int, Peer] = {}               # item id -> its peer
        self._busy: dict[Peer, int] = {}                    # peer -> deliveries in flight
        self._queued: dict[Peer, collections.deque[OutboxItem]] = {}
        self._cooldown: dict[int, float] = {}  # ids whose outcome could not be stored: until
        self._retry_times: list[float] = []    # heap: retries this outbox scheduled
        self._quick_rounds = 0
        self._failing: set[Peer] = set()      # peers whose outage was logged already
        self._stopping = False

    # --- public --------------------------------------------------------------------------

    def expires_at(self, created_at: float) -> float:
        """When an item created at ``created_at`` is given up: ``created_at + retry_for``."""
        return created_at + self.retry_for

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    async def start(self) -> None:
        """Start the delivery loop (idempotent). Items left pending by an earlier process are
        due (or fall due) like any other and are delivered too."""
        if self.running:
            return
        self._stopping = False
        self._quick_rounds = 0
        # events belong to the running loop: made here, not in __init__
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="pyuftp-outbox")
        logger.debug("outbox started (%r)", self.store)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop; deliveries in flight get ``timeout`` seconds to finish, then are
        cancelled and left pending in the store (the next start sends them again)."""
        if self._loop_task is None:
            return
        self._stopping = True
        self._loop_task.cancel()
        await asyncio.gather(self._loop_task, return_exceptions=True)
        self._loop_task = None
        # queued items are pending in the store still: nothing is lost by dropping them
        self._queued.clear()
        self._saturated.clear()
        tasks = set(self._tasks)
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=max(0.0, timeout))
            if unfinished:
                logger.warning("outbox stopping: %d deliveries unfinished after %.1fs; they stay "
                               "pending", len(unfinished), timeout)
                for task in unfinished:
                    task.cancel()
                # bounded: a deliver that swallows cancellation must not hang stop()
                await asyncio.wait(unfinished, timeout=1.0)
        self._tasks.clear()
        self._in_flight.clear()
        self._busy.clear()
        self._cooldown.clear()
        self._retry_times.clear()

    async def submit(self, item: OutboxItem) -> int:
        """Commit ``item`` to the store, then wake the loop; return its id once committed.

        An item submitted before :meth:`start` (or after :meth:`stop`) waits in the store.
        """
        check_item(item)  # whatever the Store implementation checks itself
        item_id = await self.store.call(self.store.add_outgoing, item)
        item.id = item_id
        peer = (item.recipient_domain, item.recipient_role)
        if self.running and not self._stopping and self._busy.get(peer, 0) < self.per_peer:
            # The common case: a free slot, so deliver now rather than on the loop's next
            # read of the store (a round trip through it per message).
            self._launch(item, peer)
        else:
            self._wake_up()
        return item_id

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight and no pending item falls due within ``timeout``
        (everything is delivered, finally failed, or scheduled later than that); False if
        that did not happen in time. For tests and demos."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while True:
            if self._progress is not None:
                self._progress.clear()  # before looking: a change after this wakes us
            remaining = deadline - loop.time()
            if not (self._in_flight or any(self._queued.values())):
                next_due = await self.store.call(self.store.next_due_time)
                if next_due is None or next_due > time.time() + remaining:
                    return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            pause = min(remaining, 0.1)
            if self._progress is None:
                await asyncio.sleep(pause)
            else:
                await _wait(self._progress, pause)

    # --- the loop --------------------------------------------------------------------------

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _signal_progress(self) -> None:
        if self._progress is not None:
            self._progress.set()

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            self._wake.clear()  # before the round: a submit during it wakes the next sleep
            try:
                await self._prune()
                sleep_for = await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox: cannot read the store; trying again in %.1fs",
                                 self.poll_interval)
                sleep_for = self.poll_interval
            self._signal_progress()
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
        """Start the deliveries that are due and have a free slot; return how long to sleep."""
        now = time.time()
        for item_id, until in list(self._cooldown.items()):
            if until <= now:
                del self._cooldown[item_id]
        exclude = set(self._in_flight) | set(self._cooldown)
        for queue in self._queued.values():
            exclude.update(item.id for item in queue if item.id is not None)
        more = False
        for _ in range(self.MAX_BATCHES_PER_ROUND):
            batch = await self.store.call(self.store.due_outgoing, now, self.batch_size,
                                          frozenset(exclude), frozenset(self._saturated))
            for item in batch:
                exclude.add(item.id)
                self._take(item)
            if len(batch) < self.batch_size:
                break
        else:
            more = True  # a large backlog: read on soon, after the event loop had a turn
        if more:
            return 0.01
        waits = [self.poll_interval]
        next_due = await self.store.call(self.store.next_due_time)
        now = time.time()
        while self._retry_times and self._retry_times[0] <= now:
            heapq.heappop(self._retry_times)
        if self._retry_times:
            waits.append(self._retry_times[0] - now)
        if self._cooldown:
            waits.append(min(self._cooldown.values()) - now)
        quick = False
        if next_due is not None:
            if next_due > now:
                waits.append(next_due - now)
            elif not (exclude or self._cooldown) and self._quick_rounds < 3:
                # nothing of ours is in the way: it fell due during this round; look again
                # at once (but not over and over, should the clock have stepped back)
                waits.append(0.005)
                quick = True
            # else: it is (probably) one of ours in flight or waiting for a slot; a finished
            # delivery launches the next queued one, a saturated peer whose queue drains
            # wakes us, and poll_interval bounds the rest
        self._quick_rounds = self._quick_rounds + 1 if quick else 0
        return max(0.0, min(waits))

    def _take(self, item: OutboxItem) -> None:
        if item.id in self._in_flight:
            return  # submit() launched it while the store was being read
        peer = (item.recipient_domain, item.recipient_role)
        if self._busy.get(peer, 0) < self.per_peer:
            self._launch(item, peer)
            return
        queue = self._queued.setdefault(peer, collections.deque())
        if len(queue) < self._queue_cap:
            queue.append(item)
        else:
            self._saturated.add(peer)  # the item stays pending in the store, read again later

    def _launch(self, item: OutboxItem, peer: Peer) -> None:
        assert item.id is not None
        self._busy[peer] = self._busy.get(peer, 0) + 1
        self._in_flight[item.id] = peer
        task = asyncio.get_running_loop().create_task(self._attempt(item, peer),
                                                      name=f"pyuftp-deliver-{item.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release(self, item: OutboxItem, peer: Peer) -> None:
        """A delivery ended (its outcome stored): free its slot for the peer's next item."""
        assert item.id is not None
        self._in_flight.pop(item.id, None)
        left = self._busy.get(peer, 1) - 1
        if left > 0:
            self._busy[peer] = left
        else:
            self._busy.pop(peer, None)
        if not self._stopping:
            queue = self._queued.get(peer)
            if queue:
                self._launch(queue.popleft(), peer)
            if not queue:
                self._queued.pop(peer, None)
            if peer in self._saturated and len(queue or ()) <= self._queue_cap // 2:
                self._saturated.discard(peer)
                self._wake_up()  # read the peer's further items from the store again
        # No wake-up otherwise: the next queued item is launched right here, and a round per
        # delivery would re-read the store for nothing (costly with a large backlog).
        self._signal_progress()

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
                # ours (attempt_timeout) or one deliver let through: temporary either way
                error = TemporaryDeliveryError(f"timed out delivering {item.message_id}")
            except Exception as exc:  # noqa: BLE001 - every failure must become an outcome
                error = exc
            try:
                failure = await self._record(item, error)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The outcome is not stored, so the item is still pending: leave it alone for
                # a while rather than posting it again at once (a repeat is a duplicate).
                logger.exception("outbox: cannot store the outcome for item %d (%s)",
                                 item.id, item.message_id)
                assert item.id is not None
                self._cooldown[item.id] = time.time() + max(self.first_backoff, self.poll_interval)
                self._wake_up()
        finally:
            self._release(item, peer)
        if failure is not None:
            await self._tell_failed(*failure)

    async def _record(self, item: OutboxItem,
                      error: Exception | None) -> tuple[OutboxItem, Exception] | None:
        """Store the outcome of one attempt; return (item, error) for a final failure."""
        assert item.id is not None
        who = f"{item.message_type} {item.message_id} to {item.recipient_domain} ({item.recipient_role})"
        if error is None:
            await self.store.call(self.store.mark_delivered, item.id)
            item.state = "delivered"
            peer = (item.recipient_domain, item.recipient_role)
            if peer in self._failing:
                self._failing.discard(peer)
                logger.info("delivering to %s (%s) works again", peer[0], peer[1])
            logger.info("delivered %s after %d failed attempts", who, item.attempts)
            return None
        status = error.status if isinstance(error, DeliveryError) else None
        if isinstance(error, DeliveryError) and not error.temporary:
            return await self._fail(item, error, error, who)
        if not isinstance(error, DeliveryError):
            # a bug in deliver, not the peer's doing: show where, then retry like a 5xx
            logger.error("unexpected error delivering %s; treated as temporary", who,
                         exc_info=error)
        attempts = item.attempts + 1
        now = time.time()
        if now >= item.expires_at:
            expired = DeliveryExpired(
                f"gave up on {who} after {attempts} attempts over {now - item.created_at:.0f}s; "
                f"last error: {_describe(error)}", error, status=status,
                url=getattr(error, "url", None))
            expired.__cause__ = error
            item.attempts = attempts
            return await self._fail(item, expired, error, who)
        retry_after = error.retry_after if isinstance(error, DeliveryError) else None
        next_at = min(now + self._delay(attempts, retry_after), item.expires_at)
        await self.store.call(self.store.mark_retry, item.id, attempts, next_at,
                              _describe(error), status)
        item.attempts, item.next_attempt_at = attempts, next_at
        item.last_error, item.last_status = _describe(error), status
        heapq.heappush(self._retry_times, next_at)
        self._wake_up()  # the loop may be sleeping past this retry: let it look again
        # One warning per peer outage, not per message and attempt: a peer that is down for
        # an hour with a thousand messages queued must not flood the log (or a stderr pipe).
        peer = (item.recipient_domain, item.recipient_role)
        if peer not in self._failing:
            self._failing.add(peer)
            logger.warning("cannot deliver to %s (%s): %s; retrying (further failures are "
                           "logged at INFO)", peer[0], peer[1], _describe(error))
        logger.info("delivering %s failed (attempt %d): %s; next attempt in %.2fs",
                    who, attempts, _describe(error), next_at - now)
        return None

    async def _fail(self, item: OutboxItem, reported: Exception, cause: Exception,
                    who: str) -> tuple[OutboxItem, Exception]:
        assert item.id is not None
        status = getattr(cause, "status", None)
        await self.store.call(self.store.mark_failed, item.id, _describe(reported), status)
        item.state, item.last_error, item.last_status = "failed", _describe(reported), status
        logger.error("delivering %s failed for good: %s", who, _describe(reported))
        return item, reported

    def _delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before attempt ``attempts + 1``: exponential, full jitter in [50 %, 100 %],
        at least ``retry_after`` (the peer's Retry-After) when given."""
        base = min(self.max_backoff, self.first_backoff * 2.0 ** min(max(attempts - 1, 0), 64))
        delay = random.uniform(base / 2, base)
        if retry_after is not None and math.isfinite(retry_after) and retry_after > delay:
            delay = retry_after
        return delay

    async def _tell_failed(self, item: OutboxItem, error: Exception) -> None:
        if self.on_delivery_failed is None:
            return
        try:
            result = self.on_delivery_failed(item, error)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("on_delivery_failed raised for %s %s", item.message_type,
                             item.message_id)


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


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
