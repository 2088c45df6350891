"""Receiving for one party: from request bytes to a handled message and its queued answer.

An :class:`Inbox` sits between an HTTP server (the aiohttp service) and the exchange core. It
opens and judges each request (big ones on a worker thread), keeps the journal of received
messages (a resend is dropped, a message answered 200 but not handled before a crash is
handled after the restart), admits messages first come first served within ``max_pending``,
runs the user's handler and hands the answer to its :class:`~pyuftp.sending.delivery.Courier` in the
same transaction that marks the request handled. It also keeps the requests that wait for
their response (``request()``). asyncio, but no HTTP server: any transport can feed it.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple

from ..store.archiving import RETENTION, StoreArchive, entry
from ..sending.delivery import Courier
from ..discovery.cache import refresher
from ..discovery.records import DiscoveryError
from ..signing.envelope import Envelope, Received, reopen
from ..exceptions import MessageError, StoreError, excerpt, summary
from ..core.exchange import Exchange, Verdict, Waiting
from .handlers import NO_HANDLER, Handlers
from ..sending.outbox import PRUNE_INTERVAL, positive_int
from ..store import Store
from ..sending.transport import maybe_await

logger = logging.getLogger(__name__)

#: ``(domain, role) -> public key`` (or the keys it publishes, two during a key rotation).
KeyLookup = Callable[[str, str],
                     "str | Sequence[str] | None | Awaitable[str | Sequence[str] | None]"]
#: Bodies at least this big are opened on a worker thread, so the loop serves others meanwhile.
THREAD_BODY = 256 * 1024
#: Seconds a sender is asked to wait (Retry-After) while the store cannot record messages.
STORE_RETRY = 5
#: Answered messages that are not recorded (another sender's name, a conflicting id) that the
#: inbox remembers, so that a replay of one is not answered again: memory stays bounded.
UNRECORDED_ANSWERS = 4096


class Reply(NamedTuple):
    """The HTTP answer to a request: status, text, and the Retry-After seconds if any."""

    status: int
    text: str
    retry_after: int | None = None


OK = Reply(200, "OK")


class Admission:
    """At most ``size`` messages being handled at once; the next ones wait first in, first
    out, each at most ``timeout`` seconds (then :meth:`enter` returns False: answer 503)."""

    def __init__(self, size: int, timeout: float) -> None:
        self.size, self.timeout, self.inside = positive_int(size, "max_pending"), timeout, 0
        self._queue: list[asyncio.Future[None]] = []

    async def enter(self) -> bool:
        if self.inside < self.size and not self._queue:
            self.inside += 1
            return True
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        try:
            async with asyncio.timeout(self.timeout):
                await turn
        except TimeoutError:
            if turn.done() and not turn.cancelled():
                self.leave()  # our turn came just as the time ran out: pass it on
            return False
        finally:
            if turn in self._queue:
                self._queue.remove(turn)
        return True

    def leave(self) -> None:
        """A message is handled: the longest-waiting one takes over its slot."""
        while self._queue:
            turn = self._queue.pop(0)
            if not turn.done():
                turn.set_result(None)
                return
        self.inside = max(0, self.inside - 1)


class Inbox:
    """The receiving side of one party (see the module docstring).

    :param max_pending: messages answered 200 but not yet handled, at most; the next wait
        their turn up to ``admission_timeout`` seconds, then get 503 with Retry-After.
    :param max_backlog: answers to one peer not yet delivered, at most; beyond that the
        peer's requests get 503 (its endpoint is down: it must not fill memory or the store).
    :param retention: seconds archived messages are kept (default 62 days).
    """

    def __init__(self, exchange: Exchange, courier: Courier, key_lookup: KeyLookup, *,
                 max_pending: int = 100, admission_timeout: float = 5.0,
                 max_backlog: int = 1000, retention: float = RETENTION) -> None:
        assert courier.store is not None, "an inbox needs a courier with a store"
        self.exchange, self.courier, self.key_lookup = exchange, courier, key_lookup
        self.store: Store = courier.store
        self.archive = StoreArchive(self.store)
        self.retention = retention
        self.handlers = Handlers(exchange.role, exchange.accepted_types)
        self.max_backlog = max_backlog
        self._admission = Admission(max_pending, admission_timeout)
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: dict[str, Waiting] = {}
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._next_prune = 0.0
        self._unrecorded: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    # --- lifecycle -------------------------------------------------------------------------

    async def resume(self) -> None:
        """Start sending, and handle what an earlier run answered 200 but did not handle."""
        await self.courier.start()
        for sender_domain, message_id, data in await self.store.call(self.store.unhandled):
            try:
                received = reopen(data)
            except MessageError as exc:
                logger.error("cannot recover %s from %s: %s", excerpt(message_id),
                             excerpt(sender_domain), excerpt(exc, 200))
                await self.store.call(self.store.mark_handled, sender_domain, message_id)
                continue
            logger.warning("handling %s %s from %s, received before a restart",
                           received.message_type, message_id, sender_domain)
            await self._admission.enter()
            self._later(received, tuple(self.exchange.problems(received)), record=True)

    async def finish(self) -> None:
        """Let the messages being handled finish, then stop sending."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.courier.close()

    async def drain(self, timeout: float) -> bool:
        """Wait until everything received is handled and answered (False: not in time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:
            if deadline <= loop.time():
                return False
            await asyncio.wait(list(self._tasks), timeout=deadline - loop.time())
        return await self.courier.drain(max(0.0, deadline - loop.time()))

    # --- requests of our own ---------------------------------------------------------------

    async def request(self, domain: str, role: str, message_type: str,
                      payload: Mapping[str, Any],
                      timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send a request and wait for the response that settles it."""
        answer = self.exchange.spec.response_type(message_type)
        if answer is None:
            raise ValueError(f"{message_type} is not answered by a response")
        payload = await self.courier.keep_conversation(message_type, payload, domain)  # (#18)
        data, sent, xml = self.courier._seal(message_type, payload, domain, role)
        request_id = sent["message_id"]
        self._waiting[request_id] = Waiting(message_type, request_id, sent["conversation_id"],
                                            domain, role)
        future = self._answers[request_id] = asyncio.get_running_loop().create_future()
        try:
            await self.courier.queue(message_type, data, sent, role, xml=xml)
            try:
                return sent, await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                raise asyncio.TimeoutError(
                    f"no {answer} from {domain} for {message_type} {request_id} within "
                    f"{timeout:g} s (does its answer reach our service, and does {domain} "
                    "know our key?)") from None
        finally:
            self._waiting.pop(request_id, None)
            self._answers.pop(request_id, None)

    # --- a request arrives -----------------------------------------------------------------

    async def receive(self, data: bytes) -> Reply:
        """Judge, admit and record one request body; the HTTP answer to give. Whatever
        fails, the admission slot taken is given back; while the store cannot record, the
        answer is 503 at once (the sender retries, service resumes when the store does)."""
        verdict, sender = await self._judge(data)
        if not verdict.accepted or verdict.received is None:
            retry = 60 if verdict.status == 503 else None
            return _refused(Reply(verdict.status, verdict.text, retry), sender)
        received = verdict.received
        peer = (received.sender_domain, received.sender_role)
        who = f"{excerpt(peer[0])} ({peer[1]}), {received.message_type} {received.message_id}"
        if not verdict.record and self._answered_before(received, who):
            return OK
        if not await self._admission.enter():
            return _refused(Reply(503, "too many messages being handled; try again", 1), who)
        handed_over = False
        try:
            problems, record = verdict.problems, verdict.record
            if record:
                try:
                    result = await self._record(received)
                except Exception as exc:  # noqa: BLE001 - the store's trouble, not the sender's
                    if not isinstance(exc, StoreError):
                        logger.exception("recording %s failed", who)
                    return _refused(Reply(503, "cannot record messages just now "
                                          f"({type(exc).__name__}); try again later",
                                          STORE_RETRY), who)
                decision = self.exchange.after_record(result)
                if decision == "drop":
                    logger.info("%s again: already received, not handled twice", who)
                    return OK
                if decision is not None:
                    if self._answered_before(received, who):
                        return OK
                    problems, record = (decision,), False
            if not record:
                self._unrecorded[(received.sender_domain, received.message_id,
                                  received.digest)] = None
                while len(self._unrecorded) > UNRECORDED_ANSWERS:
                    self._unrecorded.popitem(last=False)
            self._later(received, problems, record)
            handed_over = True  # the task gives the slot back when it is done
            return OK
        finally:
            if not handed_over:
                self._admission.leave()

    async def _record(self, received: Received) -> str:
        """Record and archive a message in one transaction, before its 200."""
        await self._prune()
        kept = entry("in", received.message_type, received.payload, received.payload_xml,
                     received.sender_role, self.exchange.role)
        return await self.store.call(functools.partial(
            self.store.record_received, received.sender_domain, received.message_id,
            received.digest, received.signed_xml or b"", time.time(), archive=kept))

    def _answered_before(self, received: Received, who: str) -> bool:
        """An unrecorded message (not ours to journal) answered already: not again."""
        key = (received.sender_domain, received.message_id, received.digest)
        if key not in self._unrecorded:
            return False
        self._unrecorded.move_to_end(key)
        logger.info("%s again: answered before, not answered twice", who)
        return True

    async def _judge(self, data: bytes) -> tuple[Verdict, str]:
        """The verdict, and who the envelope says sent it (for the log)."""
        threaded = len(data) >= THREAD_BODY
        try:
            envelope = (await asyncio.to_thread(self.exchange.open, data) if threaded
                        else self.exchange.open(data))
        except MessageError as exc:
            return Verdict(400, f"invalid SignedMessage: {exc}"), "an unknown sender"
        sender = f"{excerpt(envelope.sender_domain)} ({envelope.sender_role})"
        outbox = self.courier.outbox
        backlog = outbox.backlog((envelope.sender_domain, envelope.sender_role)) if outbox else 0
        if backlog >= self.max_backlog:
            # Before any verifying: the answers to this peer are piling up (its endpoint is
            # down), so more work for it waits; refusing costs next to nothing.
            return Verdict(503, f"{backlog} answers to {excerpt(envelope.sender_domain)} are "
                                "not delivered yet; try again later"), sender
        domain, role = envelope.sender_domain, envelope.sender_role
        try:
            key = await maybe_await(self.key_lookup(domain, role))
        except DiscoveryError as exc:  # DNS down or not authenticated: the sender retries
            logger.warning("key lookup for %s failed: %s", sender, exc)
            key = None
        except Exception:  # a broken lookup is the receiver's problem: let the sender retry
            logger.exception("key lookup for %s failed", sender)
            key = None
        verdict = await self._verdict(envelope, key, data, threaded)
        refresh = refresher(self.key_lookup)
        if verdict.status == 401 and refresh is not None:
            # The key may have been rotated since it was cached: ask once more (the look-up
            # limits how often), and judge again only if the answer changed.
            try:
                newer = await maybe_await(refresh(domain, role))
            except DiscoveryError as exc:
                logger.warning("key refresh for %s failed: %s", sender, exc)
                newer = None
            if newer and newer != key and newer != (key,):
                verdict = await self._verdict(envelope, newer, data, threaded)
        return verdict, sender

    async def _verdict(self, envelope: Envelope, key: Any, data: bytes,
                       threaded: bool) -> Verdict:
        if threaded:
            return await asyncio.to_thread(self.exchange.judge, envelope, key, data)
        return self.exchange.judge(envelope, key, data)

    async def _prune(self) -> None:
        now = time.time()
        if now >= self._next_prune:  # a resend older than the time window is refused anyway
            self._next_prune = now + PRUNE_INTERVAL
            keep = self.exchange.max_age + self.exchange.max_clock_skew + 3600.0
            await self.store.call(self.store.forget_received, now - keep)
            await self.store.call(self.store.forget_archived, now - self.retention)

    # --- handling --------------------------------------------------------------------------

    def _later(self, received: Received, problems: tuple[str, ...], record: bool) -> None:
        # HTTP 200 means "received": handling and the response happen after it.
        task = asyncio.get_running_loop().create_task(self._handle(received, problems, record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, received: Received, problems: tuple[str, ...], record: bool) -> None:
        answered = False
        try:
            try:
                fields = await self._outcome(received, problems)
            except Exception as exc:  # noqa: BLE001 - whatever failed, the sender is answered
                logger.exception("handling %s %s from %s failed", received.message_type,
                                 received.message_id, excerpt(received.sender_domain))
                fields = self.exchange.outcome(received, exc)
            reply = None if fields is None else self.exchange.response(received, fields)
            if reply is not None:
                try:
                    await self._answer(received, reply, record)
                except MessageError as exc:  # checked, yet not sendable: answer Rejected
                    logger.error("the answer to %s %s cannot be sent: %s", received.message_type,
                                 received.message_id, excerpt(exc, 200))
                    reply = self.exchange.response(received, self.exchange.rejection(
                        (f"the response could not be made: {type(exc).__name__}",)))
                    if reply is None:
                        raise
                    await self._answer(received, reply, record)
                answered = True
        except Exception:
            logger.exception("handling %s %s from %s failed", received.message_type,
                             received.message_id, excerpt(received.sender_domain))
        finally:
            self._admission.leave()
            if record and not answered:
                try:
                    await self.store.call(self.store.mark_handled, received.sender_domain,
                                          received.message_id)
                except Exception:  # it is handled again after a restart: say so, loudly
                    logger.exception("cannot mark %s %s from %s as handled",
                                     received.message_type, received.message_id,
                                     received.sender_domain)

    async def _answer(self, received: Received, reply: tuple[str, dict[str, Any]],
                      record: bool) -> None:
        # One transaction queues the answer, marks the request handled (a crash cannot leave
        # a request answered twice, or handled and unanswered), archives the answer and notes
        # the request's outcome.
        await self.courier.send(
            reply[0], reply[1], received.sender_domain, received.sender_role,
            answers=(received.sender_domain, received.message_id) if record else None,
            check_route=False, rules=False,
            outcome=(reply[1].get("result", "Accepted"), reply[1].get("rejection_reason")))

    async def _outcome(self, received: Received, problems: tuple[str, ...]) -> dict[str, Any] | None:
        """The response fields: a rejection for the problems found (the exchange's and the
        business rules', all together), else the handler's."""
        if not problems:
            try:
                problems = tuple(await self.exchange.rule_problems(received, self.archive))
            except Exception as exc:  # noqa: BLE001 - any rule may fail on any value
                logger.error("the rules could not check %s %s from %s: %s: %s",
                             received.message_type, received.message_id,
                             excerpt(received.sender_domain), type(exc).__name__, excerpt(exc))
                logger.debug("the rules' traceback", exc_info=True)
                problems = (f"rules could not be checked: {type(exc).__name__}",)
        answered_by = self.exchange.spec.response_type(received.message_type)
        if problems:
            logger.warning("rejecting %s %s from %s (%s): %s", received.message_type,
                           received.message_id, excerpt(received.sender_domain),
                           received.sender_role, summary(problems))
            return None if answered_by is None else self.exchange.rejection(problems)
        settled = self.exchange.settles(received, self._waiting)
        future = self._answers.get(settled) if settled else None
        if future is not None and not future.done():
            future.set_result(received.payload)
        await self._note_answer(received)
        result = await self.handlers.call(received)
        if result is NO_HANDLER:
            if settled is None and answered_by is None:
                logger.info("no handler for %s %s from %s; ignored", received.message_type,
                            received.message_id, received.sender_domain)
            return self.exchange.outcome(received, handled=False)
        return self.exchange.outcome(received, result)

    async def _note_answer(self, received: Received) -> None:
        """A response received: note its result as the outcome of the request it answers."""
        s = self.exchange.spec
        request_type = s.request_type(received.message_type)
        key = s.reference_key(request_type) if request_type else None
        if key and received.payload.get(key) and received.payload.get("result"):
            await self.archive.outcome("out", received.sender_domain, str(received.payload[key]),
                                       received.payload["result"],
                                       received.payload.get("rejection_reason"))


def _refused(reply: Reply, who: str) -> Reply:
    logger.warning("refused a request from %s with HTTP %d: %s", who, reply.status,
                   excerpt(reply.text, 240))
    return reply
