"""Clients that sign UFTP messages and send them to another party's service.

    async with ShapeshifterAgrDsoClient(
            "agr.example.com", private_key, "dso.example.com",
            "https://dso.example.com/shapeshifter/api/v3/message") as c:
        sent = await c.send_flex_offer({...})   # the payload as sent, with its message_id

One client talks to one recipient (domain and role). Every ``send_*`` fills in the metadata,
validates, signs, sends and returns the payload as sent. HTTP 200 only means "received": the
business answer (``...Response``) arrives later at your own service. A party that runs a
service makes its clients from it, ``agr.client("dso.example.com")``: they then share the
service's courier, store, archive and outbox, so the service knows the requests they sent and
accepts their answers. A standalone client (as above) suits send-only use; without a store
shared with your service, your service cannot match the answers to what it sent. The sealing,
addressing and delivery are a :class:`~pyuftp.sending.delivery.Courier`'s; the role classes
(one per sender and recipient role, with a ``send_*`` method per message type that route
carries) are made from the catalog.
"""
from __future__ import annotations

import logging
import os
import ssl as ssl_module
from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp

from ..message.catalog import spec
from ..signing.crypto import SigningKey, VerifyKey
from ..sending.delivery import Courier, EndpointLookup, Sealed
from ..sending.overloads import ClientSend
from ..sending.outbox import Outbox
from ..store import Store
from ..auth.tls import check_url
from ..sending.transport import Auth, PeerAuth

logger = logging.getLogger(__name__)

__all__ = ["ShapeshifterClient"]


class ShapeshifterClient(ClientSend):
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
    :param courier: a :class:`~pyuftp.sending.delivery.Courier` to share (a service's, say)
        instead.
    :param ssl: TLS: an :class:`ssl.SSLContext` (whom to trust, which certificate to show);
        or give ``ca_file`` (the CAs to trust) and ``client_cert`` / ``client_key`` (the
        certificate presented for mutual TLS), PEM files, and one is made.
    :param allow_plain_http: send to an ``http://`` endpoint that is not on a loopback
        address (refused by default: the spec demands TLS).
    :param dialect: what the recipient's software accepts where it differs from the
        official schemas, e.g. ``"java"`` (the docs' dialects page lists them).
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
        auth: Auth | PeerAuth | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        courier: Courier | None = None,
        outbox_options: Mapping[str, Any] | None = None,
        ssl: ssl_module.SSLContext | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        allow_plain_http: bool = False,
        dialect: str | None = None,
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
            timeout=timeout, auth=auth, session=session, max_redirects=max_redirects,
            outbox_options=outbox_options, ssl=ssl, ca_file=ca_file, client_cert=client_cert,
            client_key=client_key, allow_plain_http=allow_plain_http,
            dialects=None if dialect is None else {(recipient_domain, self.recipient_role):
                                                   dialect})
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

    def seal(self, message_type: str, payload: Mapping[str, Any]) -> Sealed:
        """Address, check and sign a message for this recipient, sending nothing yet: a
        :class:`~pyuftp.sending.sealed.Sealed` (``data``, ``payload``, ``xml``) for
        :meth:`send`."""
        return self.courier.seal(message_type, payload, self.recipient_domain,
                                 self.recipient_role)

    async def _send(self, message: str | Sealed,
                    payload: Mapping[str, Any] | None) -> dict[str, Any]:
        # send(), typed per message type, is ClientSend's (tools/make_api.py); it calls this
        if isinstance(message, Sealed):
            if payload is not None:
                raise TypeError("send(sealed) takes no payload: the sealed message has it")
            if (message.recipient_domain, message.recipient_role) != self._peer:
                raise ValueError(f"this message was sealed for {message.recipient_domain} "
                                 f"({message.recipient_role}), not for this client's "
                                 f"{self.recipient_domain} ({self.recipient_role})")
            return await self.courier.send(message)
        if payload is None:
            raise TypeError(f"send({message!r}) needs the payload")
        return await self.courier.send(self.seal(message, payload))

    @property
    def _peer(self) -> tuple[str, str]:
        return (self.recipient_domain, self.recipient_role)
