"""The store's contract: what every backend (SQLite, memory, later PostgreSQL) implements.

A store keeps what pyuftp must not lose: the outbox (:class:`OutboxStore`, messages to
deliver), the journal (:class:`Journal`, the messages received: the duplicate defence, and
which ones were answered 200 but not yet handled, to handle after a crash) and the archive
(:class:`Archive`, every message sent and received, for audits and settlement).

Rules for every implementation:

- Every method that changes state does so in one transaction: when it returns, the whole
  change is committed (and survives what the implementation promises to survive); when it
  raises, nothing of it was written.
- Arguments are checked before anything is written (:mod:`pyuftp.store.checks`): bad input
  raises TypeError or ValueError naming the argument. An unknown item or message raises
  KeyError. A store that cannot do its job (closed, full, corrupt, locked, unreachable)
  raises :class:`~pyuftp.exceptions.StoreError`, and nothing else of its own (no driver
  exceptions leak out).
- Methods may be called from several threads at once.
- Items and records handed out are copies: changing them changes nothing stored.
"""
from __future__ import annotations

import abc
import asyncio
import contextlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self, TypeVar, overload

from ..exceptions import StoreError
from .records import ArchivedMessage, OutboxItem
from .summary import OutboxSummary, summarize

__all__ = ["ArchivedMessage", "OutboxItem", "OutboxStore", "Journal", "Archive", "Store"]

T = TypeVar("T")

STATES = ("pending", "delivered", "failed")
RECEIVED_RESULTS = ("new", "duplicate", "conflict")
DIRECTIONS = ("out", "in")  # also the order in which Archive.find looks when not told
OUTCOMES = ("Accepted", "Rejected", "Revoked")


