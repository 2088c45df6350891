"""The archive of :class:`pyuftp.store.memory.MemoryStore`: its tables and what each archive
call does to them. Not thread-safe by itself: the store calls it holding its lock, with
checked arguments."""
from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque

from . import signed
from .base import ArchivedMessage
from .checks import Query

logger = logging.getLogger("pyuftp.store.memory")

WARN_INTERVAL = 600.0  # seconds between two warnings that a cap dropped records early
Key = tuple[str, str, str]  # (direction, counterparty, message_id)
# (direction, counterparty, message_type, period, congestion_point): highest_revision's index
Group = tuple[str, str, str, str, str | None]
_NO_REFERENCES: dict[str, str] = {}  # shared by the messages that reference nothing; never changed


def _key(message: ArchivedMessage) -> Key:
    return message.direction, message.counterparty, message.message_id


def _out(stored: ArchivedMessage) -> ArchivedMessage:
    """A copy to hand out: the payload uncompressed, a references dict of its own."""
    xml, envelope = signed.unpack(stored.payload_xml)
    return dataclasses.replace(stored, payload_xml=xml, envelope=envelope,
                               references=dict(stored.references))


def _group(message: ArchivedMessage) -> Group | None:
    """The revision group of a message that has a revision and a period, else None."""
    if message.revision is None or message.period is None:
        return None
    return (message.direction, message.counterparty, message.message_type, message.period,
            message.congestion_point)


class _Revisions:
    """One group's revisions by message id, with its top two kept as messages come (so that
    the highest, leaving one out, is read in constant time; recomputed only after a removal
    of one of them)."""

    __slots__ = ("by_id", "top")

    def __init__(self) -> None:
        self.by_id: dict[str, int] = {}
        self.top: list[tuple[int, str]] | None = []

    def add(self, message_id: str, revision: int) -> None:
        self.by_id[message_id] = revision
        if self.top is not None:
            self.top = sorted(self.top + [(revision, message_id)], reverse=True)[:2]

    def remove(self, message_id: str) -> None:
        self.by_id.pop(message_id, None)
        if self.top is not None and any(kept == message_id for _, kept in self.top):
            self.top = None  # recomputed when next asked

    def highest(self, excluding: str | None) -> int | None:
        if self.top is None:
            ranked = sorted(((r, m) for m, r in self.by_id.items()), reverse=True)
            self.top = ranked[:2]
        return next((revision for revision, message_id in self.top
                     if message_id != excluding), None)


def _unlist(index: dict[str, list[Key]], name: str, key: Key) -> None:
    keys = index.get(name)
    if keys is not None:
        try:
            keys.remove(key)
        except ValueError:
            pass
        if not keys:
            del index[name]


