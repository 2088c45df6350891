"""aiohttp clients that sign UFTP messages and POST them to another party's service.

    async with ShapeshifterAgrDsoClient("agr.example.com", private_key, "dso.example.com",
                                        "https://dso.example.com/shapeshifter/api/v3/message") as c:
        sent = await c.send_flex_offer({...})   # the payload as sent, with its message_id

One client talks to one recipient (domain and role). Every ``send_*`` fills in the metadata,
validates, signs, POSTs ``text/xml; charset=utf-8`` and returns the payload as sent. HTTP 200
only means "received": the business answer (``...Response``) arrives later at your own service.
"""
from __future__ import annotations

import asyncio
import datetime
import email.utils
import inspect
import logging
import os
import random
import re
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, ClassVar, Mapping
from urllib.parse import urljoin

import aiohttp

from .catalog import DEFAULT_VERSION, ROUTES
from .crypto import SigningKey, VerifyKey
from .envelope import seal_message
from .exceptions import DeliveryError, FinalDeliveryError, TemporaryDeliveryError, excerpt

if TYPE_CHECKING:
    from .outbox import Outbox
    from .store import OutboxItem, Store

logger = logging.getLogger("pyuftp")

EndpointLookup = Callable[[str, str], "str | None | Awaitable[str | None]"]

CONTENT_TYPE = "text/xml; charset=utf-8"
REDIRECTS = (301, 302, 307, 308)


def is_temporary_status(status: int) -> bool:
    """The spec's sender-side rule: 4xx are final, except the ambiguous 404 and 429, and the
    key-lookup failure 419; everything else that is not a success is temporary."""
    if 400 <= status < 500:
        return status in (404, 419, 429)
    return True


#: The longest Retry-After that pyuftp honours (seconds); a peer asking for more gets this.
MAX_RETRY_AFTER = 3600.0
#: How much of an error response is read: enough for a reason, never a hostile flood.
ERROR_BODY_BYTES = 4096
_DELTA_SECONDS = re.compile(r"[0-9]{1,10}", re.ASCII)


