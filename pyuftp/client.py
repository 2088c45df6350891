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
import ssl as ssl_module
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import aiohttp

from .catalog import spec
from .crypto import SigningKey, VerifyKey
from .delivery import Courier, EndpointLookup
from .outbox import Outbox
from .payloads import (
    AGRPortfolioQueryPayload, AGRPortfolioQueryResponsePayload, AGRPortfolioUpdatePayload,
    AGRPortfolioUpdateResponsePayload, DPrognosisPayload, DPrognosisResponsePayload,
    DSOPortfolioQueryPayload, DSOPortfolioQueryResponsePayload, DSOPortfolioUpdatePayload,
    DSOPortfolioUpdateResponsePayload, FlexOfferPayload, FlexOfferResponsePayload,
    FlexOfferRevocationPayload, FlexOfferRevocationResponsePayload, FlexOrderPayload,
    FlexOrderResponsePayload, FlexRequestPayload, FlexRequestResponsePayload,
    FlexReservationUpdatePayload, FlexReservationUpdateResponsePayload, FlexSettlementPayload,
    FlexSettlementResponsePayload, MeteringPayload, MeteringResponsePayload, TestMessagePayload,
    TestMessageResponsePayload,
)
from .store import Store
from .transport import Auth, PeerAuth, check_url

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
        await self.courier.post(data, await self.endpoint(), peer=self._peer)

    async def post_once(self, data: bytes, url: str | None = None) -> None:
        """One POST; raises Temporary/FinalDeliveryError."""
        await self.courier.poster.post_once(data, url or await self.endpoint(), peer=self._peer)

    @property
    def _peer(self) -> tuple[str, str]:
        return (self.recipient_domain, self.recipient_role)


# --- generated by tools/make_types.py from the catalog: do not edit below ---


class ShapeshifterAgrCroClient(ShapeshifterClient):
    """Client with which an aggregator (AGR) sends to the common reference operator (CRO)."""

    sender_role = "AGR"
    recipient_role = "CRO"

    async def send_agr_portfolio_update(
        self, message: AGRPortfolioUpdatePayload
    ) -> AGRPortfolioUpdatePayload:
        """Sent by an AGR to the CRO to register the connections on which it represents prosumers,
        each from a first day and, if known, until a last day.

        Sends a ``AGRPortfolioUpdate``; returns the payload as sent.
        """
        return cast(AGRPortfolioUpdatePayload, await self.send("AGRPortfolioUpdate", message))

    async def send_agr_portfolio_query(
        self, message: AGRPortfolioQueryPayload
    ) -> AGRPortfolioQueryPayload:
        """Sent by an AGR to the CRO to find out, for one day, on which congestion points of which
        DSOs its connections lie, and so where it can trade flexibility.

        Sends a ``AGRPortfolioQuery``; returns the payload as sent.
        """
        return cast(AGRPortfolioQueryPayload, await self.send("AGRPortfolioQuery", message))

    async def send_test_message(self, message: TestMessagePayload) -> TestMessagePayload:
        """Any party (AGR, CRO or DSO) may send a TestMessage to another to check that messages get
        through: endpoint lookup, signing, delivery.

        Sends a ``TestMessage``; returns the payload as sent.
        """
        return cast(TestMessagePayload, await self.send("TestMessage", message))

    async def send_test_message_response(
        self, message: TestMessageResponsePayload
    ) -> TestMessageResponsePayload:
        """The answer to a TestMessage.

        Sends a ``TestMessageResponse``; returns the payload as sent.
        """
        return cast(TestMessageResponsePayload, await self.send("TestMessageResponse", message))


