"""Runs conformance checks against another party's endpoint.

    async with Runner(Party("agr.example.com", "AGR"), key, Party("dso.example.com", "DSO"),
                      url, their_key) as runner:
        results = await runner.run(select(registry("AGR", "DSO", VERSIONS)))

The runner serves a temporary pyuftp service of our role (on ``host:port``: it must be
reachable by the other party, which sends its answers there) that records every message that
arrives, and posts the checks' requests with aiohttp directly (some checks send malformed
requests on purpose). It never harms the other party: every message counts against
``Settings.max_messages``, they leave at most ``Settings.rate`` a second, and every message
and conversation id starts with :data:`ID_PREFIX`, so the other side can find them.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import aiohttp

from ..exceptions import excerpt
from ..message.catalog import DEFAULT_VERSION, spec
from ..message.examples import example
from ..server.service import SERVICES, ShapeshifterService
from ..signing.crypto import SigningKey
from ..signing.envelope import Received, seal_message
from .checks import FAIL, Check, Outcome

logger = logging.getLogger(__name__)

__all__ = ["Runner", "Link", "Party", "Settings", "Result", "Arrival", "Reply", "ID_PREFIX"]

#: the first 8 hex digits of every id the runner makes ("5e1f7e57": self-test)
ID_PREFIX = "5e1f7e57"
CONTENT_TYPE = "text/xml; charset=utf-8"
#: what the runner's service keeps of what arrives (a run sends a few hundred messages)
MAX_CONVERSATIONS, MAX_PER_CONVERSATION = 10_000, 100
REVISION_EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z


class Party(NamedTuple):
    domain: str
    role: str


@dataclass(frozen=True)
class Settings:
    """The bounds of one run."""

    #: seconds to wait for an answer (a ``...Response``) to arrive
    answer_timeout: float = 10.0
    #: seconds to wait after an answer for a second one (the duplicate check)
    duplicate_grace: float = 1.0
    #: messages a second, at most
    rate: float = 20.0
    #: messages in the whole run, at most (a check beyond it fails without sending)
    max_messages: int = 300
    #: checks in flight at once
    concurrency: int = 4
    #: the bytes of the oversized body (pyuftp takes at most 4 MiB)
    oversize: int = 8 * 1024 * 1024
    #: seconds for one HTTP request
    http_timeout: float = 30.0
    #: seconds to wait for their FlexOffer on our FlexRequest (to order it)
    offer_timeout: float = 3.0
    #: ``async (domain) -> version or None``: what a party publishes in its ``_usef`` TXT
    #: record (a DnsDiscovery's ``version``); None: the version check is skipped
    version_lookup: Any = None


class Reply(NamedTuple):
    """What the other party said to one POST."""

    status: int
    text: str
    headers: Mapping[str, str]


class Arrival(NamedTuple):
    """A message that reached our service (verified)."""

    message_type: str
    payload: dict[str, Any]
    payload_xml: bytes
    at: float


class Budget(Exception):
    """The run's message budget is spent."""


@dataclass
class Result:
    """One check's outcome and the time it took."""

    check: Check
    outcome: Outcome
    seconds: float


def new_id() -> str:
    """A fresh UUID that starts with :data:`ID_PREFIX`."""
    return ID_PREFIX + str(uuid.uuid4())[8:]


