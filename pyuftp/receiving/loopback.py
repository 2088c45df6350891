"""Parties wired to each other in one process, without sockets: for tests and simulations.

A :class:`LoopbackPoster` hands a sealed message's bytes straight to the other party's
:class:`~pyuftp.receiving.inbox.Inbox`, with the HTTP answer a service would give (the same
head check, the inbox's status and Retry-After, temporary and final failures told apart as
the HTTP poster tells them), so everything above the socket runs as it does in service.
:func:`pair` makes two parties that know each other's keys and addresses::

    async with pair({"domain": "dso.example.com", "role": "DSO"},
                    {"domain": "agr.example.com", "role": "AGR"}) as (dso, agr):
        dso.on("FlexOffer", lambda offer: None)
        sent, answer = await agr.request("dso.example.com", "DSO", "FlexOffer", offer, 5)

What it leaves out is HTTP itself (headers, bearer tokens, TLS, connection limits): the
service's tests keep their sockets for those.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from ..core.exchange import Exchange
from ..exceptions import FinalDeliveryError, TemporaryDeliveryError, excerpt
from ..rules import Rules
from ..sending.delivery import Courier
from ..sending.transport import Peer, Poster, is_temporary_status
from ..signing.crypto import generate_keypair
from ..store import Store
from .inbox import Inbox

logger = logging.getLogger(__name__)


class LoopbackPoster(Poster):
    """A :class:`~pyuftp.sending.transport.Poster` (what a
    :class:`~pyuftp.sending.delivery.Courier` posts with) whose URLs name inboxes in this
    process: ``connect(url, inbox)``, then ``post_once`` delivers to it. A URL nobody
    connected is a temporary failure, as a refused connection is. It never opens a session:
    nothing leaves the process (so its plain-http URLs are allowed)."""

    def __init__(self) -> None:
        super().__init__(allow_plain_http=True)
        self.inboxes: dict[str, Inbox] = {}
        #: (url, HTTP status) of every post, oldest first (bounded: the last 10,000)
        self.posts: list[tuple[str, int]] = []

    def connect(self, url: str, inbox: Inbox) -> None:
        self.inboxes[url] = inbox

    async def post_once(self, data: bytes, url: str, *, peer: Peer | None = None) -> int:
        """Hand ``data`` to the inbox at ``url``: the status of a success (2xx); raise
        Temporary/FinalDeliveryError for what a service would answer with another one."""
        inbox = self.inboxes.get(url)
        if inbox is None:
            raise TemporaryDeliveryError(f"cannot reach {url}: no inbox connected", url=url)
        refused = inbox.exchange.check_head("text/xml", "utf-8", len(data))
        if refused is not None:
            status, text, retry_after = refused.http_status, str(refused), None
        else:
            reply = await inbox.receive(data)
            status, text, retry_after = reply.status, reply.text, reply.retry_after
        self.posts.append((url, status))
        del self.posts[:-10_000]
        if 200 <= status < 300:
            return status
        text = excerpt(text, 200)
        if is_temporary_status(status):
            raise TemporaryDeliveryError(f"{url} answered HTTP {status}: {text}", status=status,
                                         url=url, retry_after=retry_after)
        raise FinalDeliveryError(f"{url} answered HTTP {status}: {text}", status=status, url=url)

    async def close(self) -> None:
        """Nothing to close: no session, no socket."""


class Party:
    """One party (its exchange core, courier and inbox) reached through a
    :class:`LoopbackPoster`, at ``http://{domain}/loopback/{role}``.

    :param keys: ``{(domain, role): public key}``, shared by the parties that know each
        other (:func:`pair` fills it in); this party's own key is added.
    :param keypair: ``(signing key, public key)`` (base64); default a new pair.
    :param store: a Store, or a store spec (default ``"memory:"``).
    :param rules: as everywhere: None the default rules, False none, a Rules those.
    :param inbox_options: passed to the :class:`~pyuftp.receiving.inbox.Inbox`
        (``max_pending``, ``admission_timeout``, ``max_backlog``, ``retention``).
    """

    def __init__(self, domain: str, role: str, poster: LoopbackPoster,
                 keys: dict[tuple[str, str], str], *, keypair: tuple[str, str] | None = None,
                 store: Store | str | os.PathLike[str] = "memory:",
                 rules: Rules | bool | None = None,
                 version: str | None = None, clock: Callable[[], float] = time.time,
                 max_age: float = 24 * 3600.0, max_clock_skew: float = 300.0,
                 outbox_options: Mapping[str, Any] | None = None,
                 **inbox_options: Any) -> None:
        signing_key, public_key = keypair or generate_keypair()
        keys[(domain, role)] = public_key
        self.domain, self.role, self.poster, self.keys = domain, role, poster, keys
        self.url = f"http://{domain}/loopback/{role}"
        self.exchange = Exchange(domain, role, version=version, max_age=max_age,
                                 max_clock_skew=max_clock_skew, clock=clock, rules=rules)
        self.courier = Courier(domain, signing_key, role, store=store, poster=poster,
                               endpoint_lookup=self._endpoint, version=version, rules=rules,
                               outbox_options=outbox_options)
        self.inbox = Inbox(self.exchange, self.courier, self._key, **inbox_options)
        poster.connect(self.url, self.inbox)

    def _key(self, domain: str, role: str) -> str | None:
        return self.keys.get((domain, role))

    def _endpoint(self, domain: str, role: str) -> str | None:
        url = f"http://{domain}/loopback/{role}"
        return url if url in self.poster.inboxes else None

    @property
    def store(self) -> Store:
        return self.inbox.store

    def on(self, message_type: str, handler: Callable[..., Any]) -> None:
        """Handle received messages of ``message_type`` (see ``ShapeshifterService.on``)."""
        self.inbox.handlers.add(message_type, handler)

    async def send(self, domain: str, role: str, message_type: str,
                   payload: Mapping[str, Any]) -> dict[str, Any]:
        """Send a message (queued durably, delivered in the background); the payload sent."""
        return await self.courier.send(self.courier.seal(message_type, payload, domain, role))

    async def request(self, domain: str, role: str, message_type: str,
                      payload: Mapping[str, Any],
                      timeout: float = 10.0) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send a request and wait for its response: ``(sent, response)``."""
        return await self.inbox.request(domain, role, message_type, payload, timeout)

    async def drain(self, timeout: float = 10.0) -> bool:
        return await self.inbox.drain(timeout)

    async def start(self) -> None:
        await self.inbox.resume()

    async def close(self) -> None:
        await self.inbox.finish()


@asynccontextmanager
async def pair(first: Mapping[str, Any],
               second: Mapping[str, Any]) -> AsyncIterator[tuple[Party, Party]]:
    """Two :class:`Party` objects that know each other's keys and addresses, started, and
    closed on leaving. Each mapping names the party's ``domain`` and ``role`` and may give
    any other :class:`Party` option (``store``, ``rules``, ``clock``, ``max_pending``…)."""
    poster, keys = LoopbackPoster(), dict[tuple[str, str], str]()
    parties = []
    for options in (first, second):
        options = dict(options)
        parties.append(Party(options.pop("domain"), options.pop("role"), poster, keys,
                             **options))
    started: list[Party] = []
    try:
        for party in parties:
            await party.start()
            started.append(party)
        yield parties[0], parties[1]
    finally:
        for party in reversed(started):
            await party.close()
