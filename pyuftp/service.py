"""aiohttp.web services that receive signed UFTP messages, one per role.

    service = ShapeshifterDsoService("dso.example.com", private_key, key_lookup, endpoint_lookup,
                                     port=8080)

    @service.handler("FlexOffer")
    async def on_offer(offer):
        ...                        # return normally: Accepted; raise Rejected("why"): Rejected

    async with service:           # or service.run() in a process of its own
        ...

A service answers HTTP 200 once a message is verified and valid, then calls your handler and
sends the matching ``...Response`` back to the sender on its own. Transport problems get the
HTTP status codes of the UFTP transport appendix (400, 401, 411, 413, 419); functional ones
(wrong sender, wrong role, not addressed to us) get a ``Rejected`` response.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Awaitable, Callable, ClassVar, Mapping

from aiohttp import web

from .catalog import (
    DEFAULT_VERSION,
    MESSAGES,
    ROLES,
    accepted_by,
    may_send,
    reference_key,
    response_type,
)
from .client import ShapeshifterClient, _maybe_await, client_class
from .crypto import SigningKey, VerifyKey
from .envelope import Received, SenderMismatch, open_envelope, open_message
from .exceptions import InvalidKey, InvalidSignature, MessageError, PyUFTPError, ValidationError

logger = logging.getLogger("pyuftp")

KeyLookup = Callable[[str, str], "str | None | Awaitable[str | None]"]
EndpointLookup = Callable[[str, str], "str | None | Awaitable[str | None]"]
Handler = Callable[..., Any]

DEFAULT_PATH = "/shapeshifter/api/v3/message"
ACCEPTED_CONTENT_TYPES = ("text/xml", "application/xml")
MAX_BODY = 4 * 1024 * 1024


class Rejected(PyUFTPError):
    """Raise from a handler to answer the message with ``Result="Rejected"``.

    Extra keyword arguments become fields of the response (e.g. the
    ``flex_order_settlement_statuses`` a rejected FlexSettlementResponse still needs).
    """

    def __init__(self, reason: str, **fields: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


class ShapeshifterService:
    """Receives UFTP messages for one role of one party.

    :param sender_domain: your own internet domain (messages must be addressed to it).
    :param signing_key: your private key, to sign the responses.
    :param key_lookup: ``(domain, role) -> public key`` (base64 or ``cs1.``; sync or async);
        ``None`` when unknown.
    :param endpoint_lookup: ``(domain, role) -> url`` of the other party's service, to send
        responses to.
    :param host: interface to listen on (loopback unless you say otherwise).
    :param port: TCP port; 0 picks a free one (see :attr:`url` after start).
    :param path: the URL path of the message endpoint.
    :param version: the UFTP version of the responses this service writes.
    :param client_options: keyword arguments for the clients that send the responses.
    """

    role: ClassVar[str]

    def __init__(
        self,
        sender_domain: str,
        signing_key: str | SigningKey,
        key_lookup: KeyLookup,
        endpoint_lookup: EndpointLookup,
        host: str = "127.0.0.1",
        port: int = 8080,
        path: str = DEFAULT_PATH,
        *,
        version: str = DEFAULT_VERSION,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.sender_domain = sender_domain
        self.signing_key = signing_key if isinstance(signing_key, SigningKey) else SigningKey(signing_key)
        self.key_lookup = key_lookup
        self.endpoint_lookup = endpoint_lookup
        self.host = host
        self.port = port
        self.path = path
        self.version = version
        self.client_options = dict(client_options or {})
        self.accepted_types = accepted_by(self.role)
        self._handlers: dict[str, tuple[Handler, bool, bool]] = {}
        self._clients: dict[tuple[str, str], ShapeshifterClient] = {}
        self._tasks: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_post(path, self._receive)
        self.app.on_cleanup.append(self._close_clients)

    # --- handlers --------------------------------------------------------------------------

    def add_handler(self, message_type: str, handler: Handler) -> None:
        """Call ``handler(payload)`` (or ``handler(payload, received)``) for each message of
        ``message_type``. Async handlers run on the event loop, plain functions in a thread.

        ``received`` is a :class:`pyuftp.envelope.Received` with the raw ``signed_xml`` and
        ``payload_xml`` for archiving. A handler of a request may return a dict of extra
        response fields, or raise :class:`Rejected`.
        """
        if message_type not in self.accepted_types:
            raise ValueError(
                f"a {self.role} service does not receive {message_type}; it receives "
                + ", ".join(sorted(self.accepted_types))
            )
        parameters = inspect.signature(handler).parameters
        wants_received = len(parameters) >= 2
        is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)
        )
        self._handlers[message_type] = (handler, is_async, wants_received)

    def handler(self, message_type: str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add_handler`."""
        def register(function: Handler) -> Handler:
            self.add_handler(message_type, function)
            return function
        return register

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``host:port``."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # the real port when port=0
        if sockets:
            self.port = sockets[0].getsockname()[1]
        logger.info("%s service of %s listening on %s", self.role, self.sender_domain, self.url)

    async def stop(self) -> None:
        """Finish the messages being handled, then stop listening and close the clients."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._close_clients()

    async def __aenter__(self) -> "ShapeshifterService":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    def run(self) -> None:
        """Serve until interrupted (Ctrl-C), in a process of its own."""
        async def serve() -> None:
            async with self:
                await asyncio.Event().wait()

        try:
            asyncio.run(serve())
        except KeyboardInterrupt:
            pass

    async def drain(self) -> None:
        """Wait until every message received so far has been handled and answered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    # --- replies -----------------------------------------------------------------------------

    def client_for(self, domain: str, role: str) -> ShapeshifterClient:
        """A client (kept and reused) that sends from this service's party to ``domain``."""
        key = (domain, role)
        client = self._clients.get(key)
        if client is None:
            cls = client_class(self.role, role)
            options = {"version": self.version, **self.client_options}
            client = self._clients[key] = cls(
                self.sender_domain, self.signing_key, domain,
                endpoint_lookup=self.endpoint_lookup, **options,
            )
        return client

    async def _close_clients(self, _app: web.Application | None = None) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    # --- receiving -----------------------------------------------------------------------------

    async def _receive(self, request: web.Request) -> web.Response:
        if request.content_type not in ACCEPTED_CONTENT_TYPES:
            return _error(400, f"Content-Type must be text/xml, not {request.content_type or 'absent'}")
        charset = request.charset
        if charset and charset.lower() not in ("utf-8", "utf8"):
            return _error(400, f"charset must be utf-8, not {charset}")
        if request.content_length is None:
            return _error(411, "a Content-Length is required")
        if request.content_length > MAX_BODY:
            return _error(413, f"the body may be at most {MAX_BODY} bytes")
        data = await request.read()

        try:
            envelope = open_envelope(data)
        except MessageError as exc:
            return _error(400, f"invalid SignedMessage: {exc}")
        try:
            public_key = await _maybe_await(self.key_lookup(envelope.sender_domain, envelope.sender_role))
        except Exception:  # a broken lookup is the receiver's problem: let the sender retry
            logger.exception("key lookup for %s (%s) failed", envelope.sender_domain, envelope.sender_role)
            public_key = None
        if not public_key:
            return _error(419, f"no public key found for {envelope.sender_domain} ({envelope.sender_role})")
        try:
            received = open_message(envelope, public_key, data)
        except InvalidKey as exc:
            logger.error("the key found for %s is unusable: %s", envelope.sender_domain, exc)
            return _error(419, f"no usable public key for {envelope.sender_domain}")
        except InvalidSignature:
            return _error(401, "the signature does not verify with the sender's public key")
        except SenderMismatch as exc:
            self._answer_later(exc.received, str(exc))
            return _ok()
        except MessageError as exc:
            return _error(400, f"invalid message: {exc}")
        self._answer_later(received, self._functional_problem(received))
        return _ok()

    def _functional_problem(self, received: Received) -> str | None:
        message_type, payload = received.message_type, received.payload
        if message_type not in self.accepted_types:
            return f"a {self.role} does not accept {message_type} messages"
        if not may_send(received.sender_role, self.role, message_type):
            return f"a {received.sender_role} may not send {message_type} to a {self.role}"
        if payload["recipient_domain"] != self.sender_domain:
            return f"addressed to {payload['recipient_domain']}, not to {self.sender_domain}"
        return None

    def _answer_later(self, received: Received, problem: str | None) -> None:
        # HTTP 200 means "received"; handling and the response happen after it.
        task = asyncio.get_running_loop().create_task(self._handle(received, problem))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, received: Received, problem: str | None) -> None:
        try:
            if problem is not None:
                logger.warning("rejecting %s %s from %s (%s): %s", received.message_type,
                               received.payload.get("message_id"), received.sender_domain,
                               received.sender_role, problem)
                await self._respond(received, {"result": "Rejected", "rejection_reason": problem})
                return
            fields = await self._call_handler(received)
            if fields is not None:
                await self._respond(received, fields)
        except ValidationError as exc:
            logger.error("cannot answer %s %s from %s: %s (a %s handler must return what the "
                         "response needs beyond the request's fields)", received.message_type,
                         received.payload.get("message_id"), received.sender_domain, exc,
                         received.message_type)
        except Exception:
            logger.exception("handling %s from %s (%s) failed", received.message_type,
                             received.sender_domain, received.sender_role)

    async def _call_handler(self, received: Received) -> dict[str, Any] | None:
        message_type = received.message_type
        answer = response_type(message_type)
        entry = self._handlers.get(message_type)
        if entry is None:
            if answer is None:
                logger.info("no handler for %s from %s; ignored", message_type, received.sender_domain)
                return None
            if message_type == "TestMessage":
                return {}
            return {"result": "Rejected",
                    "rejection_reason": f"{self.sender_domain} does not handle {message_type}"}
        handler, is_async, wants_received = entry
        args = (received.payload, received) if wants_received else (received.payload,)
        try:
            result = await handler(*args) if is_async else await asyncio.to_thread(handler, *args)
        except Rejected as rejection:
            return {**rejection.fields, "result": "Rejected", "rejection_reason": rejection.reason}
        except Exception as exc:
            logger.exception("the %s handler failed on %s", message_type, received.payload.get("message_id"))
            return {"result": "Rejected", "rejection_reason": f"processing failed: {type(exc).__name__}"}
        if answer is None:
            return None
        fields = dict(result) if isinstance(result, Mapping) else {}
        fields.setdefault("result", "Accepted")
        return fields

    async def _respond(self, received: Received, fields: Mapping[str, Any]) -> None:
        """Send the ``...Response`` to a request, filled in from the request."""
        answer = response_type(received.message_type)
        if answer is None:
            return
        request = received.payload
        version = request.get("version", self.version)
        node = MESSAGES[_schema_version(version)][answer]
        payload = dict(fields)
        if answer == "TestMessageResponse":  # it only echoes: no result
            payload.pop("result", None)
            payload.pop("rejection_reason", None)
        else:
            payload.setdefault(reference_key(received.message_type), request["message_id"])
        payload.setdefault("conversation_id", request["conversation_id"])
        payload.setdefault("version", version)
        # Fields both messages have (a query's period and time zone) carry over.
        for key in node.keys():
            if key not in payload and key in request and key not in _OWN_FIELDS:
                payload[key] = request[key]
        client = self.client_for(received.sender_domain, received.sender_role)
        # A misrouted request is still answered (Rejected), outside the normal routes.
        await client.send(answer, payload, check_route=False)


_OWN_FIELDS = {"message_id", "time_stamp", "sender_domain", "recipient_domain", "result",
               "rejection_reason"}


def _schema_version(version: str) -> str:
    from .messaging import supported_version
    return supported_version(version)


def _ok() -> web.Response:
    return web.Response(status=200, text="OK")


def _error(status: int, text: str) -> web.Response:
    logger.warning("refused a message with HTTP %d: %s", status, text)
    return web.Response(status=status, text=text)


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
    cls.role: cls for cls in (ShapeshifterAgrService, ShapeshifterCroService, ShapeshifterDsoService)
}
assert set(SERVICES) == set(ROLES)
