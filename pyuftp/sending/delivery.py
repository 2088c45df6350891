"""Sending for one party: sealing, addressing, and durable delivery with one owner.

    courier = Courier("agr.example.com", signing_key, "AGR", store="agr.sqlite",
                      endpoint_lookup=directory.endpoint)
    async with courier:
        sent = await courier.send("FlexOffer", offer, "dso.example.com", "DSO")

A :class:`Courier` is the one component that fills in who sends a message to whom, seals it,
and either POSTs it at once (no store: a bounded number of attempts within a deadline) or
commits it to its store and lets the :class:`~pyuftp.sending.outbox.Outbox` deliver it in the
background, retrying for an hour. Its :meth:`Courier.deliver` is the one deliver function.

Ownership: whoever opens a store closes it. A courier given a path or URL opens the store and
closes it on :meth:`Courier.close`; a :class:`~pyuftp.store.Store` passed in is never closed.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from ..store.archiving import StoreArchive, entry
from ..message.catalog import spec
from ..signing.crypto import SigningKey
from ..signing.envelope import wrap
from ..exceptions import TemporaryDeliveryError, ValidationError, quote
from ..message.codec import build_message
from ..rules.enforce import enforcer
from .outbox import Outbox
from ..rules import DEFAULT_RULES, Context, Rules
from ..store import OutboxItem, Store, open_store
from ..auth.tls import refuse_plain_http
from ..message.catalog import check_dialect

# The messages that carry on the conversation of the one they name, by the naming field.
_ANSWERS = {"FlexOffer": "flex_request_message_id", "FlexOrder": "flex_offer_message_id"}
from .transport import Auth, PeerAuth, Poster, check_url, maybe_await

logger = logging.getLogger(__name__)

EndpointLookup = Callable[[str, str], "str | None | Awaitable[str | None]"]
ENDPOINT_TTL = 300.0  # seconds a looked-up endpoint is reused


class Courier:
    """Seals and delivers the messages of one party (``sender_domain`` in ``sender_role``).

    :param store: None (POST at once, no durability), a :class:`~pyuftp.store.Store`, or a
        path / ``sqlite:///`` URL / ``"memory:"`` of one to open (and close).
    :param endpoint_lookup: ``(domain, role) -> url`` (sync or async) of other parties'
        services; ``endpoints`` gives fixed ones, ``{(domain, role): url}``, looked at first.
    :param version: the UFTP version written when a payload does not say.
    :param attempts, backoff, send_timeout: for a store-less send: how often a temporary
        failure is tried in all, the first wait between tries (doubling), and the most
        seconds the whole send takes, waits included.
    :param timeout: seconds for one HTTP attempt; ``auth``, ``ssl``, ``ca_file``,
        ``client_cert``, ``client_key``, ``allow_plain_http``: see
        :class:`~pyuftp.sending.transport.Poster` (an :class:`~pyuftp.auth.OAuth2Clients` for OAuth2).
    :param dialects: ``{(domain, role) or domain: dialect}``: what a counterparty's software
        accepts where it differs from the official schemas (``"java"``; see
        :data:`~pyuftp.message.catalog.DIALECTS`).
    :param outbox_options: passed to the :class:`~pyuftp.sending.outbox.Outbox` (``retry_for``,
        ``on_delivery_failed``, ...).
    :param rules: the business rules a message must pass before it is signed
        (:mod:`pyuftp.rules`; default :data:`~pyuftp.rules.DEFAULT_RULES`, ``False``: none).
        With a store, sent messages are archived and the stateful rules run too: an order
        that does not match its offer is refused before it leaves.
    """

    def __init__(
        self,
        sender_domain: str,
        signing_key: str | bytes | SigningKey,
        sender_role: str,
        *,
        store: Store | str | os.PathLike[str] | None = None,
        endpoint_lookup: EndpointLookup | None = None,
        endpoints: Mapping[tuple[str, str], str] | None = None,
        version: str | None = None,
        attempts: int = 3,
        backoff: float = 0.5,
        send_timeout: float = 60.0,
        timeout: float = 30.0,
        auth: Auth | PeerAuth | None = None,
        session: aiohttp.ClientSession | None = None,
        max_redirects: int = 5,
        poster: Poster | None = None,
        outbox_options: Mapping[str, Any] | None = None,
        rules: Rules | bool | None = None,
        ssl: ssl.SSLContext | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        allow_plain_http: bool = False,
        dialects: Mapping[tuple[str, str] | str, str] | None = None,
    ) -> None:
        self.sender_domain = sender_domain
        self.sender_role = sender_role
        self.signing_key = signing_key if isinstance(signing_key, SigningKey) else SigningKey(signing_key)
        self.spec = spec(version)
        self.endpoint_lookup = endpoint_lookup
        self._endpoints = {peer: check_url(url) for peer, url in (endpoints or {}).items()}
        self._looked_up: dict[tuple[str, str], tuple[str, float]] = {}
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.send_timeout = float(send_timeout)
        # The poster is this courier's unless given; it closes the session only if it made it.
        self.poster = poster or Poster(timeout=timeout, auth=auth, session=session,
                                       max_redirects=max_redirects, ssl=ssl, ca_file=ca_file,
                                       client_cert=client_cert, client_key=client_key,
                                       allow_plain_http=allow_plain_http)
        for url in self._endpoints.values():  # a fixed plain-http endpoint: say so at once
            refuse_plain_http(url, self.poster.allow_plain_http)
        self.dialects = {peer: check_dialect(name) for peer, name in (dialects or {}).items()}
        self._own_poster = poster is None
        self.rules: Rules | None = (None if rules is False else
                                    DEFAULT_RULES if rules is None or rules is True else rules)
        self.outbox: Outbox | None = None
        self.archive: StoreArchive | None = None
        self._own_store = store is not None and not isinstance(store, Store)
        if store is not None:
            self.outbox = Outbox(open_store(store), self.deliver, **dict(outbox_options or {}))
            self.archive = StoreArchive(self.outbox.store)

    @property
    def store(self) -> Store | None:
        return self.outbox.store if self.outbox is not None else None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start background delivery (messages left by an earlier run too)."""
        if self.outbox is not None:
            await self.outbox.start()

    async def close(self) -> None:
        """Stop delivery (undelivered messages stay stored), close the store if this courier
        opened it and the HTTP session if it made it."""
        if self.outbox is not None:
            await self.outbox.stop()
            if self._own_store:
                self.outbox.store.close()
        if self._own_poster:
            await self.poster.close()

    async def __aenter__(self) -> Courier:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued is delivered or finally failed (False: not in time)."""
        return True if self.outbox is None else await self.outbox.wait_idle(timeout)

    # --- sealing ---------------------------------------------------------------------------

    def seal(self, message_type: str, payload: Mapping[str, Any], recipient_domain: str,
             recipient_role: str, *, check_route: bool = True) -> tuple[bytes, dict[str, Any]]:
        """Address, check and sign a message: ``(SignedMessage bytes, payload as sent)``.

        The one place that fills in who sends to whom: the payload may leave out
        ``sender_domain``, ``recipient_domain`` and ``version``; if it names them they must
        be this party's and the recipient's. Raises ValidationError (naming the field) or
        RuleViolation (the stateless rules) before anything is signed, and ValueError for a
        type this role does not send to that one (unless ``check_route`` is off: a
        misrouted request is still answered).
        """
        return self._seal(message_type, payload, recipient_domain, recipient_role,
                          check_route=check_route)[:2]

    def _seal(self, message_type: str, payload: Mapping[str, Any], recipient_domain: str,
              recipient_role: str, *, check_route: bool = True,
              rules: bool = True) -> tuple[bytes, dict[str, Any], bytes]:
        if check_route and not self.spec.may_send(self.sender_role, recipient_role, message_type):
            raise ValueError(
                f"a {self.sender_role} does not send {message_type} to a {recipient_role}; it "
                f"sends {', '.join(self.spec.sent_by(self.sender_role, recipient_role))}")
        message = dict(payload)
        for key, own in (("sender_domain", self.sender_domain),
                         ("recipient_domain", recipient_domain)):
            given = message.setdefault(key, own)
            if given != own:
                whose = "this party's" if key == "sender_domain" else "the recipient's"
                raise ValidationError(f"{message_type}.{key}",
                                      f"{quote(given)} is not {whose} domain {own!r}")
        message.setdefault("version", self.spec.version)
        use = self.rules if rules and self.rules is not None else False
        xml, sent = build_message(message_type, message, enforce=enforcer(use),
                                  dialect=self.dialect(recipient_domain, recipient_role))
        data = xml.encode("utf-8")
        return wrap(data, self.signing_key, self.sender_domain, self.sender_role), sent, data

    def dialect(self, domain: str, role: str) -> str | None:
        """The dialect configured for ``domain`` in ``role`` (or for the domain), if any."""
        return self.dialects.get((domain, role), self.dialects.get(domain))

    # --- sending ---------------------------------------------------------------------------

    async def send(self, message_type: str, payload: Mapping[str, Any], recipient_domain: str,
                   recipient_role: str, *, answers: tuple[str, str] | None = None,
                   check_route: bool = True, rules: bool = True,
                   outcome: tuple[str, str | None] | None = None) -> dict[str, Any]:
        """Seal a message and deliver it: POSTed now without a store, else checked against
        the archive (stateful rules), committed (with the received message it ``answers``
        marked handled in the same transaction), archived and delivered in the background.
        Returns the payload as sent. ``rules=False``: no business rules (for answers the
        exchange core wrote)."""
        payload = await self.keep_conversation(message_type, payload, recipient_domain)
        data, sent, xml = self._seal(message_type, payload, recipient_domain, recipient_role,
                                     check_route=check_route, rules=rules)
        if self.outbox is None:
            await self.post(data, await self.endpoint(recipient_domain, recipient_role),
                            peer=(recipient_domain, recipient_role))
            logger.info("sent %s %s to %s (%s)", message_type, sent["message_id"],
                        recipient_domain, recipient_role)
            return sent
        await self.queue(message_type, data, sent, recipient_role, answers=answers, xml=xml,
                         rules=rules, outcome=outcome)
        return sent

    async def keep_conversation(self, message_type: str, payload: Mapping[str, Any],
                                 recipient_domain: str) -> Mapping[str, Any]:
        """A FlexOffer or FlexOrder without a ``conversation_id`` goes in the conversation of
        the FlexRequest or FlexOffer it names, when that came from its recipient (#18: the
        receiver's rule ``reference.same_conversation`` holds it to that). One look-up by id."""
        key = _ANSWERS.get(message_type)
        named = None if key is None else payload.get(key)
        if named is None or payload.get("conversation_id") is not None or self.archive is None:
            return payload
        found = await self.archive.find(recipient_domain, str(named), "in")
        if found is None:
            return payload
        return {**payload, "conversation_id": found.conversation_id}

    async def check_stateful(self, message_type: str, sent: Mapping[str, Any]) -> None:
        """Run the rules that need the archive on a message about to be sent; raise one
        RuleViolation for all problems."""
        if self.rules is None or self.archive is None:
            return
        ctx = Context(message_type, sent, "out", sent["recipient_domain"], sent["time_stamp"],
                      archive=self.archive)
        self.rules.refuse(message_type, await self.rules.check_all(ctx))

    async def queue(self, message_type: str, data: bytes, sent: Mapping[str, Any],
                    recipient_role: str, *, answers: tuple[str, str] | None = None,
                    xml: bytes | None = None, rules: bool = True,
                    outcome: tuple[str, str | None] | None = None) -> int:
        """Commit a sealed message to the outbox, with its payload ``xml`` to the archive and
        the ``outcome`` of the message it ``answers``, in one transaction; return its item id
        once committed."""
        if self.outbox is None:
            raise RuntimeError("queue() needs a courier with a store")
        if rules:
            await self.check_stateful(message_type, sent)
        await self.outbox.start()  # idempotent: the first send starts delivery
        now = time.time()
        item = OutboxItem(
            message_id=sent["message_id"], message_type=message_type,
            sender_domain=self.sender_domain, recipient_domain=sent["recipient_domain"],
            recipient_role=recipient_role, body=data, created_at=now,
            expires_at=self.outbox.expires_at(now))
        kept = None if self.archive is None or xml is None else entry(
            "out", message_type, sent, xml, self.sender_role, recipient_role)
        item_id = await self.outbox.submit(item, answers=answers, archive=kept, outcome=outcome)
        logger.info("queued %s %s for %s (%s)", message_type, sent["message_id"],
                    item.recipient_domain, recipient_role)
        return item_id

    async def post(self, data: bytes, url: str, *, peer: tuple[str, str] | None = None) -> None:
        """POST now, retrying temporary failures up to ``attempts`` times, all within
        ``send_timeout`` seconds (then TemporaryDeliveryError)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.send_timeout
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                async with asyncio.timeout(deadline - loop.time()):
                    await self.poster.post_once(data, url, peer=peer)
                return
            except TimeoutError:
                raise TemporaryDeliveryError(
                    f"no answer from {url} within send_timeout ({self.send_timeout:g} s, "
                    f"attempt {attempt})", url=url) from None
            except TemporaryDeliveryError as exc:
                wait = delay * (0.5 + random.random())  # jitter keeps retries of many apart
                if exc.retry_after is not None:
                    wait = max(wait, exc.retry_after)
                if attempt == self.attempts or loop.time() + wait >= deadline:
                    raise
                logger.warning("delivery attempt %d to %s failed (%s); again in %.2fs",
                               attempt, url, exc, wait)
                await asyncio.sleep(wait)
                delay *= 2

    async def deliver(self, item: OutboxItem) -> None:
        """One delivery attempt of a stored message: the one deliver function."""
        url = await self.endpoint(item.recipient_domain, item.recipient_role)
        await self.poster.post_once(item.body, url,
                                    peer=(item.recipient_domain, item.recipient_role))

    async def endpoint(self, domain: str, role: str) -> str:
        """The service URL of ``domain`` in ``role``: a fixed one, else looked up (and kept
        for a few minutes). TemporaryDeliveryError when none is known."""
        peer = (domain, role)
        if peer in self._endpoints:
            return self._endpoints[peer]
        known = self._looked_up.get(peer)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        url = None
        if self.endpoint_lookup is not None:
            url = await maybe_await(self.endpoint_lookup(domain, role))
        if not url:
            raise TemporaryDeliveryError(f"no endpoint known for {domain} ({role})")
        checked = check_url(url)
        self._looked_up[peer] = (checked, time.monotonic() + ENDPOINT_TTL)
        return checked


__all__ = ["Courier", "EndpointLookup"]
