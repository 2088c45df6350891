"""Stopping a service gently: on SIGTERM
(or :meth:`~pyuftp.server.service.ShapeshifterService.stop`) a service stops accepting, lets
what is in flight finish within a grace period, and leaves the rest for recovery.

1. The listening socket is closed (new connections are refused) and requests that still
   arrive on open connections get HTTP 503 with Retry-After: the sender tries again later,
   at this instance after its restart or at another one.
2. Requests being received are answered (bounded by the service's ``read_timeout``), then
   the handlers running get what is left of ``shutdown_grace`` seconds to finish; their
   answers are queued and the outbox gets its own stop timeout to deliver what is in flight.
3. Handlers still running then are cancelled. Their messages stay recorded but unhandled in
   the store's journal, and the next start handles them (as after a crash); answers queued
   but not delivered stay in the outbox and are delivered after the restart.

``service.run()`` does this on SIGTERM and SIGINT. A service in a program of your own::

    async with service:                     # start(); stop() on leaving: the drain above
        await until_signalled()             # returns on SIGTERM or SIGINT

A service whose ``app`` is mounted in your aiohttp application drains when that
application shuts down (``web.run_app`` does on SIGTERM; give it a ``shutdown_timeout``
longer than ``shutdown_grace``).
"""
from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Collection, Iterable

logger = logging.getLogger(__name__)

#: seconds handlers in flight get to finish once a service stops
DEFAULT_GRACE = 10.0
#: seconds a sender is asked to wait (Retry-After) when it reaches a service shutting down
RETRY_AFTER = 5


class Drain:
    """The shutdown state of one service: whether it is draining, and how many requests it
    is receiving (their HTTP answer not yet given)."""

    def __init__(self, grace: float = DEFAULT_GRACE) -> None:
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not grace >= 0:
            raise ValueError(f"shutdown_grace must be seconds (0 or more), not {grace!r}")
        self.grace = float(grace)
        self.draining = False
        self.receiving = 0

    async def settle(self, tasks: Callable[[], Collection[asyncio.Task[None]]]) -> int:
        """Drain: wait for the requests being received, then for ``tasks()`` (the handlers
        running), all within :attr:`grace`; cancel the tasks still running then. Returns how
        many were cancelled."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        while self.receiving and loop.time() < deadline:  # their handlers start when answered
            await asyncio.sleep(0.01)
        running = [task for task in tasks() if not task.done()]
        if running and deadline > loop.time():
            await asyncio.wait(running, timeout=deadline - loop.time())
        unfinished = [task for task in running if not task.done()]
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.wait(unfinished, timeout=1.0)  # bounded, whatever a handler does
            logger.warning("shutting down: %d handlers unfinished after %.1f s were cancelled; "
                           "their messages are handled after the restart", len(unfinished),
                           self.grace)
        return len(unfinished)


async def until_signalled(signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> int:
    """Wait until the process gets one of ``signals``; return its number. The signals'
    handlers are restored on return."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future[int] = loop.create_future()
    installed = []

    def arrived(number: int) -> None:
        if not got.done():
            got.set_result(number)

    for number in signals:
        loop.add_signal_handler(number, arrived, number)
        installed.append(number)
    try:
        number = await got
    finally:
        for number_ in installed:
            loop.remove_signal_handler(number_)
    logger.info("got %s: shutting down", signal.Signals(number).name)
    return number


__all__ = ["Drain", "until_signalled", "DEFAULT_GRACE", "RETRY_AFTER"]
