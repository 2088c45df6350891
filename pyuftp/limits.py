"""What a service lets untrusted clients make it hold: connections, idle time, body memory.

Any internet client can reach a UFTP endpoint before a signature is checked, so the service
bounds, per process:

- **connections**: at most ``max_connections`` at once; one more is answered ``503`` with
  ``Retry-After`` and closed. Each connection needs a file descriptor: the process's limit
  (``ulimit -n``, often 1,024) must exceed ``max_connections`` plus the descriptors of its
  store, clients and logs; :func:`fd_headroom` raises the soft limit where the hard limit
  allows and otherwise lowers ``max_connections`` with a warning;
- **idle time**: a connection must complete a request head within ``idle_timeout`` seconds
  of opening or of its last answer (slow-header and idle keep-alive connections are closed);
- **body memory**: bodies being read and processed take at most ``body_memory`` bytes in
  all; a request beyond that gets ``503`` with ``Retry-After`` before its body is read;
- **log volume**: asyncio's "accept() out of system resource" is logged once a minute with a
  count, not once per attempt; aiohttp's own error lines are cut to a short escaped excerpt
  (they quote the raw request).
"""
from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .exceptions import excerpt

logger = logging.getLogger(__name__)

#: Descriptors kept free for the store, clients, logs and the listening socket.
FD_RESERVE = 64
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 17\r\nConnection: close\r\n\r\ntoo many requests")


@dataclass
class Limits:
    """The bounds of one service (see the module docstring)."""

    max_connections: int = 512
    idle_timeout: float = 15.0
    body_memory: int = 64 * 1024 * 1024
    #: how long a request waits for room among those being handled before it gets 503
    admission_timeout: float = 5.0


class BodyBudget:
    """Bytes of request bodies held at once, across all requests of a service."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False when that would pass the limit."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used = max(0, self.used - size)


class _Busy(asyncio.Protocol):
    """Answers a connection beyond the cap with 503 and closes it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_BUSY)
        transport.close()


def guarded(factory: Callable[[], asyncio.Protocol], connections: Callable[[], int],
            cap: int) -> Callable[[], asyncio.Protocol]:
    """A protocol factory that turns connections beyond ``cap`` away."""
    warned = [0.0]

    def make() -> asyncio.Protocol:
        if connections() >= cap:
            now = time.monotonic()
            if now - warned[0] > 60:
                warned[0] = now
                logger.warning("%d connections open, the most allowed: turning new ones away "
                               "with 503 (logged once a minute)", cap)
            return _Busy()
        return factory()

    return make


def fd_headroom(max_connections: int) -> int:
    """The connections this process can hold: ``max_connections``, after raising the soft
    descriptor limit towards the hard one if needed, or fewer (with a warning)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max_connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
        if soft < needed:
            fitting = max(1, soft - FD_RESERVE)
            logger.warning("max_connections=%d needs %d file descriptors but the limit is %d "
                           "(ulimit -n): holding at most %d connections", max_connections,
                           needed, soft, fitting)
            return fitting
    return max_connections


class AcceptErrorFilter:
    """Installed as the loop's exception handler while a service runs: asyncio reports each
    failed accept() (no descriptors left) separately; this logs them once a minute."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 60.0) -> None:
        self.loop = loop
        self.interval = interval
        self.previous = loop.get_exception_handler()
        self.count = 0
        self.last = 0.0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            self.count += 1
            now = time.monotonic()
            if now - self.last >= self.interval:
                self.last = now
                logger.error("cannot accept connections: out of file descriptors (%d times "
                             "since the last report); raise ulimit -n or lower "
                             "max_connections", self.count)
                self.count = 0
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def install(self) -> None:
        self.loop.set_exception_handler(self)

    def remove(self) -> None:
        if self.loop.get_exception_handler() is self:
            self.loop.set_exception_handler(self.previous)


class ExcerptFilter(logging.Filter):
    """Cuts a record of aiohttp's server logger to one line with a short excerpt of the
    exception (aiohttp's "Error handling request" quotes the raw request, 127,859 characters
    in one attack)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = excerpt(record.getMessage(), 200)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            message += f": {type(error).__name__}: {excerpt(error)}"
        record.msg, record.args = message, ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def http_logger() -> logging.Logger:
    """The logger a service gives aiohttp's request handler: ``pyuftp.http``, excerpted."""
    log = logging.getLogger("pyuftp.http")
    if not any(isinstance(f, ExcerptFilter) for f in log.filters):
        log.addFilter(ExcerptFilter())
    return log