class OutboxStore(abc.ABC):
    """The outbox: messages to deliver, each ``pending`` until it is ``delivered`` or
    ``failed``. Item ids ascend in the order items were stored and are never reused.

    A pending item may be *claimed* until some time (:meth:`claim_due`): while the claim
    lasts no other caller gets it from :meth:`claim_due`, so that two outboxes (later, two
    processes on one database) do not deliver it both. A claim ends when it expires, when it
    is released (:meth:`release`) or when the item is marked (delivered, retry, failed).
    """

    @abc.abstractmethod
    def add_outgoing(self, item: OutboxItem, *, answers: tuple[str, str] | None = None,
                     archive: ArchivedMessage | None = None,
                     outcome: tuple[str, str | None] | None = None,
                     claim: float | None = None, delivered: Collection[int] = ()) -> int:
        """Store a checked copy of a new ``item`` (its ``id`` must be None), unclaimed, in
        one transaction; return its id, which is also set on ``item.id``.

        ``claim`` (seconds, > 0): store it claimed by the caller until ``now + claim``
        instead, as if :meth:`claim_due` had returned it: the caller delivers it at once,
        without a claim_due transaction. ``delivered``: ids of items marked delivered in the
        same transaction, as :meth:`mark_delivered_many` does (the outbox's marks of
        earlier items, carried by the next write rather than a transaction each).

        With ``answers=(sender_domain, message_id)``, the same transaction marks that received
        message handled, exactly as :meth:`Journal.mark_handled` does: the item is a response
        to it. Then a crash cannot leave the request unhandled with its response queued (it
        would be answered twice after the restart) nor handled without its response: both
        changes are committed, or neither. KeyError, and nothing stored, if that received
        message is unknown.

        ``archive``: the message as the archive keeps it (``Archive.archive``), and
        ``outcome=(result, reasons)``: the outcome of the answered message, set in the archive
        if it is there (``Archive.set_outcome``) — both in the same transaction, so that
        answering a message costs one commit."""

    @abc.abstractmethod
    def claim_due(self, now: float, limit: int = 100, lease: float = 300.0,
                  exclude_peers: Collection[tuple[str, str]] = ()) -> list[OutboxItem]:
        """Claim and return the pending items due at ``now``: ``next_attempt_at <= now``
        and not claimed (never, or the claim ended: ``claimed_until <= now``), lowest id
        first, at most ``limit`` (1 or more), leaving out the items whose
        ``(recipient_domain, recipient_role)`` is in ``exclude_peers``.

        In the same transaction each returned item is claimed until ``now + lease``
        (``lease`` > 0 seconds): no caller of :meth:`claim_due`, in this process or another
        sharing the store, gets it again until then, unless it is released or marked first.
        The caller should mark each item it got (or release it) well within the lease."""

    @abc.abstractmethod
    def release(self, item_ids: Iterable[int]) -> None:
        """End the claims of these items, so that they are due again at once (at their
        ``next_attempt_at``): e.g. an outbox stopping with items claimed but not attempted.
        Ids that are unknown or not pending are ignored. One transaction."""

    @abc.abstractmethod
    def next_due_time(self) -> float | None:
        """The earliest time at which :meth:`claim_due` may return a pending item: the
        minimum over the pending items of ``max(next_attempt_at, claimed_until)``; None when
        there are no pending items."""

    @abc.abstractmethod
    def mark_delivered(self, item_id: int) -> None:
        """The recipient accepted the item (KeyError for an unknown id): its state becomes
        ``delivered`` whatever it was, its claim ends and its ``body`` is dropped (the bulk of
        an item, no longer needed; the rest is kept for inspection). One transaction."""

    def mark_delivered_many(self, item_ids: Iterable[int]) -> None:
        """:meth:`mark_delivered` for each of ``item_ids`` in one transaction; unknown ids
        are ignored (an item forgotten meanwhile). The outbox marks the items it delivered
        together: one commit for several deliveries.

        Not abstract: this fallback marks them one by one."""
        for item_id in sorted(set(item_ids)):
            with contextlib.suppress(KeyError):
                self.mark_delivered(item_id)

    @abc.abstractmethod
    def mark_retry(self, item_id: int, attempts: int, next_attempt_at: float, error: str,
                   status: int | None) -> None:
        """An attempt failed temporarily: record ``attempts``, ``error`` (cut to 2000
        characters) and ``status`` (None or 100-999), try again at ``next_attempt_at``, and
        end the claim. Only a pending item changes; a delivered or failed one stays as it is
        (another process decided) and a warning is logged. KeyError for an unknown id."""

    @abc.abstractmethod
    def mark_failed(self, item_id: int, error: str, status: int | None) -> None:
        """Give up on a pending item: it becomes ``failed`` (kept for inspection, body and
        all) and its claim ends. A delivered or failed item stays as it is (a warning is
        logged). KeyError for an unknown id."""

    @abc.abstractmethod
    def outgoing(self, state: str | None = None) -> list[OutboxItem]:
        """All items (or those in ``state``, one of :data:`STATES`), lowest id first, for
        inspection. Claimed or not makes no difference here. Pending items are always all
        kept; a backend may bound how many delivered or failed ones it keeps (it says so)."""

    @abc.abstractmethod
    def pending_counts(self) -> dict[tuple[str, str], int]:
        """How many items are pending (not yet delivered or failed), per
        ``(recipient_domain, recipient_role)``; peers with none are left out. One query
        (SQL: a GROUP BY on the state index): an outbox seeds its per-peer backlog from it
        when it starts, so that a limit on the backlog survives a restart."""

    @abc.abstractmethod
    def forget_outgoing(self, before: float, state: str = "delivered") -> int:
        """Delete the items in ``state`` (delivered or failed; never pending: ValueError)
        last changed (stored or marked; claims do not count) before ``before`` (unix time);
        return how many. Without this the outbox only grows."""

    def retry_outgoing(self, item_id: int, next_attempt_at: float, expires_at: float) -> None:
        """Try a failed (or pending) item again: it becomes ``pending``, due at
        ``next_attempt_at`` and given up at ``expires_at`` (unix times), its claim ended; its
        ``attempts`` and last error stay for inspection. For an operator (``pyuftp outbox
        retry``) after the peer's outage is over. ValueError for a delivered item (nothing to
        retry), KeyError for an unknown id. One transaction.

        Not abstract, so that a backend written before it still loads: such a backend
        raises NotImplementedError until it implements it."""
        raise NotImplementedError(f"{type(self).__name__} cannot retry outbox items")

    def outbox_summary(self) -> OutboxSummary:
        """Pending and failed item counts and the oldest pending item's ``created_at``, in one
        read (a SQL query on the state index): for metrics and health checks, so it must be
        cheap. Not abstract: this fallback reads every pending and failed item."""
        return summarize(self.outgoing("pending"), self.outgoing("failed"))