class ShapeshifterAgrDsoClient(ShapeshifterClient):
    """Client with which an aggregator (AGR) sends to a grid operator (DSO)."""

    sender_role = "AGR"
    recipient_role = "DSO"

    async def send_d_prognosis(self, message: DPrognosisPayload) -> DPrognosisPayload:
        """Sent by an AGR to a DSO: the expected power of the AGR's portfolio behind one congestion
        point for every ISP of a day.

        Sends a ``D-Prognosis``; returns the payload as sent.
        """
        return cast(DPrognosisPayload, await self.send("D-Prognosis", message))

    async def send_flex_request_response(
        self, message: FlexRequestResponsePayload
    ) -> FlexRequestResponsePayload:
        """The AGR tells the DSO whether its FlexRequest was processed; it may reject a request
        that is outdated or requests nothing.

        Sends a ``FlexRequestResponse``; returns the payload as sent.
        """
        return cast(FlexRequestResponsePayload, await self.send("FlexRequestResponse", message))

    async def send_flex_offer(self, message: FlexOfferPayload) -> FlexOfferPayload:
        """Sent by an AGR to a DSO to offer flexibility on a congestion point: for each ISP the
        change in power against its prognosis that it can deliver (power: positive means more
        consumption, negative less consumption or more production), at a price.

        Sends a ``FlexOffer``; returns the payload as sent.
        """
        return cast(FlexOfferPayload, await self.send("FlexOffer", message))

    async def send_flex_offer_revocation(
        self, message: FlexOfferRevocationPayload
    ) -> FlexOfferRevocationPayload:
        """Sent by an AGR to a DSO to withdraw a FlexOffer before it expires.

        Sends a ``FlexOfferRevocation``; returns the payload as sent.
        """
        return cast(FlexOfferRevocationPayload, await self.send("FlexOfferRevocation", message))

    async def send_flex_order_response(
        self, message: FlexOrderResponsePayload
    ) -> FlexOrderResponsePayload:
        """The AGR's answer to a FlexOrder.

        Sends a ``FlexOrderResponse``; returns the payload as sent.
        """
        return cast(FlexOrderResponsePayload, await self.send("FlexOrderResponse", message))

    async def send_flex_reservation_update_response(
        self, message: FlexReservationUpdateResponsePayload
    ) -> FlexReservationUpdateResponsePayload:
        """The AGR's answer to a FlexReservationUpdate, for instance rejecting one that does not
        fit the contract or came too late.

        Sends a ``FlexReservationUpdateResponse``; returns the payload as sent.
        """
        return cast(FlexReservationUpdateResponsePayload,
                    await self.send("FlexReservationUpdateResponse", message))

    async def send_flex_settlement_response(
        self, message: FlexSettlementResponsePayload
    ) -> FlexSettlementResponsePayload:
        """The AGR's answer to a FlexSettlement: it accepts the message and, order by order,
        accepts the settlement or disputes it with a dispute_reason.

        Sends a ``FlexSettlementResponse``; returns the payload as sent.
        """
        return cast(FlexSettlementResponsePayload,
                    await self.send("FlexSettlementResponse", message))

    async def send_metering(self, message: MeteringPayload) -> MeteringPayload:
        """Sent by an AGR to a DSO, where the DSO's programme asks for it: the metered data of one
        meter (its EAN) for one day, as one profile per agreed quantity (average power in kW,
        imported or exported energy or meter readings in kWh), value by ISP.

        Sends a ``Metering``; returns the payload as sent.
        """
        return cast(MeteringPayload, await self.send("Metering", message))

    async def send_test_message(self, message: TestMessagePayload) -> TestMessagePayload:
        """Any party (AGR, CRO or DSO) may send a TestMessage to another to check that messages get
        through: endpoint lookup, signing, delivery.

        Sends a ``TestMessage``; returns the payload as sent.
        """
        return cast(TestMessagePayload, await self.send("TestMessage", message))

    async def send_test_message_response(
        self, message: TestMessageResponsePayload
    ) -> TestMessageResponsePayload:
        """The answer to a TestMessage.

        Sends a ``TestMessageResponse``; returns the payload as sent.
        """
        return cast(TestMessageResponsePayload, await self.send("TestMessageResponse", message))


class ShapeshifterCroAgrClient(ShapeshifterClient):
    """Client with which the common reference operator (CRO) sends to an aggregator (AGR)."""

    sender_role = "CRO"
    recipient_role = "AGR"

    async def send_agr_portfolio_update_response(
        self, message: AGRPortfolioUpdateResponsePayload
    ) -> AGRPortfolioUpdateResponsePayload:
        """The CRO tells the AGR whether its AGRPortfolioUpdate was processed (Accepted) or not
        (Rejected, with a rejection_reason).

        Sends a ``AGRPortfolioUpdateResponse``; returns the payload as sent.
        """
        return cast(AGRPortfolioUpdateResponsePayload,
                    await self.send("AGRPortfolioUpdateResponse", message))

    async def send_agr_portfolio_query_response(
        self, message: AGRPortfolioQueryResponsePayload
    ) -> AGRPortfolioQueryResponsePayload:
        """The CRO's answer to an AGRPortfolioQuery.

        Sends a ``AGRPortfolioQueryResponse``; returns the payload as sent.
        """
        return cast(AGRPortfolioQueryResponsePayload,
                    await self.send("AGRPortfolioQueryResponse", message))

    async def send_test_message(self, message: TestMessagePayload) -> TestMessagePayload:
        """Any party (AGR, CRO or DSO) may send a TestMessage to another to check that messages get
        through: endpoint lookup, signing, delivery.

        Sends a ``TestMessage``; returns the payload as sent.
        """
        return cast(TestMessagePayload, await self.send("TestMessage", message))

    async def send_test_message_response(
        self, message: TestMessageResponsePayload
    ) -> TestMessageResponsePayload:
        """The answer to a TestMessage.

        Sends a ``TestMessageResponse``; returns the payload as sent.
        """
        return cast(TestMessageResponsePayload, await self.send("TestMessageResponse", message))


