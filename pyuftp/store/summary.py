"""The outbox at a glance, for metrics and health checks: :class:`OutboxSummary`, which every
store gives from :meth:`~pyuftp.store.OutboxStore.outbox_summary` in one read."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple


class OutboxSummary(NamedTuple):
    """How many outbox items are pending and failed, and when the oldest pending one was
    created (unix time; None when none is pending)."""

    pending: int
    failed: int
    oldest_pending_at: float | None

    def oldest_age(self, now: float) -> float:
        """Seconds the oldest pending item has waited at ``now`` (0 when none is pending)."""
        return 0.0 if self.oldest_pending_at is None else max(0.0, now - self.oldest_pending_at)


def summarize(pending: Iterable[Any], failed: Iterable[Any]) -> OutboxSummary:
    """The summary of these items (anything with ``created_at``): the fallback of a store
    that does not count them itself."""
    count, oldest = 0, None
    for item in pending:
        count += 1
        oldest = item.created_at if oldest is None else min(oldest, item.created_at)
    return OutboxSummary(count, sum(1 for _ in failed), oldest)


def summary_of(rows: Iterable[tuple[Any, Any, Any]]) -> OutboxSummary:
    """The summary from rows of ``(state, count, oldest created_at)`` for the states pending
    and failed (what ``SELECT state, COUNT(*), MIN(created_at) … GROUP BY state`` gives)."""
    found = {str(state): (int(count), oldest) for state, count, oldest in rows}
    pending, oldest = found.get("pending", (0, None))
    return OutboxSummary(pending, found.get("failed", (0, None))[0],
                         None if oldest is None else float(oldest))
