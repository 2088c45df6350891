"""The user's handlers of received messages: registered per message type, called with the
payload dict (and, if they take two arguments, the :class:`~pyuftp.signing.envelope.Received`).

Async handlers run on the event loop, plain functions on a worker thread. What a handler
returns or raises becomes the outcome the exchange core turns into a response.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Collection
from typing import Any

from ..signing.envelope import Received
from ..exceptions import Rejected, about

logger = logging.getLogger(__name__)

Handler = Callable[..., Any]


class NoHandler:
    """The outcome when no handler is registered for a message's type."""


NO_HANDLER = NoHandler()


class Handlers:
    """Handlers by message type, for a party that receives ``accepted`` types."""

    def __init__(self, role: str, accepted: Collection[str]) -> None:
        self.role = role
        self.accepted = accepted
        self._entries: dict[str, tuple[Handler, bool, bool]] = {}

    def add(self, message_type: str, handler: Handler) -> None:
        """Call ``handler(payload)`` (or ``handler(payload, received)``) for each message of
        ``message_type``; ValueError for a type this role does not receive."""
        if message_type not in self.accepted:
            raise ValueError(f"a {self.role} service does not receive {message_type}; it "
                             f"receives {', '.join(sorted(self.accepted))}")
        wants_received = len(inspect.signature(handler).parameters) >= 2
        is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None))
        self._entries[message_type] = (handler, is_async, wants_received)

    def __contains__(self, message_type: object) -> bool:
        return message_type in self._entries

    async def call(self, received: Received) -> Any:
        """The handler's result, the exception it raised, or :data:`NO_HANDLER`."""
        entry = self._entries.get(received.message_type)
        if entry is None:
            return NO_HANDLER
        handler, is_async, wants_received = entry
        args = (received.payload, received) if wants_received else (received.payload,)
        try:
            return await handler(*args) if is_async else await asyncio.to_thread(handler, *args)
        except Exception as exc:  # Rejected, or a failure: both become the answer
            if not isinstance(exc, Rejected):
                logger.exception("the %s handler failed on %s", received.message_type,
                                 about(received), extra=about(received))
            return exc