def parse_retry_after(value: str | None, now: datetime.datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (ASCII delta-seconds or an HTTP date), capped at
    :data:`MAX_RETRY_AFTER`; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):  # not str.isdigit: it takes '²' and other digits
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class ShapeshifterClient:
    """Sends UFTP messages from one party (``sender_role``) to one other (``recipient_role``).

    :param sender_domain: your own internet domain, e.g. ``agr.example.com``.
    :param signing_key: your private key (base64 of the 64-byte libsodium secret key).
    :param recipient_domain: the domain of the party you send to.
    :param recipient_endpoint: the URL of its service; or give ``endpoint_lookup``.
    :param recipient_signing_key: the recipient's public key (base64 or ``cs1.``), checked
        here so a typo shows at once; pyuftp's CS1 scheme only signs, so sending needs no key
        of the recipient.
    :param version: the UFTP version to write (3.1.0 or 3.0.0).
    :param endpoint_lookup: ``(domain, role) -> url`` (sync or async), used when no
        ``recipient_endpoint`` is given.
    :param session: an ``aiohttp.ClientSession`` to share; by default the client opens one of
        its own on first use and closes it with :meth:`close` (or ``async with``).
    :param attempts: how often a temporary failure is tried in all (bounded; the durable,
        hour-long retry is the outbox's job).
    :param backoff: the first wait between attempts in seconds; it doubles each time.
    :param timeout: seconds for one HTTP attempt.
    :param send_timeout: the most seconds a store-less ``send_*`` takes in all, attempts and
        waits between them included (then it raises :class:`TemporaryDeliveryError`); a
        silent peer or one asking to retry in a day cannot hold the caller longer.
    :param store: a :class:`pyuftp.store.Store` or the path of a SQLite file: ``send_*`` then
        returns once the signed message is committed there, and a background task delivers
        it, retrying temporary failures for an hour (``outbox_options`` tune this, e.g.
        ``retry_for``, ``on_delivery_failed``). Messages left by an earlier run are sent on
        :meth:`start` (or ``async with``).
    :param outbox: an :class:`pyuftp.outbox.Outbox` to share (a service's, say) instead.
    """

    sender_role: ClassVar[str]
    recipient_role: ClassVar[str]

    def __init__(
        self,
        sender_domain: str,
        signing_key: str | SigningKey,
        recipient_domain: str,
        recipient_endpoint: str | None = None,
        recipient_signing_key: str | None = None,
        *,
        version: str = DEFAULT_VERSION,
        endpoint_lookup: EndpointLookup | None = None,
        session: aiohttp.ClientSession | None = None,
        attempts: int = 3,
        backoff: float = 0.5,
        timeout: float = 30.0,
        send_timeout: float = 60.0,
        max_redirects: int = 5,
        store: "Store | str | os.PathLike[str] | None" = None,
        outbox: "Outbox | None" = None,
        outbox_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.sender_domain = sender_domain
        self.signing_key = signing_key if isinstance(signing_key, SigningKey) else SigningKey(signing_key)
        self.recipient_domain = recipient_domain
        self.recipient_endpoint = recipient_endpoint
        self.recipient_signing_key = (
            VerifyKey(recipient_signing_key) if recipient_signing_key is not None else None
        )
        self.version = version
        self.endpoint_lookup = endpoint_lookup
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.send_timeout = float(send_timeout)
        self.max_redirects = max_redirects
        self._session = session
        self._own_session = session is None
        self.outbox = outbox
        self._own_outbox = False
        if outbox is None and store is not None:
            from .outbox import Outbox
            from .store import open_store
            self.outbox = Outbox(open_store(store), self.deliver_item, **dict(outbox_options or {}))
            self._own_outbox = True
        if recipient_endpoint is None and endpoint_lookup is None:
            raise ValueError(
                f"no endpoint for {recipient_domain} ({self.recipient_role}): pass "
                "recipient_endpoint or endpoint_lookup"
            )

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> "ShapeshifterClient":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def start(self) -> None:
        """Start delivering from the client's own outbox (messages of earlier runs too)."""
        if self._own_outbox and self.outbox is not None:
            await self.outbox.start()

    async def close(self) -> None:
        """Stop the client's own outbox (undelivered messages stay stored) and close its own
        HTTP session (shared ones are left to their owners)."""
        if self._own_outbox and self.outbox is not None:
            await self.outbox.stop()
            self.outbox.store.close()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # keep-alive connections to the one recipient are the fast path
            self._session = aiohttp.ClientSession(timeout=self.timeout)
            self._own_session = True
        return self._session

    async def endpoint(self) -> str:
        """The recipient's URL (looked up once, then remembered)."""
        if self.recipient_endpoint is None:
            assert self.endpoint_lookup is not None
            url = await _maybe_await(self.endpoint_lookup(self.recipient_domain, self.recipient_role))
            if not url:
                raise TemporaryDeliveryError(
                    f"no endpoint known for {self.recipient_domain} ({self.recipient_role})"
                )
            self.recipient_endpoint = url
        return self.recipient_endpoint

    # --- sending -----------------------------------------------------------------------------

    def prepare(self, message_type: str, payload: Mapping[str, Any], *,
                check_route: bool = True) -> tuple[bytes, dict[str, Any]]:
        """Sign a message for this recipient: ``(SignedMessage bytes, payload as sent)``.

        Raises ValidationError for a payload that does not fit, before anything is sent, and
        ValueError for a message type this sender does not send to this recipient (unless
        ``check_route`` is off: a service answers even a misrouted request).
        """
        if check_route and message_type not in self.message_types():
            raise ValueError(
                f"a {self.sender_role} does not send {message_type} to a {self.recipient_role}; "
                f"this client sends {', '.join(self.message_types())}"
            )
        message = dict(payload)
        message.setdefault("sender_domain", self.sender_domain)
        message.setdefault("recipient_domain", self.recipient_domain)
        message.setdefault("version", self.version)
        return seal_message(message_type, message, self.signing_key, self.sender_role)

    async def send(self, message_type: str, payload: Mapping[str, Any], *,
                   check_route: bool = True) -> dict[str, Any]:
        """Validate, sign and POST one message; return the payload as sent."""
        data, sent = self.prepare(message_type, payload, check_route=check_route)
        if self.outbox is None:
            await self.post(data)
            logger.info("sent %s %s to %s (%s)", message_type, sent["message_id"],
                        self.recipient_domain, self.recipient_role)
            return sent
        if self._own_outbox:
            await self.outbox.start()  # idempotent: the first send starts delivery
        await self.queue(message_type, data, sent)
        logger.info("queued %s %s for %s (%s)", message_type, sent["message_id"],
                    self.recipient_domain, self.recipient_role)
        return sent

    async def queue(self, message_type: str, data: bytes, sent: Mapping[str, Any]) -> None:
        """Commit a prepared message to the outbox, for delivery to this client's recipient."""
        from .store import OutboxItem
        assert self.outbox is not None, "queue() needs a client with a store or an outbox"
        now = time.time()
        await self.outbox.submit(OutboxItem(
            message_id=sent["message_id"], message_type=message_type,
            sender_domain=self.sender_domain, recipient_domain=self.recipient_domain,
            recipient_role=self.recipient_role, body=data, created_at=now,
            expires_at=self.outbox.expires_at(now),
        ))

    async def deliver_item(self, item: "OutboxItem") -> None:
        """One delivery attempt of a stored message (what an outbox calls)."""
        if (item.recipient_domain, item.recipient_role) == (self.recipient_domain, self.recipient_role):
            await self.post_once(item.body)
            return
        if self.endpoint_lookup is None:
            raise TemporaryDeliveryError(
                f"this client sends to {self.recipient_domain}, but its store holds a message "
                f"for {item.recipient_domain} ({item.recipient_role}); give each client its "
                "own store, or share a service's"
            )
        url = await _maybe_await(self.endpoint_lookup(item.recipient_domain, item.recipient_role))
        if not url:
            raise TemporaryDeliveryError(f"no endpoint known for {item.recipient_domain}")
        await self.post_once(item.body, url)

    async def post(self, data: bytes) -> None:
        """POST a signed envelope, retrying temporary failures a bounded number of times,
        all within ``send_timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.send_timeout
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            left = deadline - loop.time()
            try:
                async with asyncio.timeout(left):
                    await self.post_once(data)
                return
            except TimeoutError:
                raise TemporaryDeliveryError(
                    f"no answer from {self.recipient_domain} within send_timeout "
                    f"({self.send_timeout:g} s, attempt {attempt})") from None
            except TemporaryDeliveryError as exc:
                wait = delay * (0.5 + random.random())  # jitter keeps retries of many apart
                if exc.retry_after is not None:
                    wait = max(wait, exc.retry_after)
                if attempt == self.attempts or loop.time() + wait >= deadline:
                    raise
                logger.warning("delivery attempt %d to %s failed (%s); again in %.2fs",
                               attempt, self.recipient_domain, exc, wait)
                await asyncio.sleep(wait)
                delay *= 2

    async def post_once(self, data: bytes, url: str | None = None) -> None:
        """One POST (following redirects); raises Temporary/FinalDeliveryError."""
        url = url or await self.endpoint()
        for _hop in range(self.max_redirects + 1):
            try:
                async with self._http().post(
                    url, data=data, headers={"Content-Type": CONTENT_TYPE},
                    allow_redirects=False,  # aiohttp would turn a 301/302 POST into a GET
                ) as response:
                    status = response.status
                    if status in REDIRECTS and "Location" in response.headers:
                        url = urljoin(url, response.headers["Location"])
                        continue
                    if 200 <= status < 300:
                        return
                    # A few KB say why; a hostile peer's 300 MB error page stays unread.
                    head = await response.content.read(ERROR_BODY_BYTES)
                    text = excerpt(head.decode("utf-8", "replace"), 200)
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
            except asyncio.TimeoutError:
                raise TemporaryDeliveryError(f"timed out posting to {url}", url=url) from None
            except aiohttp.ClientError as exc:
                raise TemporaryDeliveryError(f"cannot reach {url}: {exc}", url=url) from None
            if is_temporary_status(status):
                raise TemporaryDeliveryError(f"{url} answered HTTP {status}: {text}",
                                             status=status, url=url, retry_after=retry_after)
            raise FinalDeliveryError(f"{url} answered HTTP {status}: {text}", status=status, url=url)
        raise TemporaryDeliveryError(f"more than {self.max_redirects} redirects from {url}", url=url)

    @classmethod
    def message_types(cls) -> tuple[str, ...]:
        """The message types this client may send."""
        return ROUTES[(cls.sender_role, cls.recipient_role)] + ("TestMessage", "TestMessageResponse")

    async def send_test_message(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """A TestMessage checks that the other party can be reached; it answers with a
        TestMessageResponse."""
        return await self.send("TestMessage", message)

    async def send_test_message_response(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Answer a TestMessage."""
        return await self.send("TestMessageResponse", message)


def _sender(message_type: str, doc: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def send(self: ShapeshifterClient, message: Mapping[str, Any]) -> dict[str, Any]:
        return await self.send(message_type, message)

    send.__doc__ = f"{doc}\n\nSends a ``{message_type}``; returns the payload as sent."
    return send


class ShapeshifterAgrCroClient(ShapeshifterClient):
    """Client that allows the aggregator to connect to the CRO."""

    sender_role, recipient_role = "AGR", "CRO"
    send_agr_portfolio_update = _sender(
        "AGRPortfolioUpdate", "Tell the CRO on which connections the AGR represents prosumers.")
    send_agr_portfolio_query = _sender(
        "AGRPortfolioQuery", "Ask the CRO which DSOs and congestion points the AGR's connections are on.")


class ShapeshifterAgrDsoClient(ShapeshifterClient):
    """Client that allows the aggregator to connect to a DSO."""

    sender_role, recipient_role = "AGR", "DSO"
    send_d_prognosis = _sender(
        "D-Prognosis", "Send the DSO the AGR's expected load (D-prognosis) for a congestion point and period.")
    send_flex_request_response = _sender(
        "FlexRequestResponse", "Answer a FlexRequest: was it processed successfully?")
    send_flex_offer = _sender(
        "FlexOffer", "Offer the DSO flexibility: per ISP the power change offered and the price.")
    send_flex_offer_revocation = _sender(
        "FlexOfferRevocation", "Revoke a FlexOffer before it expires (not once it has accepted FlexOrders).")
    send_flex_order_response = _sender(
        "FlexOrderResponse", "Answer a FlexOrder: accepted or rejected.")
    send_flex_settlement_response = _sender(
        "FlexSettlementResponse", "Answer a FlexSettlement, accepting or disputing each order.")
    send_flex_reservation_update_response = _sender(
        "FlexReservationUpdateResponse", "Answer a FlexReservationUpdate.")
    send_metering = _sender("Metering", "Send the DSO metering data for a connection.")


class ShapeshifterCroAgrClient(ShapeshifterClient):
    """Client that allows the CRO to connect to an aggregator."""

    sender_role, recipient_role = "CRO", "AGR"
    send_agr_portfolio_update_response = _sender(
        "AGRPortfolioUpdateResponse", "Answer an AGRPortfolioUpdate.")
    send_agr_portfolio_query_response = _sender(
        "AGRPortfolioQueryResponse", "Answer an AGRPortfolioQuery with the DSO view of the AGR's connections.")


class ShapeshifterCroDsoClient(ShapeshifterClient):
    """Client that allows the CRO to connect to a DSO."""

    sender_role, recipient_role = "CRO", "DSO"
    send_dso_portfolio_update_response = _sender(
        "DSOPortfolioUpdateResponse", "Answer a DSOPortfolioUpdate.")
    send_dso_portfolio_query_response = _sender(
        "DSOPortfolioQueryResponse", "Answer a DSOPortfolioQuery with the connections and their AGRs.")


class ShapeshifterDsoAgrClient(ShapeshifterClient):
    """Client that allows a DSO to connect to an aggregator."""

    sender_role, recipient_role = "DSO", "AGR"
    send_d_prognosis_response = _sender("D-PrognosisResponse", "Confirm reception of a D-Prognosis.")
    send_flex_request = _sender(
        "FlexRequest", "Ask the AGR for flexibility: ISPs with Disposition Requested (and the Available rest).")
    send_flex_offer_response = _sender("FlexOfferResponse", "Confirm reception of a FlexOffer.")
    send_flex_order = _sender(
        "FlexOrder", "Buy flexibility offered in a FlexOffer (its ISP list copied unchanged).")
    send_flex_reservation_update = _sender(
        "FlexReservationUpdate", "Tell the AGR which part of a bilateral contract's volume is still reserved.")
    send_flex_settlement = _sender(
        "FlexSettlement", "Start settlement: all FlexOrders of the period, with what was delivered.")
    send_flex_offer_revocation_response = _sender(
        "FlexOfferRevocationResponse", "Answer a FlexOfferRevocation.")
    send_metering_response = _sender("MeteringResponse", "Confirm reception of metering data.")


class ShapeshifterDsoCroClient(ShapeshifterClient):
    """Client that allows a DSO to connect to the CRO."""

    sender_role, recipient_role = "DSO", "CRO"
    send_dso_portfolio_update = _sender(
        "DSOPortfolioUpdate", "Tell the CRO on which congestion points the DSO wants to trade flexibility.")
    send_dso_portfolio_query = _sender(
        "DSOPortfolioQuery", "Ask the CRO which AGRs represent connections on a congestion point.")


CLIENTS: dict[tuple[str, str], type[ShapeshifterClient]] = {
    (cls.sender_role, cls.recipient_role): cls
    for cls in (ShapeshifterAgrCroClient, ShapeshifterAgrDsoClient, ShapeshifterCroAgrClient,
                ShapeshifterCroDsoClient, ShapeshifterDsoAgrClient, ShapeshifterDsoCroClient)
}


def client_class(sender_role: str, recipient_role: str) -> type[ShapeshifterClient]:
    """The client class for messages from ``sender_role`` to ``recipient_role``."""
    try:
        return CLIENTS[(sender_role, recipient_role)]
    except KeyError:
        raise ValueError(f"UFTP has no messages from a {sender_role} to a {recipient_role}") from None