class MemoryArchive:
    """Archived messages by key, in the order archived, with three indexes: conversation id,
    message type and referenced message id -> keys (each list in the order archived). A payload
    is kept zlib-compressed with its envelope (:mod:`pyuftp.store.signed`; level 1: a 4 KB
FlexOffer's 4 KB XML and its 5.6 KB envelope take 1.1 KB, 30 µs to compress)."""

    def __init__(self, max_archived: int) -> None:
        self.max_archived = max_archived
        self._messages: dict[Key, ArchivedMessage] = {}  # in the order archived
        self._order: deque[Key] = deque()  # the same keys, to drop the oldest quickly
        self._by_conversation: dict[str, list[Key]] = {}
        self._by_reference: dict[str, list[Key]] = {}
        self._by_type: dict[str, list[Key]] = {}
        # group -> {message_id: revision}; highest_revision reads one group, not the payloads
        self._revisions: dict[Group, _Revisions] = {}
        self._warned_at = float("-inf")

    def __len__(self) -> int:
        return len(self._messages)

    def clear(self) -> None:
        for table in (self._messages, self._by_conversation, self._by_reference, self._by_type,
                      self._revisions):
            table.clear()
        self._order.clear()

    def add(self, message: ArchivedMessage) -> bool:
        """Keep ``message`` (a checked copy of the store's own, ``archived_at`` set)."""
        key = _key(message)
        if key in self._messages:
            return False
        # the XML and the envelope in one compressed blob, the XML once (store.signed)
        message.payload_xml, message.envelope = signed.pack(message.envelope,
                                                            message.payload_xml), None
        if not message.references:
            message.references = _NO_REFERENCES
        self._messages[key] = message
        self._order.append(key)
        self._by_conversation.setdefault(message.conversation_id, []).append(key)
        self._by_type.setdefault(message.message_type, []).append(key)
        for ref in dict.fromkeys(message.references.values()):
            self._by_reference.setdefault(ref, []).append(key)
        group = _group(message)
        if group is not None and message.revision is not None:
            self._revisions.setdefault(group, _Revisions()).add(message.message_id,
                                                                message.revision)
        if len(self._messages) > self.max_archived:
            self._drop_oldest()
        return True

    def _remove(self, key: Key) -> None:
        message = self._messages.pop(key)
        _unlist(self._by_conversation, message.conversation_id, key)
        _unlist(self._by_type, message.message_type, key)
        for ref in dict.fromkeys(message.references.values()):
            _unlist(self._by_reference, ref, key)
        group = _group(message)
        revisions = self._revisions.get(group) if group is not None else None
        if revisions is not None:
            revisions.remove(message.message_id)
            if not revisions.by_id:
                del self._revisions[group]  # type: ignore[arg-type]

    def _drop_oldest(self) -> None:
        while len(self._messages) > self.max_archived and self._order:
            oldest = self._order.popleft()
            if oldest in self._messages:
                self._remove(oldest)
        now = time.monotonic()
        if now - self._warned_at >= WARN_INTERVAL and self._order:
            self._warned_at = now
            first = self._messages.get(self._order[0])
            reach = time.time() - first.archived_at if first else float("nan")
            logger.warning(
                "memory store: the archive keeps only the last %d messages (archived in the "
                "last %.0f s): older ones were dropped before their retention ended; raise "
                "max_archived or use a SQLite store", len(self._messages), reach)

    def set_outcome(self, key: Key, outcome: str, reasons: str | None) -> None:
        message = self._messages.get(key)
        if message is None:
            direction, counterparty, message_id = key
            raise KeyError(f"no archived message {message_id} {direction} "
                           f"{'to' if direction == 'out' else 'from'} {counterparty}")
        message.outcome, message.reasons = outcome, reasons

    def find(self, counterparty: str, message_id: str,
             directions: tuple[str, ...]) -> ArchivedMessage | None:
        for direction in directions:
            message = self._messages.get((direction, counterparty, message_id))
            if message is not None:
                return _out(message)
        return None

    def query(self, criteria: Query) -> list[ArchivedMessage]:
        # the fewest candidates an index gives (each list in the order archived), then every
        # criterion on each
        if criteria.references is not None:
            candidates = [self._messages[key]
                          for key in self._by_reference.get(criteria.references, ())]
        elif criteria.conversation_id is not None:
            candidates = [self._messages[key]
                          for key in self._by_conversation.get(criteria.conversation_id, ())]
        elif criteria.message_type is not None:  # the rules ask by type: never a full scan
            candidates = [self._messages[key]
                          for key in self._by_type.get(criteria.message_type, ())]
        else:
            candidates = list(self._messages.values())
        found = [message for message in candidates if criteria.matches(message)]
        found.sort(key=lambda message: message.time_stamp)  # stable: the order archived
        if criteria.newest_first:
            found.reverse()
        return [_out(message) for message in found[:criteria.limit]]

    def highest_revision(self, direction: str, counterparty: str, message_type: str,
                         period: str, congestion_point: str | None,
                         excluding: str | None) -> int | None:
        # one group: a party's messages of one type for one day and congestion point
        revisions = self._revisions.get((direction, counterparty, message_type, period,
                                         congestion_point))
        return None if revisions is None else revisions.highest(excluding)

    def forget(self, before: float) -> int:
        old = [key for key, message in self._messages.items() if message.archived_at < before]
        for key in old:
            self._remove(key)
        if old:
            self._order = deque(key for key in self._order if key in self._messages)
        return len(old)
