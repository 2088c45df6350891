"""The hooks through which receiving and sending report what happens, for metrics.

:class:`Observer` does nothing; the :class:`~pyuftp.sending.outbox.Outbox`, the
:class:`~pyuftp.sending.delivery.Courier` and the :class:`~pyuftp.receiving.inbox.Inbox` hold
one in their ``metrics`` attribute and call it at the few points where a message is received,
rejected, handled, queued or attempted, and where the store fails. A service with
``metrics=True`` puts a :class:`pyuftp.server.metrics.ServiceMetrics` there instead. A hook
must be cheap and must never raise: it runs on the hot path of every message.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class Observer:
    """The hooks, each doing nothing (see the module docstring)."""

    def received(self, message_type: str, sender: str, outcome: str) -> None:
        """A verified message from ``sender`` was handled: ``outcome`` is the result of its
        answer, ``"Accepted"`` or ``"Rejected"``, or ``"none"`` when it is not answered
        (a response). Requests refused before that are counted by the HTTP adapter."""

    def rejected(self, message_type: str, sender: str, problems: Sequence[str]) -> None:
        """A received message is rejected for these problems (each rule's ends ``[rule.id]``)."""

    def handled(self, message_type: str, seconds: float) -> None:
        """The user's handler of a ``message_type`` ran for ``seconds``."""

    def sent(self, message_type: str, recipient: str, outcome: str) -> None:
        """A message to ``recipient`` was ``"queued"`` (outbox), or ``"posted"`` (no store)."""

    def attempted(self, message_type: str, recipient: str, state: str) -> None:
        """One delivery attempt ended, leaving the item in ``state``: ``"delivered"``,
        ``"pending"`` (retried later) or ``"failed"`` (for good)."""

    def store_error(self, operation: str) -> None:
        """The store failed during ``operation`` (``"record"``, ``"outcome"``, ``"claim"`` …)."""


def outcome_of(reply: tuple[str, Mapping[str, Any]] | None) -> str:
    """The outcome :meth:`Observer.received` is told for an answer ``(type, fields)``."""
    return "none" if reply is None else str(reply[1].get("result", "Accepted"))


#: the observer of anything not observed
NO_OBSERVER = Observer()

__all__ = ["Observer", "NO_OBSERVER", "outcome_of"]
