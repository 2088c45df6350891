"""Clients that sign UFTP messages and send them to another party's service.

    async with ShapeshifterAgrDsoClient("agr.example.com", private_key, "dso.example.com",
                                        "https://dso.example.com/shapeshifter/api/v3/message") as c:
        sent = await c.send_flex_offer({...})   # the payload as sent, with its message_id

One client talks to one recipient (domain and role). Every ``send_*`` fills in the metadata,
validates, signs, POSTs ``text/xml; charset=utf-8`` and returns the payload as sent. HTTP 200
only means "received": the business answer (``...Response``) arrives later at your own service.
The sealing, addressing and delivery are a :class:`~pyuftp.delivery.Courier`'s; the role
classes (one per sender and recipient role, with a ``send_*`` method per message type that
route carries) are made from the catalog.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import aiohttp

from .catalog import ROLES, snake_case, spec
from .crypto import SigningKey, VerifyKey
from .delivery import Courier, EndpointLookup
from .descriptions import summary
from .outbox import Outbox
from .store import Store
from .transport import Auth, Poster, check_url

logger = logging.getLogger(__name__)

__all__ = ["ShapeshifterClient", "client_class", "CLIENTS", "ShapeshifterAgrCroClient",
           "ShapeshifterAgrDsoClient", "ShapeshifterCroAgrClient", "ShapeshifterCroDsoClient",
           "ShapeshifterDsoAgrClient", "ShapeshifterDsoCroClient"]


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
        waits between them included (then it raises ``TemporaryDeliveryError``); a silent
        peer or one asking to retry in a day cannot hold the caller longer.
    :param auth: ``auth(url) -> headers`` (sync or async): extra headers for every POST,
        e.g. an OAuth2 bearer token.
    :param store: a :class:`pyuftp.store.Store`, or the path or URL of one to open: ``send_*``
        then returns once the signed message is committed there, and a background task
        delivers it, retrying temporary failures for an hour (``outbox_options`` tune this,
        e.g. ``retry_for``, ``on_delivery_failed``). Messages left by an earlier run are sent
        on :meth:`start` (or ``async with``). A store given as a path is closed with the
        client; a Store object is left to its owner.
    :param courier: a :class:`~pyuftp.delivery.Courier` to share (a service's, say) instead.
    """

    sender_role: ClassVar[str]
    recipient_role: ClassVar[str]

    def __init__(
        self,
        sender_domain: str,
        signing_key: str | bytes | SigningKey,
        recipient_domain: str,
        recipient_endpoint: str | None = None,
        recipient_signing_key: str | None = None,
        *,
        version: str | None = None,
        endpoint_lookup: EndpointLookup | None = None,
        session: aiohttp.ClientSession | None = None,
        attempts: int = 3,
        backoff: float = 0.5,
        timeout: float = 30.0,
        send_timeout: float = 60.0,
        max_redirects: int = 5,
        auth: Auth | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        courier: Courier | None = None,
        outbox_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.sender_domain = sender_domain
        self.recipient_domain = recipient_domain
        self.recipient_signing_key = (
            VerifyKey(recipient_signing_key) if recipient_signing_key is not None else None)
        if recipient_endpoint is None and endpoint_lookup is None and courier is None:
            raise ValueError(f"no endpoint for {recipient_domain} ({self.recipient_role}): "
                             "pass recipient_endpoint or endpoint_lookup")
        endpoints = {}
        if recipient_endpoint is not None:
            endpoints[(recipient_domain, self.recipient_role)] = check_url(
                recipient_endpoint, "recipient_endpoint")
        self._own_courier = courier is None
        self.courier = courier or Courier(
            sender_domain, signing_key, self.sender_role, store=store,
            endpoint_lookup=endpoint_lookup, endpoints=endpoints, version=version,
            attempts=attempts, backoff=backoff, send_timeout=send_timeout,
            poster=Poster(timeout=timeout, auth=auth, session=session, max_redirects=max_redirects),
            outbox_options=outbox_options)
        self.version = self.courier.spec.version

    @property
    def signing_key(self) -> SigningKey:
        return self.courier.signing_key

    @property
    def outbox(self) -> Outbox | None:
        """The outbox that delivers this client's messages (None without a store)."""
        return self.courier.outbox

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> ShapeshifterClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def start(self) -> None:
        """Start delivering from the client's own outbox (messages of earlier runs too)."""
        if self._own_courier:
            await self.courier.start()

    async def close(self) -> None:
        """Stop the client's own delivery (undelivered messages stay stored), close what it
        opened (its store, its HTTP session); what was passed in is left to its owner."""
        if self._own_courier:
            await self.courier.close()

    async def endpoint(self) -> str:
        """The recipient's URL."""
        return await self.courier.endpoint(self.recipient_domain, self.recipient_role)

    # --- sending -----------------------------------------------------------------------------

    @classmethod
    def message_types(cls) -> tuple[str, ...]:
        """The message types this client may send."""
        return spec().sent_by(cls.sender_role, cls.recipient_role)

    def prepare(self, message_type: str, payload: Mapping[str, Any], *,
                check_route: bool = True) -> tuple[bytes, dict[str, Any]]:
        """Sign a message for this recipient: ``(SignedMessage bytes, payload as sent)``."""
        return self.courier.seal(message_type, payload, self.recipient_domain,
                                 self.recipient_role, check_route=check_route)

    async def send(self, message_type: str, payload: Mapping[str, Any], *,
                   check_route: bool = True) -> dict[str, Any]:
        """Validate, sign and send one message; return the payload as sent."""
        return await self.courier.send(message_type, payload, self.recipient_domain,
                                       self.recipient_role, check_route=check_route)

    async def queue(self, message_type: str, data: bytes, sent: Mapping[str, Any]) -> None:
        """Commit a prepared message to the outbox, for delivery to this client's recipient."""
        await self.courier.queue(message_type, data, sent, self.recipient_role)

    async def post(self, data: bytes) -> None:
        """POST a signed envelope now, retrying temporary failures a bounded number of
        times within ``send_timeout``."""
        await self.courier.post(data, await self.endpoint())

    async def post_once(self, data: bytes, url: str | None = None) -> None:
        """One POST; raises Temporary/FinalDeliveryError."""
        await self.courier.poster.post_once(data, url or await self.endpoint())


def _sender(message_type: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def send(self: ShapeshifterClient, message: Mapping[str, Any]) -> dict[str, Any]:
        return await self.send(message_type, message)

    send.__name__ = send.__qualname__ = "send_" + snake_case(message_type)
    send.__doc__ = f"{summary(message_type)}\n\nSends a ``{message_type}``; returns the payload as sent."
    return send


_ARTICLE = {"AGR": "an aggregator", "CRO": "the common reference operator", "DSO": "a grid operator"}


def _role_client(sender: str, recipient: str) -> type[ShapeshifterClient]:
    name = f"Shapeshifter{sender.title()}{recipient.title()}Client"
    namespace: dict[str, Any] = {
        "sender_role": sender, "recipient_role": recipient, "__module__": __name__,
        "__doc__": f"Client with which {_ARTICLE[sender]} ({sender}) sends to "
                   f"{_ARTICLE[recipient]} ({recipient}).",
    }
    for message_type in spec().sent_by(sender, recipient):
        method = _sender(message_type)
        namespace[method.__name__] = method
    return type(name, (ShapeshifterClient,), namespace)


CLIENTS: dict[tuple[str, str], type[ShapeshifterClient]] = {
    (sender, recipient): _role_client(sender, recipient)
    for sender in ROLES for recipient in ROLES if (sender, recipient) in spec().routes
}
ShapeshifterAgrCroClient = CLIENTS[("AGR", "CRO")]
ShapeshifterAgrDsoClient = CLIENTS[("AGR", "DSO")]
ShapeshifterCroAgrClient = CLIENTS[("CRO", "AGR")]
ShapeshifterCroDsoClient = CLIENTS[("CRO", "DSO")]
ShapeshifterDsoAgrClient = CLIENTS[("DSO", "AGR")]
ShapeshifterDsoCroClient = CLIENTS[("DSO", "CRO")]


def client_class(sender_role: str, recipient_role: str) -> type[ShapeshifterClient]:
    """The client class for messages from ``sender_role`` to ``recipient_role``."""
    try:
        return CLIENTS[(sender_role, recipient_role)]
    except KeyError:
        raise ValueError(f"UFTP has no messages from a {sender_role} to a {recipient_role}") from None
