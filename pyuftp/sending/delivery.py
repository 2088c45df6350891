r"""Sending for one party: three verbs (seal, send, answer), one store, one archive.

    courier = Courier("agr.example.com", signing_key, "AGR", store="agr.sqlite",
                      endpoint_lookup=directory.endpoint, key_lookup=directory.key)
    async with courier:
        sent = await courier.send("FlexOffer", offer, "dso.example.com", "DSO")

A :class:`Courier` fills in who sends a message to whom and :meth:`~Courier.seal`\ s it (the
stateless rules run there, once); :meth:`~Courier.send` POSTs it at once (no store: a bounded
number of attempts within a deadline) or runs the stateful rules, commits it to the store and
the archive, and lets the :class:`~pyuftp.sending.outbox.Outbox` deliver it in the background,
retrying for an hour; :meth:`~Courier.answer` sends the response the exchange core made for a
received request. A party's service, the role clients made from it and the requests it makes
share one courier, so the party's archive knows every request it sent.

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
from collections.abc import Mapping
from typing import Any

import aiohttp

from ..store.archiving import StoreLookups, entry
from ..message.catalog import spec
from ..signing.crypto import SigningKey
from ..signing.envelope import wrap
from ..core.decisions import Answer
from ..exceptions import TemporaryDeliveryError, ValidationError, about, quote
from ..message.codec import build_message
from ..rules.enforce import enforcer
from .outbox import Outbox
from ..rules import Context, Rules, chosen
from .observe import NO_OBSERVER, Observer
from ..store import OutboxItem, Store, open_store
from ..auth.tls import refuse_plain_http
from ..message.catalog import check_dialect
from .overloads import CourierSend
from .sealed import Sealed
from .status import Deliveries
from .addressing import Addresses, EndpointLookup, KeyLookup
from .transport import Auth, PeerAuth, Poster

logger = logging.getLogger(__name__)

# (#18) The messages that carry on the conversation of the one they name, by the naming field.
_ANSWERS = {"FlexOffer": "flex_request_message_id", "FlexOrder": "flex_offer_message_id"}



class Courier(CourierSend):
    """Seals and delivers the messages of one party (``sender_domain`` in ``sender_role``).

    :param store: None (POST at once, no durability), a :class:`~pyuftp.store.Store`, or a
        path / ``sqlite:///`` URL / ``"memory:"`` of one to open (and close).
    :param endpoint_lookup: ``(domain, role) -> url`` (sync or async) of other parties'
        services; ``endpoints`` gives fixed ones, ``{(domain, role): url}``, looked at first.
    :param key_lookup: ``(domain, role) -> public key`` (sync or async): given, a send to a
        party whose key is unknown (whose answers would be refused) raises at once.
    :param version: the UFTP version written when a payload does not say.
    :param attempts, backoff, send_timeout: for a store-less send: how often a temporary
        failure is tried in all, the first wait between tries (doubling), and the most
        seconds the whole send takes, waits included.
    :param timeout: seconds for one HTTP attempt; ``auth``, ``ssl``, ``ca_file``,
        ``client_cert``, ``client_key``, ``allow_plain_http``: see
        :class:`~pyuftp.sending.transport.Poster` (an :class:`~pyuftp.auth.OAuth2Clients` for
        OAuth2).
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

    metrics: Observer = NO_OBSERVER  # (#21) a service with metrics=True sets its own

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
        key_lookup: KeyLookup | None = None,
    ) -> None:
        self.sender_domain = sender_domain
        self.sender_role = sender_role
        self.signing_key = (signing_key if isinstance(signing_key, SigningKey)
                            else SigningKey(signing_key))
        self.spec = spec(version)
        #: whom this courier sends to: endpoints and keys (:mod:`~pyuftp.sending.addressing`)
        self.addresses = Addresses(endpoint_lookup, endpoints, key_lookup)
        #: the latest delivery attempts of recent messages (:meth:`delivery_status`)
        self.deliveries = Deliveries()
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.send_timeout = float(send_timeout)
        # The poster is this courier's unless given; it closes the session only if it made it.
        self.poster = poster or Poster(timeout=timeout, auth=auth, session=session,
                                       max_redirects=max_redirects, ssl=ssl, ca_file=ca_file,
                                       client_cert=client_cert, client_key=client_key,
                                       allow_plain_http=allow_plain_http)
        for url in self.addresses.fixed.values():  # a fixed plain-http endpoint: say so at once
            refuse_plain_http(url, self.poster.allow_plain_http)
        self.dialects = {peer: check_dialect(name) for peer, name in (dialects or {}).items()}
        self._own_poster = poster is None
        self.rules: Rules | None = chosen(rules)
        self.outbox: Outbox | None = None
        self.archive: StoreLookups | None = None
        self._own_store = store is not None and not isinstance(store, Store)
        if store is not None:
            self.outbox = Outbox(open_store(store), self._deliver, **dict(outbox_options or {}))
            self.archive = StoreLookups(self.outbox.store)

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
             recipient_role: str) -> Sealed:
        """Address, check and sign a message: a :class:`~pyuftp.sending.sealed.Sealed`, nothing
        sent yet.

        The one place that fills in who sends to whom: the payload may leave out
        ``sender_domain``, ``recipient_domain`` and ``version``; if it names them they must
        be this party's and the recipient's. Raises ValidationError (naming the field) or
        RuleViolation (the stateless rules, run here and only here) before anything is
        signed, and ValueError for a type this role does not send to that one.
        """
        return self._seal(message_type, payload, recipient_domain, recipient_role)

    def _seal(self, message_type: str, payload: Mapping[str, Any], recipient_domain: str,
              recipient_role: str, *, answer: bool = False) -> Sealed:
        # An answer the exchange core made skips the route and the rules: a misrouted or
        # rule-breaking request is still answered, with what the core decided.
        if not answer and not self.spec.may_send(self.sender_role, recipient_role,
                                                 message_type):
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
        use = False if answer or self.rules is None else self.rules
        xml, sent = build_message(message_type, message, enforce=enforcer(use),
                                  dialect=self.dialect(recipient_domain, recipient_role))
        data = xml.encode("utf-8")
        return Sealed(wrap(data, self.signing_key, self.sender_domain, self.sender_role), sent,
                      data, message_type, recipient_domain, recipient_role)

    def dialect(self, domain: str, role: str) -> str | None:
        """The dialect configured for ``domain`` in ``role`` (or for the domain), if any."""
        return self.dialects.get((domain, role), self.dialects.get(domain))

    # --- sending ---------------------------------------------------------------------------

    async def _send(self, message: str | Sealed, payload: Mapping[str, Any] | None,
                    recipient_domain: str | None, recipient_role: str | None) -> dict[str, Any]:
        # send(), typed per message type, is CourierSend's (tools/make_api.py); it calls this
        if isinstance(message, Sealed):
            if payload is not None or recipient_domain is not None or recipient_role is not None:
                raise TypeError("send(sealed) takes no payload, domain or role: the sealed "
                                "message names them")
            sealed = message
            if sealed.payload.get("sender_domain") != self.sender_domain:
                raise ValueError(f"this message was sealed for "
                                 f"{quote(sealed.payload.get('sender_domain'))}, not for "
                                 f"{self.sender_domain!r}")
        elif payload is None or recipient_domain is None or recipient_role is None:
            raise TypeError("send() takes a Sealed message, or a message type with its "
                            "payload, recipient domain and recipient role")
        else:
            payload = await self.keep_conversation(message, payload, recipient_domain)
            sealed = self.seal(message, payload, recipient_domain, recipient_role)
        await self.addresses.check(sealed.recipient_domain, sealed.recipient_role,
                                   queued=self.outbox is not None)
        if self.outbox is None:
            await self._post(sealed)
            self.metrics.sent(sealed.message_type, sealed.recipient_domain, "posted")
            if logger.isEnabledFor(logging.INFO):
                fields = about((sealed.message_type, sealed.payload), sealed.recipient_domain)
                logger.info("sent %s (%s)", fields, sealed.recipient_role, extra=fields)
            return sealed.payload
        await self._check_stateful(sealed)
        await self._queue(sealed)
        return sealed.payload

    async def keep_conversation(self, message_type: str, payload: Mapping[str, Any],
                                recipient_domain: str) -> Mapping[str, Any]:
        """A FlexOffer or FlexOrder without a ``conversation_id`` goes in the conversation of
        the FlexRequest or FlexOffer it names, when that came from its recipient (the
        receiver's rule ``reference.same_conversation`` holds it to that). One look-up by id,
        where the store runs its calls."""
        key = _ANSWERS.get(message_type)
        named = None if key is None else payload.get(key)
        if named is None or payload.get("conversation_id") is not None or self.archive is None:
            return payload
        store = self.archive.store
        found = await store.call(store.find, recipient_domain, str(named), "in")
        if found is None:
            return payload
        return {**payload, "conversation_id": found.conversation_id}

    async def answer(self, answer: Answer) -> dict[str, Any]:
        """Send the response the exchange core made for a received request: sealed without
        route checks or rules (the core built it), queued in one transaction with the
        request marked handled (``answer.answers``) and its outcome noted
        (``answer.outcome``), archived. Returns the payload as sent."""
        sealed = self._seal(answer.message_type, answer.payload, answer.recipient_domain,
                            answer.recipient_role, answer=True)
        if self.outbox is None:
            await self._post(sealed)
        else:
            await self._queue(sealed, answers=answer.answers, outcome=answer.outcome)
        return sealed.payload

    def delivery_status(self, message_id: str, waited: float | None = None) -> str:
        """What is known of the delivery of ``message_id`` by this courier's outbox, in
        words: "delivered at <time> with HTTP 200" (and, given ``waited`` seconds, "and no
        answer within" them), or "not delivered" with the attempts, the last error and the
        next attempt."""
        return self.deliveries.describe(message_id, waited)

    async def _check_stateful(self, sealed: Sealed) -> None:
        """Run the rules that need the archive (the stateless ones ran in :meth:`seal`);
        raise one RuleViolation for all problems."""
        if self.rules is None or self.archive is None:
            return
        stateful = self.rules.for_type(sealed.message_type, stateful=True)
        if not stateful:
            return
        only = Rules((), self.rules.settings)
        for rule in stateful:
            only.add(rule, enabled=True)
        sent = sealed.payload
        ctx = Context(sealed.message_type, sent, "out", sealed.recipient_domain,
                      sent["time_stamp"], lookups=self.archive)
        # The rules are sync over sync look-ups: run them where the store runs its calls.
        problems = await self.archive.store.call(only.check_all, ctx)
        if only.awaiting(sealed.message_type):
            problems += await only.check_async(ctx)
        only.refuse(sealed.message_type, problems)

    async def _queue(self, sealed: Sealed, *, answers: tuple[str, str] | None = None,
                     outcome: tuple[str, str | None] | None = None) -> int:
        """Commit a sealed message to the outbox, with its payload XML to the archive and
        the ``outcome`` of the message it ``answers``, in one transaction; return its item
        id once committed."""
        assert self.outbox is not None
        await self.outbox.start()  # idempotent: the first send starts delivery
        now = time.time()
        sent = sealed.payload
        item = OutboxItem(
            message_id=sent["message_id"], message_type=sealed.message_type,
            sender_domain=self.sender_domain, recipient_domain=sealed.recipient_domain,
            recipient_role=sealed.recipient_role, body=sealed.data, created_at=now,
            expires_at=self.outbox.expires_at(now))
        kept = None if self.archive is None else entry(
            "out", sealed.message_type, sent, sealed.xml, self.sender_role,
            sealed.recipient_role)
        item_id = await self.outbox.submit(item, answers=answers, archive=kept, outcome=outcome)
        self.metrics.sent(sealed.message_type, item.recipient_domain, "queued")
        if logger.isEnabledFor(logging.INFO):  # the fields cost more than the line: once each
            fields = about((sealed.message_type, sent), item.recipient_domain)
            logger.info("queued %s (%s)", fields, item.recipient_role, extra=fields)
        return item_id

    async def _post(self, sealed: Sealed) -> None:
        """POST now, retrying temporary failures up to ``attempts`` times, all within
        ``send_timeout`` seconds (then TemporaryDeliveryError)."""
        peer = (sealed.recipient_domain, sealed.recipient_role)
        url = await self.endpoint(*peer)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.send_timeout
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                async with asyncio.timeout(deadline - loop.time()):
                    await self.poster.post_once(sealed.data, url, peer=peer)
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

    async def _deliver(self, item: OutboxItem) -> None:
        """One delivery attempt of a stored message: the one deliver function, the
        outbox's."""
        peer = (item.recipient_domain, item.recipient_role)
        url = await self.addresses.delivery_url(*peer)
        status = None
        self.deliveries.started(item)
        try:
            status = await self.poster.post_once(item.body, url, peer=peer)
        finally:
            self.deliveries.ended(item, status)

    async def endpoint(self, domain: str, role: str) -> str:
        """The service URL of ``domain`` in ``role``: a fixed one, else looked up (and kept
        for a few minutes). AddressingError when none is known or it is not a URL."""
        return await self.addresses.endpoint(domain, role)


__all__ = ["Courier", "EndpointLookup", "KeyLookup", "Sealed"]