class ShapeshifterCroDsoClient(ShapeshifterClient):
    """Client with which the common reference operator (CRO) sends to a grid operator (DSO)."""

    sender_role = "CRO"
    recipient_role = "DSO"

    async def send_dso_portfolio_update_response(
        self, message: DSOPortfolioUpdateResponsePayload
    ) -> DSOPortfolioUpdateResponsePayload:
        """The CRO tells the DSO whether its DSOPortfolioUpdate was processed.

        Sends a ``DSOPortfolioUpdateResponse``; returns the payload as sent.
        """
        return cast(DSOPortfolioUpdateResponsePayload,
                    await self.send("DSOPortfolioUpdateResponse", message))

    async def send_dso_portfolio_query_response(
        self, message: DSOPortfolioQueryResponsePayload
    ) -> DSOPortfolioQueryResponsePayload:
        """The CRO's answer to a DSOPortfolioQuery: the congestion point with its connections and,
        for each connection that an AGR represents, that AGR's domain.

        Sends a ``DSOPortfolioQueryResponse``; returns the payload as sent.
        """
        return cast(DSOPortfolioQueryResponsePayload,
                    await self.send("DSOPortfolioQueryResponse", message))

    async def send_test_message(self, message: TestMessagePayload) -> TestMessagePayload:
        """Any party (AGR, CRO or DSO) may send a TestMessage to another to check that messages get
        through: endpoint lookup, signing, delivery.

        Sends a ``TestMessage``; returns the payload as sent.
        """
        return cast(TestMessagePayload, await self.send("TestMessage", message))

    async def send_test_message_response(
        self, message: TestMessageResponsePayload
    ) -> TestMessageResponsePayload:
        """The answer to a TestMessage.

        Sends a ``TestMessageResponse``; returns the payload as sent.
        """
        return cast(TestMessageResponsePayload, await self.send("TestMessageResponse", message))


class ShapeshifterDsoAgrClient(ShapeshifterClient):
    """Client with which a grid operator (DSO) sends to an aggregator (AGR)."""

    sender_role = "DSO"
    recipient_role = "AGR"

    async def send_d_prognosis_response(
        self, message: DPrognosisResponsePayload
    ) -> DPrognosisResponsePayload:
        """The DSO's answer to a D-Prognosis: accepted or rejected and, for every FlexOrder already
        placed for that day, a flex_order_statuses item that says whether the new prognosis
        reflects the order (is_validated).

        Sends a ``D-PrognosisResponse``; returns the payload as sent.
        """
        return cast(DPrognosisResponsePayload, await self.send("D-PrognosisResponse", message))

    async def send_flex_request(self, message: FlexRequestPayload) -> FlexRequestPayload:
        """Sent by a DSO to the AGRs on a congestion point where it expects congestion.

        Sends a ``FlexRequest``; returns the payload as sent.
        """
        return cast(FlexRequestPayload, await self.send("FlexRequest", message))

    async def send_flex_offer_response(
        self, message: FlexOfferResponsePayload
    ) -> FlexOfferResponsePayload:
        """The DSO tells the AGR whether its FlexOffer was processed; accepting an offer does not
        buy it, a FlexOrder does.

        Sends a ``FlexOfferResponse``; returns the payload as sent.
        """
        return cast(FlexOfferResponsePayload, await self.send("FlexOfferResponse", message))

    async def send_flex_offer_revocation_response(
        self, message: FlexOfferRevocationResponsePayload
    ) -> FlexOfferRevocationResponsePayload:
        """The DSO's answer to a FlexOfferRevocation.

        Sends a ``FlexOfferRevocationResponse``; returns the payload as sent.
        """
        return cast(FlexOfferRevocationResponsePayload,
                    await self.send("FlexOfferRevocationResponse", message))

    async def send_flex_order(self, message: FlexOrderPayload) -> FlexOrderPayload:
        """Sent by a DSO to an AGR to buy flexibility, as a binding order.

        Sends a ``FlexOrder``; returns the payload as sent.
        """
        return cast(FlexOrderPayload, await self.send("FlexOrder", message))

    async def send_flex_reservation_update(
        self, message: FlexReservationUpdatePayload
    ) -> FlexReservationUpdatePayload:
        """Under a bilateral contract, a DSO tells the AGR per ISP how much of the contracted
        flexibility it still keeps reserved; what it releases (zero power) the AGR may use
        elsewhere.

        Sends a ``FlexReservationUpdate``; returns the payload as sent.
        """
        return cast(FlexReservationUpdatePayload,
                    await self.send("FlexReservationUpdate", message))

    async def send_flex_settlement(self, message: FlexSettlementPayload) -> FlexSettlementPayload:
        """Sent by a DSO to an AGR, typically once a month, to settle: every FlexOrder of the
        period with the baseline, ordered, actual and delivered power per ISP, the price, any
        penalty and the net amount, and for bilateral contracts the reserved, requested, offered
        and ordered power per ISP.

        Sends a ``FlexSettlement``; returns the payload as sent.
        """
        return cast(FlexSettlementPayload, await self.send("FlexSettlement", message))

    async def send_metering_response(
        self, message: MeteringResponsePayload
    ) -> MeteringResponsePayload:
        """The DSO tells the AGR whether its Metering message was processed.

        Sends a ``MeteringResponse``; returns the payload as sent.
        """
        return cast(MeteringResponsePayload, await self.send("MeteringResponse", message))

    async def send_test_message(self, message: TestMessagePayload) -> TestMessagePayload:
        """Any party (AGR, CRO or DSO) may send a TestMessage to another to check that messages get
        through: endpoint lookup, signing, delivery.

        Sends a ``TestMessage``; returns the payload as sent.
        """
        return cast(TestMessagePayload, await self.send("TestMessage", message))

    async def send_test_message_response(
        self, message: TestMessageResponsePayload
    ) -> TestMessageResponsePayload:
        """The answer to a TestMessage.

        Sends a ``TestMessageResponse``; returns the payload as sent.
        """
        return cast(TestMessageResponsePayload, await self.send("TestMessageResponse", message))


