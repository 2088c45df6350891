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
import hashlib
import inspect
import logging
import os
import time
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
from .crypto import SIGNATURE_BYTES, SigningKey
from .envelope import Received, SenderMismatch, open_envelope, open_message
from .exceptions import InvalidKey, InvalidSignature, MessageError, Rejected, ValidationError
from .messaging import parse_xml, read_element, supported_version
from .outbox import PRUNE_INTERVAL, Outbox, positive_int
from .store import OutboxItem, Store, open_store

logger = logging.getLogger("pyuftp")

KeyLookup = Callable[[str, str], "str | None | Awaitable[str | None]"]
EndpointLookup = Callable[[str, str], "str | None | Awaitable[str | None]"]
Handler = Callable[..., Any]

DEFAULT_PATH = "/shapeshifter/api/v3/message"
ACCEPTED_CONTENT_TYPES = ("text/xml", "application/xml")
MAX_BODY = 4 * 1024 * 1024


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
    :param store: a :class:`pyuftp.store.Store`, or the path of a SQLite file, that keeps the
        outbox of responses and the ids of received messages across restarts. Without one,
        both live in memory (duplicates are still caught while the process runs).
    :param retry_for: how long (seconds) responses are retried before they count as failed.
    :param on_delivery_failed: ``(item, error)``, called when a response finally fails.
    :param max_body: the largest request body accepted (bigger gets HTTP 413 unread).
    :param read_timeout: seconds a sender may take to send its request (then HTTP 408).
    :param max_age: a message whose ``time_stamp`` is older (seconds) is rejected.
    :param max_clock_skew: ... or further in the future than this.
    :param max_pending: messages answered 200 but not yet handled, at most; beyond that a
        request waits (without its 200) for room, so that a flood slows its senders down
        instead of filling the service's memory.
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
        store: "Store | str | os.PathLike[str] | None" = None,
        retry_for: float = 3600.0,
        on_delivery_failed: Callable[..., Any] | None = None,
        max_body: int = MAX_BODY,
        read_timeout: float = 10.0,
        max_age: float = 24 * 3600.0,
        max_clock_skew: float = 300.0,
        max_pending: int = 100,
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
        self._waiting: dict[str, asyncio.Future] = {}  # request message_id -> its response
        self._conversations: dict[str, str] = {}  # conversation_id -> request message_id
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.max_age = max_age
        self.max_clock_skew = max_clock_skew
        self.max_pending = positive_int(max_pending, "max_pending")
        self._room_freed = asyncio.Event()
        self._next_prune = 0.0
        self.store = open_store(store)
        self.outbox = Outbox(self.store, self._deliver, retry_for=retry_for,
                             on_delivery_failed=on_delivery_failed)
        self.app = web.Application(client_max_size=max_body)
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
        """Resume what an earlier run left (responses to send, messages to handle), then
        listen on ``host:port``."""
        await self.outbox.start()
        await self._recover()
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
        await self.outbox.stop()
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

    async def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every message received so far has been handled and its response
        delivered (or finally failed); False if that took longer than ``timeout``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            await asyncio.wait(list(self._tasks), timeout=remaining)
        return await self.outbox.wait_idle(max(0.0, deadline - asyncio.get_running_loop().time()))

    async def request(self, domain: str, role: str, message_type: str,
                      payload: Mapping[str, Any],
                      timeout: float = 60.0) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send a request and wait for its business response to arrive at this service.

        ``sent, response = await dso.request("agr.example.com", "AGR", "FlexRequest", {...})``
        gives the request as sent and the FlexRequestResponse that answers it (matched by
        the message id it names, or for a TestMessage by conversation). Raises
        ``asyncio.TimeoutError`` when none comes in ``timeout`` seconds; the response also
        reaches its handler, if one is registered.
        """
        if response_type(message_type) is None:
            raise ValueError(f"{message_type} is not answered by a response")
        client = self.client_for(domain, role)
        data, sent = client.prepare(message_type, payload)
        future = self._waiting[sent["message_id"]] = asyncio.get_running_loop().create_future()
        self._conversations[sent["conversation_id"]] = sent["message_id"]
        try:
            await client.queue(message_type, data, sent)
            return sent, await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(sent["message_id"], None)
            self._conversations.pop(sent["conversation_id"], None)

    async def _deliver(self, item: OutboxItem) -> None:
        client = self.client_for(item.recipient_domain, item.recipient_role)
        await client.post_once(item.body)

    def _settle_waiting(self, received: Received) -> None:
        """Hand a response to whoever awaits it through :meth:`request`."""
        message_type = received.message_type
        if not message_type.endswith("Response"):
            return
        request_type = message_type[: -len("Response")]
        payload = received.payload
        if request_type == "TestMessage":
            request_id = self._conversations.get(payload["conversation_id"])
        else:
            request_id = payload.get(reference_key(request_type))
        future = self._waiting.get(request_id) if request_id else None
        if future is not None and not future.done():
            future.set_result(payload)

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
            options = {"version": self.version, "outbox": self.outbox, **self.client_options}
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
        if request.content_length > self.max_body:
            return _error(413, f"the body may be at most {self.max_body} bytes")
        try:
            # asyncio.timeout, not wait_for: wait_for wraps the read in a task of its own, a
            # loop round and some 7 µs more per request.
            async with asyncio.timeout(self.read_timeout):
                data = await request.read()
        except TimeoutError:
            return _error(408, f"the request body did not arrive within {self.read_timeout} s")

        await self._room()
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
            self._answer_later(exc.received, str(exc), record=False)  # never recorded
            return _ok()
        except MessageError as exc:
            return _error(400, f"invalid message: {exc}")
        # Recorded before the 200: from then on the message is ours to handle, once.
        seen = await self._record(received)
        if seen == "duplicate":
            logger.info("%s %s from %s again: already received, not handled twice",
                        received.message_type, received.payload["message_id"], received.sender_domain)
            return _ok()
        if seen == "conflict":
            self._answer_later(received, "duplicate message id: a different message with this "
                                         "MessageID was received before", record=False)
            return _ok()
        self._answer_later(received, self._functional_problem(received))
        return _ok()

    async def _record(self, received: Received) -> str:
        now = time.time()
        if now >= self._next_prune:
            # A resend older than the time-stamp window is refused anyway: its record can go.
            self._next_prune = now + PRUNE_INTERVAL
            keep = self.max_age + self.max_clock_skew + 3600.0
            await self.store.call(self.store.forget_received, now - keep)
        digest = hashlib.sha256(received.payload_xml).hexdigest()
        return await self.store.call(
            self.store.record_received, received.sender_domain, received.payload["message_id"],
            digest, received.signed_xml or b"", now)

    async def _recover(self) -> None:
        """Handle what was received (and answered 200) but not handled before a restart."""
        for sender_domain, message_id, data in await self.store.call(self.store.unhandled):
            try:
                envelope = open_envelope(data)
                # Verified when it arrived; the seal is the signature followed by the XML.
                payload_xml = envelope.sealed[SIGNATURE_BYTES:]
                message_type, payload = read_element(parse_xml(payload_xml))
            except MessageError as exc:
                logger.error("cannot recover %s from %s: %s", message_id, sender_domain, exc)
                await self.store.call(self.store.mark_handled, sender_domain, message_id)
                continue
            received = Received(message_type, payload, envelope.sender_domain,
                                envelope.sender_role, payload_xml, data, recovered=True)
            logger.warning("handling %s %s from %s, received before a restart", message_type,
                           message_id, sender_domain)
            await self._room()
            self._answer_later(received, self._functional_problem(received))

    def _functional_problem(self, received: Received) -> str | None:
        message_type, payload = received.message_type, received.payload
        if message_type not in self.accepted_types:
            return f"a {self.role} does not accept {message_type} messages"
        if not may_send(received.sender_role, self.role, message_type):
            return f"a {received.sender_role} may not send {message_type} to a {self.role}"
        if payload["recipient_domain"] != self.sender_domain:
            return f"addressed to {payload['recipient_domain']}, not to {self.sender_domain}"
        age = time.time() - payload["time_stamp"].timestamp()
        if age > self.max_age:
            return f"time_stamp {payload['time_stamp'].isoformat()} is older than {self.max_age:.0f} s"
        if -age > self.max_clock_skew:
            return f"time_stamp {payload['time_stamp'].isoformat()} is in the future"
        return None

    async def _room(self) -> None:
        """Wait while ``max_pending`` messages await handling (back-pressure)."""
        while len(self._tasks) >= self.max_pending:
            self._room_freed.clear()
            await self._room_freed.wait()

    def _answer_later(self, received: Received, problem: str | None, record: bool = True) -> None:
        # HTTP 200 means "received"; handling and the response happen after it.
        task = asyncio.get_running_loop().create_task(self._handle(received, problem, record))
        self._tasks.add(task)
        task.add_done_callback(self._handled)

    def _handled(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._room_freed.set()

    async def _handle(self, received: Received, problem: str | None, record: bool = True) -> None:
        try:
            await self._handle_once(received, problem)
        finally:
            if record:
                try:
                    await self.store.call(self.store.mark_handled, received.sender_domain,
                                          received.payload["message_id"])
                except Exception:  # it is handled again after a restart: say so, loudly
                    logger.exception("cannot mark %s %s from %s as handled",
                                     received.message_type, received.payload["message_id"],
                                     received.sender_domain)

    async def _handle_once(self, received: Received, problem: str | None) -> None:
        self._settle_waiting(received)
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
        node = MESSAGES[supported_version(version)][answer]
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
        data, sent = client.prepare(answer, payload, check_route=False)
        await client.queue(answer, data, sent)


_OWN_FIELDS = {"message_id", "time_stamp", "sender_domain", "recipient_domain", "result",
               "rejection_reason"}


def _ok() -> web.Response:
    return web.Response(status=200, text="OK")


def _error(status: int, text: str) -> web.Response:
    # Error texts can quote what the sender sent: never echo (or log) more than a line of it.
    if len(text) > 300:
        text = text[:300] + "..."
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