class Journal(abc.ABC):
    """The messages received, by ``(sender_domain, message_id)``: each recorded before the
    sender gets its HTTP 200, with the digest of its content (the duplicate defence) and,
    until it is handled, its data (to handle it after a restart). Unhandled records are
    always kept; a backend may bound how many handled ones it keeps (it says so)."""

    @abc.abstractmethod
    def record_received(self, sender_domain: str, message_id: str, digest: str, data: bytes,
                        received_at: float, *, archive: ArchivedMessage | None = None) -> str:
        """Atomically, one of :data:`RECEIVED_RESULTS`: ``"new"`` (recorded now, with
        ``data``, not yet handled), ``"duplicate"`` (this id with this digest is recorded
        already) or ``"conflict"`` (this id with another digest; the stored record is left
        alone). Two concurrent calls with one key never both return ``"new"``. A new message
        is also archived (``archive``, as ``Archive.archive`` does) in the same
        transaction."""

    @abc.abstractmethod
    def mark_handled(self, sender_domain: str, message_id: str) -> None:
        """The message was handled: it is no longer returned by :meth:`unhandled` and its
        data is dropped (the digest stays for the duplicate check). Marking a handled
        message again changes nothing. KeyError if the message is unknown."""

    @abc.abstractmethod
    def unhandled(self) -> list[tuple[str, str, bytes]]:
        """``(sender_domain, message_id, data)`` of the messages recorded but not marked
        handled, in the order of ``received_at`` (then of recording): to handle after a
        restart."""

    @abc.abstractmethod
    def forget_received(self, before: float) -> int:
        """Delete the handled records received before ``before`` (unix time); return how
        many. Unhandled ones are kept whatever their age. A forgotten message recorded again
        is ``"new"``."""


class Archive(abc.ABC):
    """Every message sent and received, kept for audits and settlement: by ``(direction,
    counterparty, message_id)`` (its key; :meth:`find`) and queried by conversation, type,
    party, the ids it references, period and time (:meth:`query`).

    Retention is the caller's: a service calls :meth:`forget_archived` with ``now -
    retention``, where a retention of at least 62 days (the default pyuftp's callers use)
    covers monthly settlement. A backend may also bound how many messages it keeps (it says
    so); the SQLite one keeps all until forgotten.
    """

    @abc.abstractmethod
    def archive(self, message: ArchivedMessage) -> bool:
        """Store a checked copy of ``message``, its ``archived_at`` set to now, in one
        transaction; True. Idempotent: when a message with its key ``(direction,
        counterparty, message_id)`` is archived already, that first one is kept as it is and
        this returns False. The copy's ``period`` is normalised to ``YYYY-MM-DD``."""

    @abc.abstractmethod
    def set_outcome(self, direction: str, counterparty: str, message_id: str, outcome: str,
                    reasons: str | None = None) -> None:
        """Record the outcome of an archived message: for a request received, the answer we
        gave; for one sent, the answer we got. ``outcome`` is one of :data:`OUTCOMES`,
        ``reasons`` (cut to 2000 characters) replaces the ones recorded before; the latest
        call stands. KeyError if no such message is archived. One transaction."""

    @abc.abstractmethod
    def find(self, counterparty: str, message_id: str,
             direction: str | None = None) -> ArchivedMessage | None:
        """The archived message ``message_id`` exchanged with ``counterparty`` in
        ``direction``, or None. Without ``direction``: the one sent if there is one, else
        the one received (the order of :data:`DIRECTIONS`)."""

    @abc.abstractmethod
    def query(self, *, conversation_id: str | None = None, message_type: str | None = None,
              counterparty: str | None = None, direction: str | None = None,
              references: str | None = None, period_from: str | None = None,
              period_to: str | None = None, since: float | None = None,
              until: float | None = None, limit: int | None = None,
              newest_first: bool = False) -> list[ArchivedMessage]:
        """The archived messages meeting every criterion given (None: any):

        - ``conversation_id``, ``message_type``, ``counterparty``, ``direction``: equal;
        - ``references``: a message id that one of the message's ``references`` names (e.g.
          the FlexOrders for an offer: ``query(references=offer_id,
          message_type="FlexOrder")``);
        - ``period_from``, ``period_to``: ISO dates, inclusive bounds on ``period`` (a message
          without a period then does not match);
        - ``since``, ``until``: inclusive bounds on ``time_stamp`` (unix time).

        Ordered by ``time_stamp``, then the order archived (``newest_first``: the reverse);
        the first ``limit`` (1 or more) only, when given. A lower bound after its upper bound
        is a ValueError."""

    @abc.abstractmethod
    def highest_revision(self, direction: str, counterparty: str, message_type: str,
                         period: str, congestion_point: str | None, *,
                         excluding: str | None = None) -> int | None:
        """The highest ``revision`` among the archived messages of this ``direction``,
        ``counterparty``, ``message_type``, ``period`` (ISO date) and ``congestion_point``
        (None: those without one), leaving out the one whose message_id is ``excluding``;
        None if there is none. Answered from an index kept when archiving (never by reading
        the stored payloads): the rule ``revision.increases`` asks it for every message."""

    @abc.abstractmethod
    def forget_archived(self, before: float) -> int:
        """Delete the messages archived (``archived_at``) before ``before`` (unix time);
        return how many. One transaction."""