class ShapeshifterDsoCroClient(ShapeshifterClient):
    """Client with which a grid operator (DSO) sends to the common reference operator (CRO)."""

    sender_role = "DSO"
    recipient_role = "CRO"

    async def send_dso_portfolio_update(
        self, message: DSOPortfolioUpdatePayload
    ) -> DSOPortfolioUpdatePayload:
        """Sent by a DSO to the CRO to register the congestion points on which it wants to trade
        flexibility: for each, the days it applies, the connections behind it and the trading
        rules.

        Sends a ``DSOPortfolioUpdate``; returns the payload as sent.
        """
        return cast(DSOPortfolioUpdatePayload, await self.send("DSOPortfolioUpdate", message))

    async def send_dso_portfolio_query(
        self, message: DSOPortfolioQueryPayload
    ) -> DSOPortfolioQueryPayload:
        """Sent by a DSO to the CRO to learn, for one of its congestion points and one day, which
        AGRs represent the connections behind it.

        Sends a ``DSOPortfolioQuery``; returns the payload as sent.
        """
        return cast(DSOPortfolioQueryPayload, await self.send("DSOPortfolioQuery", message))

    async def send_test_message(self, message: TestMessagePayload) -> TestMessagePayload:
        """Any party (AGR, CRO or DSO) may send a TestMessage to another to check that messages get
        through: endpoint lookup, signing, delivery.

        Sends a ``TestMessage``; returns the payload as sent.
        """
        return cast(TestMessagePayload, await self.send("TestMessage", message))

    async def send_test_message_response(
        self, message: TestMessageResponsePayload
    ) -> TestMessageResponsePayload:
        """The answer to a TestMessage.

        Sends a ``TestMessageResponse``; returns the payload as sent.
        """
        return cast(TestMessageResponsePayload, await self.send("TestMessageResponse", message))


CLIENTS: dict[tuple[str, str], type[ShapeshifterClient]] = {
    ("AGR", "CRO"): ShapeshifterAgrCroClient,
    ("AGR", "DSO"): ShapeshifterAgrDsoClient,
    ("CRO", "AGR"): ShapeshifterCroAgrClient,
    ("CRO", "DSO"): ShapeshifterCroDsoClient,
    ("DSO", "AGR"): ShapeshifterDsoAgrClient,
    ("DSO", "CRO"): ShapeshifterDsoCroClient,
}


def client_class(sender_role: str, recipient_role: str) -> type[ShapeshifterClient]:
    """The client class for messages from ``sender_role`` to ``recipient_role``."""
    try:
        return CLIENTS[(sender_role, recipient_role)]
    except KeyError:
        raise ValueError(
            f"UFTP has no messages from a {sender_role} to a {recipient_role}") from None
