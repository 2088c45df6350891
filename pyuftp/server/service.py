"""aiohttp.web services that receive signed UFTP messages, one per role.

    service = ShapeshifterDsoService("dso.example.com", private_key, key_lookup, endpoint_lookup,
                                     port=8080)

    @service.handler("FlexOffer")
    async def on_offer(offer):
        ...                        # return normally: Accepted; raise Rejected("why"): Rejected

    async with service:           # or service.run() in a process of its own
        ...

A service answers HTTP 200 once a message is verified, valid and recorded, then calls your
handler and sends the matching ``...Response`` back on its own. This module is the adapter
between aiohttp and pyuftp: it listens within :class:`~pyuftp.server.limits.Limits`, checks the
request head, reads the body and passes it to an :class:`~pyuftp.receiving.inbox.Inbox`; every
decision is the :class:`~pyuftp.core.exchange.Exchange`'s, every send the
:class:`~pyuftp.sending.delivery.Courier`'s.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

from ..clients import ShapeshifterClient, client_class
from ..message.catalog import ROLES
from ..signing.crypto import SigningKey
from ..discovery.cache import NEGATIVE_TTL, NegativeCache
from ..sending.delivery import Courier, EndpointLookup
from ..sending.overloads import ServiceRequest
from ..exceptions import AddressingError, Rejected
from ..core.exchange import MAX_BODY, Exchange
from ..receiving.handlers import Handler
from ..store.archiving import RETENTION
from ..receiving.inbox import Inbox, KeyLookup
from ..rules import Rules
from .limits import (AcceptErrorFilter, BodyBudget, Gate, Limits, fd_headroom, guarded,
                     http_logger)
from ..store import Store
from ..auth.tls import plain_http_warning, server_context
from .drain import DEFAULT_GRACE, Drain, until_signalled
from .health import Health, operations_path
from .endpoint import MessageEndpoint, fetcher
from .metrics import ServiceMetrics

if TYPE_CHECKING:  # the bearer check needs PyJWT, an optional dependency
    from ..auth.bearer import BearerCheck
    from ..auth.jwks import JwksFetcher

logger = logging.getLogger(__name__)

__all__ = ["ShapeshifterService", "ShapeshifterAgrService", "ShapeshifterCroService",
           "ShapeshifterDsoService", "SERVICES", "Rejected", "Limits", "DEFAULT_PATH"]

DEFAULT_PATH = "/shapeshifter/api/v3/message"
#: Seconds the rest of a refused body is read and dropped before the connection is closed, so
#: that the sender can read the refusal (closing at once resets the connection under it).
LINGER = 1.0


class ShapeshifterService(MessageEndpoint, ServiceRequest):
    """Receives UFTP messages for one role of one party.

    :param sender_domain: your own internet domain (messages must be addressed to it).
    :param signing_key: your private key, to sign the responses.
    :param key_lookup: ``(domain, role) -> public key`` (base64 or ``cs1.``; sync or async);
        None when unknown (the sender gets HTTP 419).
    :param unknown_key_ttl: seconds a look-up that found no key is remembered, so that a
        flood from unknown senders costs one look-up per (domain, role) (see
        :mod:`pyuftp.discovery.cache`; at most 10,000 pairs); 0 looks up every time.
        ``key_cache`` is that memory (``service.key_cache.forget(domain, role)``).
    :param endpoint_lookup: ``(domain, role) -> url`` of other parties' services.
    :param host, port, path: where to listen: 127.0.0.1, 8080 and
        ``/shapeshifter/api/v3/message`` unless you say otherwise (port 0 picks a free port;
        see :attr:`url`). ``ssl_context`` serves HTTPS.
    :param version: the UFTP version of the messages it sends (answers take the request's).
    :param client_options: for sending: ``timeout``, ``auth``, ``outbox_options``, ... (see
        :class:`~pyuftp.sending.delivery.Courier`).
    :param store: a :class:`pyuftp.store.Store`, or a path or URL of one to open, that keeps
        the outbox and the journal across restarts; by default both live in memory.
    :param retry_for, on_delivery_failed: how long answers are retried; ``(item, error)``
        called when one finally fails.
    :param max_body: the largest body taken (bigger: HTTP 413, unread).
    :param read_timeout: seconds a sender may take to send its body (then HTTP 408).
    :param max_age, max_clock_skew: the window a message's ``time_stamp`` must be in.
    :param max_pending, max_backlog: see :class:`~pyuftp.receiving.inbox.Inbox`.
    :param limits: connections, idle time, body memory (:class:`~pyuftp.server.limits.Limits`).
    :param clock: ``() -> unix time``, for the time window and the rules (tests).
    :param rules: the business rules (:mod:`pyuftp.rules`) every message received and sent
        must pass: default :data:`~pyuftp.rules.DEFAULT_RULES`, ``False`` for none. A message
        that breaks any is answered ``Rejected`` with every problem, and its handler is not
        called.
    :param retention: seconds the archive keeps every message sent and received (62 days).
    :param cert_file: HTTPS from PEM files instead of an ``ssl_context``: the certificate
        chain, with ``key_file`` (unless the key is in the same file) and ``client_ca``: a
        client must then present a certificate signed by one of those CAs (mutual TLS).
        See :mod:`pyuftp.auth.tls`.
    :param bearer: a :class:`~pyuftp.auth.BearerCheck` (or a :class:`~pyuftp.auth.JwksFetcher`
        around one): every request must carry a valid bearer token, else it is answered 401
        before its body is read.
    :param metrics: serve the service's metrics in the Prometheus text format at
        ``GET /metrics`` (True) or at the path given (:mod:`pyuftp.server.metrics`;
        ``service.metrics`` holds them).
    :param health: serve ``GET /health`` (True) or the path given: 200 when ready, 503 when
        not (:mod:`pyuftp.server.health`).
    :param shutdown_grace: seconds the handlers in flight get to finish when the service
        stops (SIGTERM for :meth:`run`); the rest are handled after the restart
        (:mod:`pyuftp.server.drain`).
    """

    role: ClassVar[str]

    def __init__(self, sender_domain: str, signing_key: str | bytes | SigningKey,
                 key_lookup: KeyLookup, endpoint_lookup: EndpointLookup,
                 host: str = "127.0.0.1", port: int = 8080, path: str = DEFAULT_PATH, *,
                 version: str | None = None, client_options: Mapping[str, Any] | None = None,
                 store: Store | str | os.PathLike[str] | None = None, retry_for: float = 3600.0,
                 on_delivery_failed: Callable[..., Any] | None = None, max_body: int = MAX_BODY,
                 read_timeout: float = 10.0, max_age: float = 24 * 3600.0,
                 max_clock_skew: float = 300.0, max_pending: int = 100, max_backlog: int = 1000,
                 limits: Limits | None = None, ssl_context: ssl.SSLContext | None = None,
                 clock: Callable[[], float] = time.time, rules: Rules | bool | None = None,
                 retention: float = RETENTION,
                 unknown_key_ttl: float = NEGATIVE_TTL,
                 cert_file: str | os.PathLike[str] | None = None,
                 key_file: str | os.PathLike[str] | None = None,
                 client_ca: str | os.PathLike[str] | None = None,
                 bearer: BearerCheck | JwksFetcher | None = None,
                 metrics: bool | str = False, health: bool | str = False,
                 shutdown_grace: float = DEFAULT_GRACE) -> None:
        self.sender_domain = sender_domain
        # (#19.3) TLS from files; (#19.2) the bearer check: the exchange decides, _jwks fetches
        if cert_file is not None:
            if ssl_context is not None:
                raise ValueError("give ssl_context or cert_file, not both")
            ssl_context = server_context(cert_file, key_file, client_ca=client_ca)
        self._jwks = None if bearer is None else fetcher(bearer, clock)
        self.host, self.port, self.path, self.ssl_context = host, port, path, ssl_context
        self.read_timeout = read_timeout
        self.limits = limits or Limits()
        self.exchange = Exchange(sender_domain, self.role, version=version, max_age=max_age,
                                 max_clock_skew=max_clock_skew, max_body=max_body, clock=clock,
                                 rules=rules, bearer=None if self._jwks is None else
                                 self._jwks.check)
        options = dict(client_options or {})
        outbox_options = {"retry_for": retry_for, "on_delivery_failed": on_delivery_failed,
                          **options.pop("outbox_options", {})}
        # The party's one courier: its requests, its answers and the clients made from it
        # (client()) send through it. A send to a party whose key is unknown fails at once
        # (its answers would be refused); the lookup, not the cache of misses, so that a key
        # just added counts at once.
        self.courier = Courier(sender_domain, signing_key, self.role,
                               store=store if store is not None else "memory:",
                               endpoint_lookup=endpoint_lookup, version=version,
                               outbox_options=outbox_options, rules=rules,
                               key_lookup=key_lookup, **options)
        #: the memory of failed key look-ups (None when ``unknown_key_ttl`` is 0)
        self.key_cache = NegativeCache(key_lookup, unknown_key_ttl) if unknown_key_ttl else None
        lookup = key_lookup if self.key_cache is None else self.key_cache
        self.inbox = Inbox(self.exchange, self.courier, lookup, max_pending=max_pending,
                           admission_timeout=self.limits.admission_timeout,
                           max_backlog=max_backlog, retention=retention)
        self._budget = BodyBudget(self.limits.body_memory)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._accept_filter: AcceptErrorFilter | None = None
        #: the connections held, counted exactly (set when the service starts)
        self.gate: Gate | None = None
        self.app = web.Application(client_max_size=max_body)
        self.app.router.add_post(path, self._receive)
        # A service whose app is mounted elsewhere starts and stops with that application.
        self.app.on_startup.append(lambda _app: self.inbox.resume())
        self.app.on_cleanup.append(lambda _app: self.inbox.finish())
        # (#21) stop accepting, let the handlers in flight finish within the grace period
        self._drain = Drain(shutdown_grace)
        self.app.on_shutdown.append(lambda _app: self._drain.settle(lambda: self.inbox._tasks))
        self._mount_operations(metrics, health)

    def _mount_operations(self, metrics: bool | str, health: bool | str) -> None:
        """(#21) ``GET /metrics`` and ``GET /health``, beside the message path."""
        #: the service's metrics (None unless ``metrics`` was given)
        self.metrics: ServiceMetrics | None = None
        for option, default in ((metrics, "/metrics"), (health, "/health")):
            where = operations_path(option, default, self.path)
            if where is None:
                continue
            if default == "/metrics":
                self.metrics = ServiceMetrics()
                self.inbox.metrics = self.courier.metrics = self.metrics
                if self.courier.outbox is not None:
                    self.courier.outbox.metrics = self.metrics
                self.metrics.watch(self.store, self.courier.outbox, lambda: len(self.inbox._tasks))
                self.app.router.add_get(where, self.metrics.registry.serve)
            else:
                check = Health(self.store, self.courier.outbox, lambda: self._drain.draining)
                self.app.router.add_get(where, check.serve)

    @property
    def accepted_types(self) -> frozenset[str]:
        return self.exchange.accepted_types

    @property
    def store(self) -> Store:
        return self.inbox.store

    @property
    def outbox(self) -> Any:
        return self.courier.outbox

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}{self.path}"

    def add_handler(self, message_type: str, handler: Handler) -> None:
        """Call ``handler(payload)`` (or ``handler(payload, received)``) for each message of
        ``message_type``. Async handlers run on the event loop, plain functions in a thread.
        ``received`` is a :class:`pyuftp.signing.envelope.Received` with the raw ``signed_xml`` and
        ``payload_xml``. A request's handler may return a dict of extra response fields, or
        raise :class:`Rejected`."""
        self.inbox.handlers.add(message_type, handler)

    def handler(self, message_type: str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add_handler`."""
        def register(function: Handler) -> Handler:
            self.add_handler(message_type, function)
            return function
        return register

    def client(self, domain: str, role: str | None = None) -> ShapeshifterClient:
        """The role client with which this party sends to ``domain``: e.g. for a DSO service
        ``client("agr.example.com")`` is a
        :class:`~pyuftp.clients.client.ShapeshifterDsoAgrClient`. It shares this service's
        courier (its store, archive and outbox), so the service knows what the client sent and
        accepts the answers. ``role`` is the recipient's; it may be left out when the endpoint
        lookup (sync, like a :class:`~pyuftp.discovery.Directory`'s) knows ``domain`` in one role
        only that this party sends to."""
        return client_class(self.role, role or self._role_of(domain))(
            self.sender_domain, self.courier.signing_key, domain, courier=self.courier)

    def _role_of(self, domain: str) -> str:
        roles = [r for r in ROLES if (self.role, r) in self.exchange.spec.routes]
        lookup = self.courier.addresses.endpoint_lookup
        known = [r for r in roles if (domain, r) in self.courier.addresses.fixed]
        if not known and lookup is not None:
            for role in roles:
                url = lookup(domain, role)
                if inspect.isawaitable(url):  # an async lookup cannot be asked from here
                    getattr(url, "close", lambda: None)()
                    break
                if url:
                    known.append(role)
        if len(known) == 1:
            return known[0]
        if not known:
            raise AddressingError(
                f"no endpoint known for {domain} in any role a {self.role} sends to "
                f"({', '.join(roles)}): add it to the Directory, or say client(domain, "
                "role=...)", domain, "/".join(roles))
        raise ValueError(f"{domain} is known as {' and '.join(known)}: say which, e.g. "
                         f"client({domain!r}, role={known[0]!r})")

    async def _request(self, domain: str, role: str, message_type: str,
                       payload: Mapping[str, Any],
                       timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
        # request(), typed per request type, is ServiceRequest's (tools/make_api.py)
        return await self.inbox.request(domain, role, message_type, payload, timeout)

    async def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every message received so far is handled and its response delivered
        (or finally failed); False if that took longer than ``timeout``."""
        return await self.inbox.drain(timeout)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume what an earlier run left (answers to send, messages to handle), then
        listen on ``host:port`` within :attr:`limits`."""
        loop = asyncio.get_running_loop()
        self._drain.draining = False  # a service may be started again after stop()
        self._runner = web.AppRunner(self.app, access_log=None, logger=http_logger(),
                                     keepalive_timeout=self.limits.idle_timeout,
                                     lingering_time=LINGER,
                                     shutdown_timeout=self._drain.grace + self.read_timeout)
        await self._runner.setup()  # runs on_startup: the inbox resumes
        server = self._runner.server
        assert server is not None
        cap = fd_headroom(self.limits.max_connections)
        self.gate = Gate(cap, self.limits.address_share(cap))
        self._server = await loop.create_server(
            guarded(server, self.gate), self.host, self.port,
            ssl=self.ssl_context, reuse_address=True,
            # (#19.3) a TLS handshake that never finishes is an idle connection
            ssl_handshake_timeout=self.limits.idle_timeout if self.ssl_context else None)
        self.port = self._server.sockets[0].getsockname()[1]  # the real port when port=0
        warning = plain_http_warning(self.host, self.ssl_context is not None)
        if warning is not None:
            logger.warning("%s service of %s: %s", self.role, self.sender_domain, warning)
        self._accept_filter = AcceptErrorFilter(loop)
        self._accept_filter.install()
        logger.info("%s service of %s listening on %s", self.role, self.sender_domain, self.url)

    async def stop(self) -> None:
        """Stop listening, let the messages being handled finish within ``shutdown_grace``
        (the rest are handled after the restart), stop sending (:mod:`pyuftp.server.drain`)."""
        self._drain.draining = True
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()  # runs on_cleanup: the inbox finishes
            self._runner = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._accept_filter is not None:
            self._accept_filter.remove()

    async def __aenter__(self) -> ShapeshifterService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT (Ctrl-C), in a process of its own, then stop gently
        (:meth:`stop`): no new requests, handlers in flight finish within ``shutdown_grace``."""
        async def serve() -> None:
            async with self:
                await until_signalled()
        try:
            asyncio.run(serve())
        except KeyboardInterrupt:
            pass


class ShapeshifterAgrService(ShapeshifterService):
    """The aggregator's service: receives from DSOs and the CRO."""

    role = "AGR"


class ShapeshifterCroService(ShapeshifterService):
    """The common reference operator's service: receives from AGRs and DSOs."""

    role = "CRO"


class ShapeshifterDsoService(ShapeshifterService):
    """The grid operator's service: receives from AGRs and the CRO."""

    role = "DSO"


SERVICES: dict[str, type[ShapeshifterService]] = {
    cls.role: cls
    for cls in (ShapeshifterAgrService, ShapeshifterCroService, ShapeshifterDsoService)
}
assert set(SERVICES) == set(ROLES)