class Link:
    """What a check uses to talk to the other party and to see what came back."""

    def __init__(self, us: Party, key: SigningKey, them: Party, url: str, version: str,
                 settings: Settings, session: aiohttp.ClientSession) -> None:
        self.us, self.key, self.them, self.url = us, key, them, url
        self.version, self.settings, self.session = version, settings, session
        self.sent = 0
        self._last_revision = 0
        self._next = 0.0
        self._pace = asyncio.Lock()
        self._arrived: dict[str, list[Arrival]] = {}
        self._changed = asyncio.Condition()

    # --- sending -----------------------------------------------------------------------------

    def payload(self, message_type: str, version: str | None = None,
                conversation_id: str | None = None) -> dict[str, Any]:
        """The example payload of ``message_type``, moved to now, from us to them, with new
        ids (see :func:`new_id`)."""
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        payload = example(message_type, version or self.version, now=now)
        payload.update(sender_domain=self.us.domain, recipient_domain=self.them.domain,
                       message_id=new_id(), conversation_id=conversation_id or new_id(),
                       time_stamp=now)
        if "revision" in payload:  # revisions per congestion point and day only increase
            payload["revision"] = self._revision()
        return payload

    def _revision(self) -> int:
        """A revision above every one an earlier check or run sent: tenths of the seconds
        since 2026 (within a 32-bit int until 2032), and never the same twice."""
        self._last_revision = max(self._last_revision + 1,
                                  int((time.time() - REVISION_EPOCH) * 10))
        return self._last_revision

    def seal(self, message_type: str, payload: Mapping[str, Any], key: SigningKey | None = None,
             role: str | None = None) -> tuple[bytes, dict[str, Any]]:
        """The SignedMessage bytes of a payload and the payload as sent."""
        return seal_message(message_type, payload, key or self.key, role or self.us.role,
                            payload.get("version", self.version))

    async def post(self, body: bytes, *, content_type: str | None = CONTENT_TYPE,
                   chunked: bool = False, url: str | None = None) -> Reply:
        """POST ``body`` once (paced, counted, no redirect followed): the reply, whatever
        its status. Raises :class:`Budget` when the run's budget is spent and
        aiohttp.ClientError when the connection fails."""
        if self.sent >= self.settings.max_messages:
            raise Budget(f"the run's budget of {self.settings.max_messages} messages is spent")
        self.sent += 1
        async with self._pace:  # one at a time through the gate, at most `rate` a second
            wait = self._next - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next = time.monotonic() + 1.0 / self.settings.rate
        headers = {} if content_type is None else {"Content-Type": content_type}
        data: Any = body
        if chunked:  # no Content-Length: the body goes in chunks
            async def chunks() -> Any:
                yield body
            data = chunks()
        async with self.session.post(url or self.url, data=data, headers=headers,
                                     allow_redirects=False) as response:
            text = await response.content.read(4096)
            return Reply(response.status, text.decode("utf-8", "replace"),
                         dict(response.headers))

    # --- receiving ---------------------------------------------------------------------------

    async def record(self, payload: dict[str, Any], received: Received) -> None:
        """Our service's handler for every message type."""
        arrival = Arrival(received.message_type, payload, received.payload_xml, time.monotonic())
        conversation = str(payload.get("conversation_id"))
        # bounded: what the other party sends cannot grow this without limit
        kept = self._arrived.get(conversation)
        if kept is None and len(self._arrived) < MAX_CONVERSATIONS:
            kept = self._arrived[conversation] = []
        if kept is not None and len(kept) < MAX_PER_CONVERSATION:
            kept.append(arrival)
        async with self._changed:
            self._changed.notify_all()

    def arrived(self, conversation_id: str, message_type: str | None = None) -> list[Arrival]:
        """What arrived in a conversation so far (of one type)."""
        return [a for a in self._arrived.get(conversation_id, ())
                if message_type is None or a.message_type == message_type]

    async def answer(self, conversation_id: str, message_type: str,
                     timeout: float | None = None) -> Arrival | None:
        """The first ``message_type`` to arrive in the conversation; None after ``timeout``
        seconds (default ``Settings.answer_timeout``)."""
        def found() -> bool:
            return bool(self.arrived(conversation_id, message_type))

        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(found),
                                       timeout or self.settings.answer_timeout)
        except TimeoutError:
            return None
        return self.arrived(conversation_id, message_type)[0]


