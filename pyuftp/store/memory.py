"""A store in memory: for tests, and for services that accept losing what it holds on exit."""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import struct
import threading
import time
from collections import deque
from contextlib import contextmanager
from collections.abc import Collection, Iterable, Iterator

from . import checks
from .base import ArchivedMessage, OutboxItem, Store
from .summary import OutboxSummary
from .memory_archive import WARN_INTERVAL, MemoryArchive

logger = logging.getLogger(__name__)

# A received message's record: a 16-byte fingerprint of its digest and when it came, packed
# into one bytes object, under the key "sender_domain\0message_id" (the checks refuse NUL in
# both). A record object with its strings and floats took three times as much.
_RECORD = struct.Struct("<16sd")


def _fingerprint(digest: str) -> bytes:
    return hashlib.blake2b(digest.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _received_at(record: bytes) -> float:
    return float(_RECORD.unpack(record)[1])


class MemoryStore(Store):
    """A :class:`Store` in memory, with the same rules as the SQLite store; everything is
    lost when the process ends. Calls are quick, so asyncio code runs them inline.

    Memory is bounded by count as well as by time (the ``forget_*`` calls):

    - ``max_received``: at most this many *handled* received records, the duplicate window.
      Beyond it the oldest handled records (in the order they were handled) are dropped, and
      a warning (once per 10 minutes at most) says how far back duplicate detection now
      reaches. Unhandled records are never dropped.
    - ``max_kept``: at most this many delivered or failed outbox items (for inspection);
      beyond it the oldest decided ones are dropped. Pending items are never dropped.
    - ``max_archived``: at most this many archived messages; beyond it the oldest archived
      are dropped, and a warning (once per 10 minutes at most) says how far back the archive
      now reaches. Payloads are kept zlib-compressed, with their envelopes (the XML once:
      :class:`~pyuftp.store.memory_archive.MemoryArchive`).

    Measured with tracemalloc (CPython 3.11, 64-bit, UUID message ids, 19-character domains,
    20,000 to 1,000,000 of each): a handled received record takes 190-210 bytes, so the
    default 1,000,000 is about 210 MB; a delivered item (body dropped, no error text)
    400-450 bytes, so the default 100,000 is about 45 MB. A pending item takes that plus its
    body; an unhandled record that plus its data. An archived 96-ISP FlexOffer (4,052 B of
    XML, compressed to 977 B, 1,128 B with its 5.6 KB envelope; two references) takes about
    2.3 KB, so the default ``max_archived`` of 20,000 is about 46 MB. For tests and parties
    that can lose their records on exit: 62 days of archive need a SQLite or server store.
    """

    blocking = False

    def __init__(self, max_received: int = 1_000_000, max_kept: int = 100_000,
                 max_archived: int = 20_000) -> None:
        self.max_received = checks.count(max_received, "max_received", 1)
        self.max_kept = checks.count(max_kept, "max_kept", 0)
        self._archive = MemoryArchive(checks.count(max_archived, "max_archived", 1))
        self._lock = threading.Lock()
        self._items: dict[int, OutboxItem] = {}
        self._pending: dict[int, OutboxItem] = {}  # ids ascend: oldest first; the hot path
        self._updated: dict[int, float] = {}
        self._claims: dict[int, float] = {}  # item id -> claimed until
        self._decided: deque[int] = deque()  # delivered/failed ids, in the order decided
        self._next_id = 1
        self._seen: dict[str, bytes] = {}  # key -> _RECORD, every record
        # key -> (the key object _seen holds, data), in the order recorded: the deque of the
        # handled keys then refers to that one string, not to a copy of it (105 B a record).
        self._unhandled: dict[str, tuple[str, bytes]] = {}
        self._handled: deque[str] = deque()  # keys, in the order handled
        self._warned_at = float("-inf")

    def __repr__(self) -> str:
        return (f"MemoryStore(max_received={self.max_received}, max_kept={self.max_kept}, "
                f"max_archived={self.max_archived})")

    @property
    def max_archived(self) -> int:
        return self._archive.max_archived

    @contextmanager
    def _use(self) -> Iterator[None]:
        with self._lock:
            self._check_open()
            yield

    def _release(self) -> None:
        with self._lock:
            for table in (self._items, self._pending, self._updated, self._claims, self._seen,
                          self._unhandled):
                table.clear()
            self._decided.clear()
            self._handled.clear()
            self._archive.clear()

    # --- outbox ------------------------------------------------------------------------------

    def add_outgoing(self, item: OutboxItem, *, answers: tuple[str, str] | None = None,
                     archive: ArchivedMessage | None = None,
                     outcome: tuple[str, str | None] | None = None,
                     claim: float | None = None, delivered: Collection[int] = ()) -> int:
        checked, answered = checks.check_item(item), checks.answers(answers)
        kept = checks.with_envelope(checks.to_archive(archive), checked.body)
        result = None if outcome is None or answered is None else checks.outcome(*outcome)
        lease, done = checks.claim(claim), checks.item_ids(delivered, "delivered")
        with self._use():
            if answered is not None:
                self._known(*answered)  # KeyError before anything changes
            checked.id = item_id = self._next_id
            self._next_id += 1
            self._items[item_id] = checked  # a copy: the caller's object may change later
            self._updated[item_id] = time.time()
            if checked.state == "pending":
                self._pending[item_id] = checked
                if lease is not None:
                    self._claims[item_id] = time.time() + lease
            else:
                self._decide(item_id)
            for done_id in sorted(done):
                self._delivered(done_id)
            if answered is not None:
                self._handle(*answered)
            if kept is not None:
                self._archive.add(kept)
            if result is not None and answered is not None:
                try:
                    self._archive.set_outcome(("in", *answered), *result)
                except KeyError:
                    pass  # the answered message is not archived: nothing to note
        item.id = item_id
        return item_id

    def claim_due(self, now: float, limit: int = 100, lease: float = 300.0,
                  exclude_peers: Collection[tuple[str, str]] = ()) -> list[OutboxItem]:
        now, limit, lease, peers = checks.claim_args(now, limit, lease, exclude_peers)
        due = []
        with self._use():
            for item_id, item in self._pending.items():
                if item.next_attempt_at <= now and self._claims.get(item_id, 0.0) <= now and (
                        not peers or (item.recipient_domain, item.recipient_role) not in peers):
                    self._claims[item_id] = now + lease
                    due.append(dataclasses.replace(item))
                    if len(due) == limit:
                        break
        return due

    def release(self, item_ids: Iterable[int]) -> None:
        ids = checks.item_ids(item_ids, "item_ids")
        with self._use():
            for item_id in ids:
                self._claims.pop(item_id, None)

    def next_due_time(self) -> float | None:
        with self._use():
            return min((max(item.next_attempt_at, self._claims.get(item_id, 0.0))
                        for item_id, item in self._pending.items()), default=None)

    def _pending_item(self, item_id: int) -> OutboxItem | None:
        item = self._items.get(item_id)
        if item is None:
            raise KeyError(f"no outbox item {item_id}")
        if item.state != "pending":
            logger.warning("outbox item %d is %s already; left as it is", item_id, item.state)
            return None
        return item

    def _decide(self, item_id: int) -> None:
        """``item_id`` became delivered or failed: it counts against ``max_kept`` now."""
        self._pending.pop(item_id, None)
        self._claims.pop(item_id, None)
        self._decided.append(item_id)
        while len(self._items) - len(self._pending) > self.max_kept and self._decided:
            oldest = self._decided.popleft()
            if oldest in self._items and oldest not in self._pending:
                del self._items[oldest], self._updated[oldest]

    def mark_delivered(self, item_id: int) -> None:
        item_id = checks.item_id(item_id)
        with self._use():
            if not self._delivered(item_id):
                raise KeyError(f"no outbox item {item_id}")

    def mark_delivered_many(self, item_ids: Iterable[int]) -> None:
        ids = checks.item_ids(item_ids, "item_ids")
        with self._use():
            for item_id in sorted(ids):
                self._delivered(item_id)

    def _delivered(self, item_id: int) -> bool:
        if (item := self._items.get(item_id)) is None:
            return False
        was_pending, item.state = item.state == "pending", "delivered"
        item.body = b""  # the bulk of an item; a delivered one is kept only for inspection
        self._updated[item_id] = time.time()
        if was_pending:
            self._decide(item_id)
        return True

    def mark_retry(self, item_id: int, attempts: int, next_attempt_at: float, error: str,
                   status: int | None) -> None:
        args = checks.retry_args(attempts, next_attempt_at, error, status)
        item_id = checks.item_id(item_id)
        with self._use():
            item = self._pending_item(item_id)
            if item is not None:
                item.attempts, item.next_attempt_at, item.last_error, item.last_status = args
                self._claims.pop(item_id, None)
                self._updated[item_id] = time.time()

    def mark_failed(self, item_id: int, error: str, status: int | None) -> None:
        error, code = checks.error(error), checks.status(status)
        item_id = checks.item_id(item_id)
        with self._use():
            item = self._pending_item(item_id)
            if item is not None:
                item.state, item.last_error, item.last_status = "failed", error, code
                self._updated[item_id] = time.time()
                self._decide(item_id)

    def outgoing(self, state: str | None = None) -> list[OutboxItem]:
        if state is not None:
            checks.state(state)
        with self._use():
            return [dataclasses.replace(item) for _, item in sorted(self._items.items())
                    if state is None or item.state == state]

    def pending_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        with self._use():
            for item in self._pending.values():
                peer = (item.recipient_domain, item.recipient_role)
                counts[peer] = counts.get(peer, 0) + 1
        return counts

    def outbox_summary(self) -> OutboxSummary:
        with self._use():  # pending ones, by id; a retried item may be older than the first
            oldest = min((item.created_at for item in self._pending.values()), default=None)
            failed = sum(1 for item in self._items.values() if item.state == "failed")
            return OutboxSummary(len(self._pending), failed, oldest)

    def forget_outgoing(self, before: float, state: str = "delivered") -> int:
        before, state = checks.when(before, "before"), checks.state(state, done=True)
        with self._use():
            old = [i for i, item in self._items.items()
                   if item.state == state and self._updated[i] < before]
            for item_id in old:
                del self._items[item_id], self._updated[item_id]
            if old:
                self._decided = deque(i for i in self._decided if i in self._items)
        return len(old)

    def retry_outgoing(self, item_id: int, next_attempt_at: float, expires_at: float) -> None:
        item_id = checks.item_id(item_id)
        due, expires = checks.when(next_attempt_at, "next_attempt_at"), checks.when(
            expires_at, "expires_at")
        with self._use():
            item = self._items.get(item_id)
            if item is None:
                raise KeyError(f"no outbox item {item_id}")
            if item.state == "delivered":
                raise ValueError(f"outbox item {item_id} was delivered: nothing to retry")
            item.state, item.next_attempt_at, item.expires_at = "pending", due, expires
            self._claims.pop(item_id, None)
            self._updated[item_id] = time.time()
            if item_id not in self._pending:  # claim_due wants the pending ids in order
                self._pending = dict(sorted({**self._pending, item_id: item}.items()))
                self._decided = deque(i for i in self._decided if i != item_id)

    # --- received ----------------------------------------------------------------------------

    @staticmethod
    def _key(sender_domain: str, message_id: str) -> str:
        return f"{sender_domain}\x00{message_id}"

    def _known(self, sender_domain: str, message_id: str) -> str:
        key = self._key(sender_domain, message_id)
        if key not in self._seen:
            raise KeyError(f"no received message {message_id} from {sender_domain}")
        return key

    def record_received(self, sender_domain: str, message_id: str, digest: str, data: bytes,
                        received_at: float, *, archive: ArchivedMessage | None = None) -> str:
        sender_domain, message_id, digest, data, received_at = checks.received_args(
            sender_domain, message_id, digest, data, received_at)
        kept = checks.with_envelope(checks.to_archive(archive), data)  # the journal's: transient
        fingerprint = _fingerprint(digest)
        key = self._key(sender_domain, message_id)
        with self._use():
            seen = self._seen.get(key)
            if seen is None:
                self._seen[key] = _RECORD.pack(fingerprint, received_at)
                self._unhandled[key] = (key, data)
                if kept is not None:
                    self._archive.add(kept)
                return "new"
        return "duplicate" if seen[:16] == fingerprint else "conflict"

    def mark_handled(self, sender_domain: str, message_id: str) -> None:
        sender_domain, message_id = checks.key(sender_domain, message_id)
        with self._use():
            self._handle(sender_domain, message_id)

    def _handle(self, sender_domain: str, message_id: str) -> None:
        unhandled = self._unhandled.pop(self._known(sender_domain, message_id), None)
        if unhandled is None:
            return  # handled before
        self._handled.append(unhandled[0])
        excess = len(self._seen) - len(self._unhandled) - self.max_received
        if excess <= 0:
            return
        while excess > 0 and self._handled:
            oldest = self._handled.popleft()
            if oldest in self._seen and oldest not in self._unhandled:
                del self._seen[oldest]
                excess -= 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_INTERVAL and self._handled:
            self._warned_at = now
            oldest_kept = self._seen.get(self._handled[0])
            reach = time.time() - _received_at(oldest_kept) if oldest_kept else float("nan")
            logger.warning(
                "memory store: duplicate detection now covers only the last %d handled messages "
                "(received in the last %.0f s), less than the configured time: older records "
                "were dropped early; raise max_received or use a SQLite store",
                len(self._handled), reach)

    def unhandled(self) -> list[tuple[str, str, bytes]]:
        with self._use():
            rows = [(_received_at(self._seen[key]), key, data)
                    for key, (_, data) in self._unhandled.items()]
        rows.sort(key=lambda row: row[0])  # stable: the order recorded among equal times
        return [(*key.split("\x00", 1), data) for _, key, data in rows]  # type: ignore[misc]

    def forget_received(self, before: float) -> int:
        before = checks.when(before, "before")
        with self._use():
            old = [key for key, record in self._seen.items()
                   if _received_at(record) < before and key not in self._unhandled]
            for key in old:
                del self._seen[key]
            if old:  # no stale keys left behind: one handled again must not be dropped early
                self._handled = deque(key for key in self._handled if key in self._seen)
        return len(old)

    # --- archive -----------------------------------------------------------------------------

    def archive(self, message: ArchivedMessage) -> bool:
        checked = checks.stamped(message)
        with self._use():
            return self._archive.add(checked)

    def set_outcome(self, direction: str, counterparty: str, message_id: str, outcome: str,
                    reasons: str | None = None) -> None:
        key = checks.archive_key(direction, counterparty, message_id)
        result, why = checks.outcome(outcome, reasons)
        with self._use():
            self._archive.set_outcome(key, result, why)

    def find(self, counterparty: str, message_id: str,
             direction: str | None = None) -> ArchivedMessage | None:
        counterparty, message_id, directions = checks.find_args(counterparty, message_id,
                                                                direction)
        with self._use():
            return self._archive.find(counterparty, message_id, directions)

    def query(self, *, conversation_id: str | None = None, message_type: str | None = None,
              counterparty: str | None = None, direction: str | None = None,
              references: str | None = None, period_from: str | None = None,
              period_to: str | None = None, since: float | None = None,
              until: float | None = None, limit: int | None = None,
              newest_first: bool = False) -> list[ArchivedMessage]:
        criteria = checks.query(conversation_id, message_type, counterparty, direction,
                                references, period_from, period_to, since, until, limit,
                                newest_first)
        with self._use():
            return self._archive.query(criteria)

    def highest_revision(self, direction: str, counterparty: str, message_type: str,
                         period: str, congestion_point: str | None, *,
                         excluding: str | None = None) -> int | None:
        args = checks.revision_args(direction, counterparty, message_type, period,
                                    congestion_point, excluding)
        with self._use():
            return self._archive.highest_revision(*args)

    def forget_archived(self, before: float) -> int:
        before = checks.when(before, "before")
        with self._use():
            return self._archive.forget(before)
