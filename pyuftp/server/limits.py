"""What a service lets untrusted clients make it hold: connections, idle time, body memory.

Any internet client can reach a UFTP endpoint before a signature is checked, so the service
bounds, per process:

- **connections**: at most ``max_connections`` at once, counted exactly (a connection counts
  from the moment its transport is made until it is lost), and at most ``per_address`` of
  them from one client address (an IPv4 address, or an IPv6 /64), so that one client cannot
  take every slot. One more is answered ``503`` with ``Retry-After`` and closed after its
  request is read and dropped (closing at once would reset the connection, and the client
  would never see the 503). Each connection needs a file descriptor: the process's limit
  (``ulimit -n``, often 1,024) must exceed ``max_connections`` plus the descriptors of its
  store, clients and logs; :func:`fd_headroom` raises the soft limit where the hard limit
  allows and otherwise lowers ``max_connections`` with a warning;
- **idle time**: a connection must complete a request head within ``idle_timeout`` seconds
  of opening or of its last answer (slow-header and idle keep-alive connections are closed);
- **body memory**: bodies being read and processed take at most ``body_memory`` bytes in
  all; a request beyond that gets ``503`` with ``Retry-After`` before its body is read;
- **log volume**: asyncio's "accept() out of system resource" is logged once a minute with a
  count, not once per attempt; aiohttp's own error lines are cut to a short escaped excerpt
  (they quote the raw request), a client's malformed HTTP is a WARNING (its fault, not the
  service's), and at most :data:`HTTP_LOG_LINES` such lines are written a minute, the next
  one saying how many were left out.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from ..exceptions import excerpt

logger = logging.getLogger(__name__)

#: Descriptors kept free for the store, clients, logs, the listening socket and the refused
#: connections that linger (:data:`MAX_LINGERING`).
FD_RESERVE = 64
#: Refused connections that may linger at once, reading and dropping their request so that
#: the client reads the 503 instead of a reset; beyond that a refusal closes at once.
MAX_LINGERING = 32
#: Seconds a refused connection lingers at most.
BUSY_LINGER = 1.0
#: Lines aiohttp's server logger (``pyuftp.http``) may write a minute.
HTTP_LOG_LINES = 10
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
    #: connections one client address (IPv4 address, IPv6 /64) may hold at once; None: a
    #: quarter of ``max_connections`` (at least 1). Behind a reverse proxy every connection
    #: comes from the proxy: set it to ``max_connections`` there.
    per_address: int | None = None

    def address_share(self, cap: int | None = None) -> int:
        """The connections one address may hold, within ``cap`` (default max_connections)."""
        cap = self.max_connections if cap is None else cap
        share = self.max_connections // 4 if self.per_address is None else self.per_address
        return max(1, min(share, cap))


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


def client_address(peername: Any) -> str:
    """What a connection counts against: its IPv4 address, or its IPv6 /64 (one host
    usually has a whole /64); "" when the transport has no IP peer."""
    if not isinstance(peername, tuple) or not peername or not isinstance(peername[0], str):
        return ""
    host = peername[0].split("%", 1)[0]  # a scope id is not part of the address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return excerpt(host, 60)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Gate:
    """The connections a service holds, counted exactly: in all and per client address.

    A connection is counted when its transport is made (when its peer address is known)
    and uncounted when it is lost, so the count never passes ``cap``, however many are
    accepted in one turn of the event loop."""

    def __init__(self, cap: int, share: int) -> None:
        self.cap, self.share = cap, share
        self.open = 0
        self.peak = 0
        self.lingering = 0
        self.by_address: dict[str, int] = {}
        self._warned = {"cap": 0.0, "share": 0.0}

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address``; False (not counted) when it is over
        the cap or over that address's share."""
        held = self.by_address.get(address, 0)
        if self.open >= self.cap:
            self._warn("cap", "%d connections open, the most allowed: turning new ones away "
                              "with 503 (logged once a minute)", self.cap)
            return False
        if held >= self.share:
            self._warn("share", "%s holds %d connections, the most one address may: turning "
                                "its new ones away with 503 (logged once a minute)",
                       address, held)
            return False
        self.open += 1
        self.peak = max(self.peak, self.open)
        self.by_address[address] = held + 1
        return True

    def release(self, address: str) -> None:
        self.open -= 1
        held = self.by_address.pop(address, 1) - 1
        if held > 0:
            self.by_address[address] = held  # only addresses holding some stay: bounded

    def _warn(self, what: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._warned[what] > 60:
            self._warned[what] = now
            logger.warning(message, *args)


class _Busy(asyncio.Protocol):
    """Answers a refused connection with 503, then reads and drops what the client sends
    until it closes (at most :data:`BUSY_LINGER` seconds): closing a socket with unread
    data resets the connection, and the client would lose the 503."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_BUSY)
        if self.gate.lingering >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()  # too many lingering already: their descriptors come first
            return
        self.gate.lingering += 1
        self.transport = transport
        transport.write_eof()  # the client sees the answer end; we go on reading
        self.timer = asyncio.get_running_loop().call_later(BUSY_LINGER, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass  # dropped: the answer is 503 whatever the request is

    def eof_received(self) -> bool:
        return False  # the client is done: close

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.transport = None
            self.gate.lingering -= 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class _Gated(asyncio.Protocol):
    """Stands between a transport and aiohttp's protocol: counts the connection in the
    gate when it is made and out when it is lost, or answers 503 when it is refused."""

    __slots__ = ("gate", "factory", "inner", "address")

    def __init__(self, gate: Gate, factory: Callable[[], asyncio.BaseProtocol]) -> None:
        self.gate, self.factory = gate, factory
        self.inner: asyncio.BaseProtocol = _Busy(gate)
        self.address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        address = client_address(transport.get_extra_info("peername"))
        if self.gate.admit(address):
            self.address = address
            try:
                self.inner = self.factory()
                self.inner.connection_made(transport)
            except BaseException:
                self._release()
                raise
        else:
            self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        self.inner.connection_lost(exc)

    def _release(self) -> None:
        if self.address is not None:
            self.gate.release(self.address)
            self.address = None

    def data_received(self, data: bytes) -> None:
        assert isinstance(self.inner, asyncio.Protocol)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        assert isinstance(self.inner, asyncio.Protocol)
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def guarded(factory: Callable[[], asyncio.BaseProtocol],
            gate: Gate) -> Callable[[], asyncio.Protocol]:
    """A protocol factory whose connections pass ``gate``: beyond its cap, or beyond an
    address's share, they are answered 503 and closed."""
    return lambda: _Gated(gate, factory)


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
    in one attack); makes a client's malformed HTTP a WARNING (aiohttp logs it as an ERROR,
    but the fault is the client's); and lets at most ``lines`` records through per
    ``interval`` seconds, the first one after a pause saying how many were left out."""

    def __init__(self, lines: int = HTTP_LOG_LINES, interval: float = 60.0) -> None:
        super().__init__()
        self.lines, self.interval = lines, interval
        self.window = float("-inf")
        self.written = 0
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self.window >= self.interval:
            self.window, self.written = now, 0
        if self.written >= self.lines:
            self.suppressed += 1
            return False
        self.written += 1
        message = excerpt(record.getMessage(), 200)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            message += f": {type(error).__name__}: {excerpt(error)}"
            if isinstance(error, (HttpProcessingError, ConnectionError)) and \
                    record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        if self.suppressed:
            message += (f" ({self.suppressed} more lines of pyuftp.http left out: at most "
                        f"{self.lines} are written per {self.interval:g} s)")
            self.suppressed = 0
        record.msg, record.args = message, ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def http_logger() -> logging.Logger:
    """The logger a service gives aiohttp's request handler: ``pyuftp.http``, excerpted,
    client faults as warnings, rate-limited."""
    log = logging.getLogger("pyuftp.http")
    if not any(isinstance(f, ExcerptFilter) for f in log.filters):
        log.addFilter(ExcerptFilter())
    return log