class Runner:
    """A temporary service of our role and the checks run against the other party."""

    def __init__(self, us: Party, signing_key: str | SigningKey, them: Party, url: str,
                 their_key: str | None, *, host: str = "127.0.0.1", port: int = 0,
                 version: str = DEFAULT_VERSION, settings: Settings | None = None,
                 key_lookup: Callable[[str, str], Any] | None = None,
                 endpoint_lookup: Callable[[str, str], Any] | None = None,
                 progress: Callable[[Result, int, int], None] | None = None) -> None:
        self.us, self.them, self.url = us, them, url
        self.key = signing_key if isinstance(signing_key, SigningKey) else SigningKey(signing_key)
        self.version = spec(version).version
        self.settings = settings or Settings()
        self.progress = progress
        if key_lookup is None:
            def key_lookup(domain: str, role: str) -> str | None:
                return their_key if (domain, role) == tuple(them) else None
        if endpoint_lookup is None:
            def endpoint_lookup(domain: str, role: str) -> str | None:
                return url if (domain, role) == tuple(them) else None
        # rules=False: our service must record every answer, even one to a request it did not
        # send itself (the checks post theirs with aiohttp) or one that breaks a rule
        self.service: ShapeshifterService = SERVICES[us.role](
            us.domain, self.key, key_lookup, endpoint_lookup, host=host, port=port,
            version=self.version, rules=False, unknown_key_ttl=0)
        self._session: aiohttp.ClientSession | None = None
        self.link: Link | None = None
        #: process CPU seconds the last run took, and its wall-clock seconds
        self.cpu = self.wall = 0.0

    @property
    def service_url(self) -> str:
        """Where our service listens (tell the other party: their answers go there)."""
        return self.service.url

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.http_timeout)
        # A connection per request: after a deliberately bad one (an oversized body, a
        # truncated envelope) a reused connection could carry its rest into the next check.
        self._session = aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(force_close=True))
        self.link = Link(self.us, self.key, self.them, self.url, self.version, self.settings,
                         self._session)
        for message_type in spec(self.version).accepted_by(self.us.role):
            self.service.add_handler(message_type, self.link.record)
        try:
            await self.service.start()
        except BaseException:
            await self._session.close()
            raise

    async def stop(self) -> None:
        try:
            await self.service.stop()
        finally:
            if self._session is not None:
                await self._session.close()

    async def __aenter__(self) -> Runner:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()

    async def run(self, checks: Sequence[Check], concurrency: int | None = None) -> list[Result]:
        """Run ``checks`` (at most ``concurrency``, default ``Settings.concurrency``, at
        once); the results in the order given."""
        link = self.link
        if link is None:
            raise RuntimeError("start the runner first (async with Runner(...))")
        gate = asyncio.Semaphore(concurrency or self.settings.concurrency)
        results: list[Result | None] = [None] * len(checks)
        done = 0
        cpu, wall = time.process_time(), time.monotonic()

        async def one(index: int, check: Check) -> None:
            nonlocal done
            async with gate:
                started = time.monotonic()
                outcome = await _guarded(check, link)
                result = Result(check, outcome, time.monotonic() - started)
            results[index] = result
            done += 1
            if self.progress is not None:
                self.progress(result, done, len(checks))

        await asyncio.gather(*(one(i, c) for i, c in enumerate(checks)))
        self.cpu, self.wall = time.process_time() - cpu, time.monotonic() - wall
        return [r for r in results if r is not None]


async def _guarded(check: Check, link: Link) -> Outcome:
    """A check's outcome; a failure of the check itself (a refused connection, the budget)
    is a failed check with the reason."""
    try:
        return await check.run(link)
    except Budget as exc:
        return Outcome(FAIL, "to be run", "not run", str(exc))
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Outcome(FAIL, "an HTTP status", "no HTTP answer",
                       excerpt(f"{type(exc).__name__}: {exc}", 200))
    except Exception as exc:  # noqa: BLE001 - one check's bug must not end the run
        logger.exception("conformance check %s failed to run", check.id)
        return Outcome(FAIL, "to run", "the check itself failed",
                       excerpt(f"{type(exc).__name__}: {exc}", 200))