class Store(OutboxStore, Journal, Archive):
    """A complete store: the outbox, the journal and the archive, the first two sharing one
    transaction where :meth:`OutboxStore.add_outgoing` needs both.

    Methods are synchronous. Asyncio code calls them as ``await store.call(store.method,
    *args)``: :meth:`call` runs a store whose :attr:`blocking` is true on a worker thread of
    its own, and awaits what a method returns if it is awaitable, so that a backend may also
    define its methods as coroutines (an asyncpg-based one would).

    A store is closed with :meth:`close` (or by leaving a ``with`` block); any use of a
    closed store raises :class:`~pyuftp.exceptions.StoreError`.
    """

    #: True when calls may wait for a disk or a network: :meth:`call` then keeps them off the
    #: event loop. True here, so that a backend that does not say is not run on the loop.
    blocking: bool = True
    _closed: bool = False
    _worker: ThreadPoolExecutor | None = None
    _worker_lock = threading.Lock()

    @overload
    async def call(self, method: Callable[..., Awaitable[T]], *args: Any) -> T: ...
    @overload
    async def call(self, method: Callable[..., T], *args: Any) -> T: ...

    async def call(self, method: Callable[..., Any], *args: Any) -> Any:
        """Run ``method`` (one of this store's) with ``args`` from asyncio code.

        A blocking store's calls all go to one worker thread of its own: the store does one
        thing at a time anyway, and a single thread keeps the memory its calls churn through
        in one malloc arena (a pool of threads grew the process by tens of MiB under load).
        Otherwise the method runs inline, on the event loop.
        """
        if inspect.iscoroutinefunction(method):  # async already: never on a thread
            return await method(*args)
        if self.blocking and not self._closed:  # closed: the method raises StoreError
            with self._worker_lock:
                if self._worker is None:
                    self._worker = ThreadPoolExecutor(1, thread_name_prefix="pyuftp-store")
                worker = self._worker
            result = await asyncio.get_running_loop().run_in_executor(worker, method, *args)
        else:
            result = method(*args)
        if inspect.isawaitable(result):
            return await result
        return result

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Release the store (idempotent); using it afterwards raises StoreError."""
        if self._closed:
            return
        self._closed = True
        try:
            self._release()
        finally:
            with self._worker_lock:
                worker, self._worker = self._worker, None
            if worker is not None:
                worker.shutdown(wait=False)

    @abc.abstractmethod
    def _release(self) -> None:
        """Free what the store holds (connections, file locks); called once by close()."""

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self!r} is closed")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def owned(spec: object) -> bool:
    """Whether the caller of :func:`open_store` with ``spec`` owns (must close) the store it
    gets: yes for None, a path or a URL (a store made for it), no for a Store passed in (its
    maker closes it; pyuftp never closes a store it was given)."""
    return not isinstance(spec, Store)
