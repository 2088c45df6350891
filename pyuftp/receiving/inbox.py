"""Receiving for one party: from request bytes to a handled message and its queued answer.

An :class:`Inbox` sits between an HTTP server (the aiohttp service) and the exchange core,
and only does I/O: the order of steps and every decision are the core's
(:class:`~pyuftp.core.reception.Reception`). It opens and judges each request (big ones on
a worker thread), looks keys up, keeps the journal of received messages (a resend is
dropped, a message answered 200 but not handled before a crash is handled after the
restart), admits messages first come first served within ``max_pending``, runs the rules'
step through ``store.call``, the user's handler, and hands the answer to its
:class:`~pyuftp.sending.delivery.Courier` (``answer``) in the same transaction that marks
the request handled. It also keeps the requests that wait for their response
(``request()``). asyncio, but no HTTP server: any transport can feed it.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple

from ..store.archiving import RETENTION, StoreLookups, note_outcome
from ..message.check import message_node
from ..sending.delivery import Courier
from ..discovery.cache import refresher
from ..discovery.records import DiscoveryError
from ..signing.envelope import Envelope, reopen
from ..exceptions import About, MessageError, about, excerpt
from ..sending.observe import NO_OBSERVER, Observer, outcome_of
from ..core.decisions import (Accept, Admit, Answer, AwaitRules, CheckRules, Done, Handle,
                              MarkHandled, Record, Refuse, Step)
from ..core.exchange import Exchange, Verdict, Waiting
from ..core.reception import AnsweredMemory, Reception
from .admission import Admission
from .handlers import NO_HANDLER, Handlers
from ..sending.outbox import PRUNE_INTERVAL
from .._shared import maybe_await
from ..store import Store
from . import responses

logger = logging.getLogger(__name__)

#: ``(domain, role) -> public key`` (or the keys it publishes, two during a key rotation).
KeyLookup = Callable[[str, str],
                     "str | Sequence[str] | None | Awaitable[str | Sequence[str] | None]"]
#: Bodies at least this big are opened on a worker thread, so the loop serves others meanwhile.
THREAD_BODY = 256 * 1024


class Reply(NamedTuple):
    """The HTTP answer to a request: status, text, and the Retry-After seconds if any."""

    status: int
    text: str
    retry_after: int | None = None


OK = Reply(200, "OK")


class Inbox:
    """The receiving side of one party (see the module docstring).

    :param max_pending: messages answered 200 but not yet handled, at most; the next wait
        their turn up to ``admission_timeout`` seconds, then get 503 with Retry-After.
    :param max_backlog: answers to one peer not yet delivered, at most; beyond that the
        peer's requests get 503 (its endpoint is down: it must not fill memory or the store).
    :param retention: seconds archived messages are kept (default 62 days).
    """

    metrics: Observer = NO_OBSERVER  # (#21) a service with metrics=True sets its own

    def __init__(self, exchange: Exchange, courier: Courier, key_lookup: KeyLookup, *,
                 max_pending: int = 100, admission_timeout: float = 5.0,
                 max_backlog: int = 1000, retention: float = RETENTION) -> None:
        assert courier.store is not None, "an inbox needs a courier with a store"
        self.exchange, self.courier, self.key_lookup = exchange, courier, key_lookup
        self.store: Store = courier.store
        #: the archive as the rules read it (sync: the core's rule step runs in store.call)
        self.lookups = StoreLookups(self.store)
        self.retention = retention
        self.handlers = Handlers(exchange.role, exchange.accepted_types)
        self.max_backlog = max_backlog
        self._admission = Admission(max_pending, admission_timeout)
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: dict[str, Waiting] = {}
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._next_prune = 0.0
        self._memory = AnsweredMemory()
        self._sweeper: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def resume(self) -> None:
        """Start sending, and handle what an earlier run answered 200 but did not handle."""
        await self.courier.start()
        await self._recover(await self.store.call(self.store.unhandled))
        recover = getattr(self.store, "recover_unhandled", None)
        if recover is not None and self._sweeper is None:  # a store several instances share
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(recover))

    async def _sweep(self, recover: Callable[[], list[tuple[str, str, bytes]]]) -> None:
        """Now and then, handle what another instance sharing the store left unhandled when
        it died (its handling lease ended)."""
        while True:
            await asyncio.sleep(float(getattr(self.store, "recovery_interval", 10.0)))
            try:
                await self._recover(await self.store.call(recover))
            except Exception:  # the store is away for a moment: the next sweep tries again
                logger.exception("cannot look for messages left unhandled")

    async def _recover(self, rows: list[tuple[str, str, bytes]]) -> None:
        for sender_domain, message_id, data in rows:
            try:
                received = reopen(data)
            except MessageError as exc:
                logger.error("cannot recover %s from %s: %s", excerpt(message_id),
                             excerpt(sender_domain), excerpt(exc, 200))
                await self.store.call(self.store.mark_handled, sender_domain, message_id)
                continue
            logger.warning("handling %s, received before a restart", about(received),
                           extra=about(received))
            await self._admission.enter()
            verdict = Verdict(200, "OK", received, tuple(self.exchange.problems(received)))
            self._later(Reception(self.exchange, verdict, self._memory, self._waiting))

    async def finish(self) -> None:
        """Let the messages being handled finish, then stop sending."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
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
        message_node(message_type, self.exchange.spec)  # a misspelt type: did you mean ...?
        answer = self.exchange.spec.response_type(message_type)
        if answer is None:
            raise ValueError(f"{message_type} is not answered by a response")
        payload = await self.courier.keep_conversation(message_type, payload, domain)  # (#18)
        sealed = self.courier.seal(message_type, payload, domain, role)
        sent = sealed.payload
        request_id = sent["message_id"]
        self._waiting[request_id] = Waiting(message_type, request_id, sent["conversation_id"],
                                            domain, role)
        future = self._answers[request_id] = asyncio.get_running_loop().create_future()
        try:
            await self.courier.send(sealed)
            try:
                # the response may reach another instance sharing our store: look there too
                return sent, await asyncio.wait_for(
                    responses.first(future, self.store, domain, request_id, answer,
                                    sent["conversation_id"]), timeout)
            except asyncio.TimeoutError:
                raise asyncio.TimeoutError(
                    f"no {answer} from {domain} for {message_type} {request_id} within "
                    f"{timeout:g} s: {self.courier.delivery_status(request_id, timeout)}"
                    ) from None
        finally:
            self._waiting.pop(request_id, None)
            self._answers.pop(request_id, None)

    # --- a request arrives -----------------------------------------------------------------

    async def receive(self, data: bytes) -> Reply:
        """Judge, admit and record one request body; the HTTP answer to give. The order of
        steps is the core's (:class:`~pyuftp.core.reception.Reception`); this only does
        the I/O each decision asks for. Whatever fails, the admission slot taken is given
        back; while the store cannot record, the answer is 503 at once (the sender
        retries, service resumes when the store does)."""
        verdict, envelope = await self._judge(data)
        reception = Reception(self.exchange, verdict, self._memory, self._waiting)
        step = reception.start()
        if isinstance(step, Admit):
            admitted = await self._admission.enter()
            step = reception.admitted(admitted)
            if not admitted:  # no slot was taken: none to give back
                return _refused(step, reception.who) if isinstance(step, Refuse) else OK
            try:
                if isinstance(step, Record):
                    try:
                        await self._prune()
                        result = await self.store.call(functools.partial(
                            self.store.record_received, step.sender_domain, step.message_id,
                            step.digest, step.signed_xml, time.time(), archive=step.entry))
                    except Exception as exc:  # noqa: BLE001 - the store's, not the sender's
                        self.metrics.store_error("record")
                        step = reception.recorded(error=exc)
                    else:
                        step = reception.recorded(result)
                if isinstance(step, Accept):
                    # HTTP 200 means "received": handling and the answer come after it.
                    self._later(reception)  # the task gives the slot back when it is done
                    return OK
            except BaseException:
                self._admission.leave()
                raise
            self._admission.leave()
        if isinstance(step, Refuse):
            return _refused(step, _sender(envelope) if reception.received is None
                            else reception.who)
        return OK  # Drop: a resend, answered 200 and nothing more

    async def _judge(self, data: bytes) -> tuple[Verdict, Envelope | None]:
        """The verdict, and the envelope (None when unreadable): who says they sent it."""
        threaded = len(data) >= THREAD_BODY
        try:
            envelope = (await asyncio.to_thread(self.exchange.open, data) if threaded
                        else self.exchange.open(data))
        except MessageError as exc:
            return Verdict(400, f"invalid SignedMessage: {exc}"), None
        outbox = self.courier.outbox
        backlog = outbox.backlog((envelope.sender_domain, envelope.sender_role)) if outbox else 0
        if backlog >= self.max_backlog:
            # Before any verifying: the answers to this peer are piling up (its endpoint is
            # down), so more work for it waits; refusing costs next to nothing.
            return Verdict(503, f"{backlog} answers to {excerpt(envelope.sender_domain)} are "
                                "not delivered yet; try again later"), envelope
        domain, role = envelope.sender_domain, envelope.sender_role
        try:
            key = await maybe_await(self.key_lookup(domain, role))
        except DiscoveryError as exc:  # DNS down or not authenticated: the sender retries
            sender = _sender(envelope)
            logger.warning("key lookup for %s failed: %s", sender, exc, extra=sender)
            key = None
        except Exception:  # a broken lookup is the receiver's problem: let the sender retry
            sender = _sender(envelope)
            logger.exception("key lookup for %s failed", sender, extra=sender)
            key = None
        verdict = await self._verdict(envelope, key, data, threaded)
        refresh = refresher(self.key_lookup)
        if verdict.status == 401 and refresh is not None:
            # The key may have been rotated since it was cached: ask once more (the look-up
            # limits how often), and judge again only if the answer changed.
            try:
                newer = await maybe_await(refresh(domain, role))
            except DiscoveryError as exc:
                sender = _sender(envelope)
                logger.warning("key refresh for %s failed: %s", sender, exc, extra=sender)
                newer = None
            if newer and newer != key and newer != (key,):
                verdict = await self._verdict(envelope, newer, data, threaded)
        return verdict, envelope

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

    def _later(self, reception: Reception) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(reception))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reception: Reception) -> None:
        """Carry out the core's steps after the 200, until it is done; then give the slot
        back and, when no answer did so, mark the request handled."""
        cancelled = False
        try:
            step = reception.begin()
            while not isinstance(step, Done):
                try:
                    step = await self._perform(reception, step)
                except Exception as exc:  # noqa: BLE001 - whatever failed, answer the sender
                    logger.error("handling %s failed: %s", reception.who, excerpt(exc, 200),
                                 extra=reception.who)
                    logger.debug("the traceback", exc_info=True)
                    step = reception.failed(exc)
        except asyncio.CancelledError:  # (#21) cut off by a shutdown: handled after a restart
            cancelled = True
            raise
        except Exception:
            logger.exception("handling %s failed", reception.who, extra=reception.who)
        finally:
            self._admission.leave()
            last = reception.finish()
            if isinstance(last, MarkHandled) and not cancelled:
                try:
                    await self.store.call(self.store.mark_handled, last.sender_domain,
                                          last.message_id)
                except Exception:  # it is handled again after a restart: say so, loudly
                    self.metrics.store_error("mark_handled")
                    logger.exception("cannot mark %s as handled", reception.who,
                                     extra=reception.who)

    async def _perform(self, reception: Reception, step: Step) -> Step:
        """The I/O one step asks for; the core's next step."""
        if isinstance(step, CheckRules):
            return await self.store.call(reception.check_rules, self.lookups)
        if isinstance(step, AwaitRules):
            try:
                problems = await step.rules.check_async(step.context)
            except Exception as exc:  # noqa: BLE001 - any rule may fail on any value
                return reception.rules_awaited(error=exc)
            return reception.rules_awaited(problems)
        if isinstance(step, Handle):
            received = reception.received
            assert received is not None
            future = self._answers.get(step.settles) if step.settles else None
            if future is not None and not future.done():
                future.set_result(received.payload)
            if step.note is not None:
                await self.store.call(note_outcome, self.store, *step.note)
            started = time.perf_counter()
            result = await self.handlers.call(received)
            self.metrics.handled(received.message_type, time.perf_counter() - started)
            if result is NO_HANDLER:
                return reception.handled(found=False)
            return reception.handled(result)
        if isinstance(step, Answer):
            # One transaction queues the answer, marks the request handled (a crash cannot
            # leave a request answered twice, or handled and unanswered), archives the
            # answer and notes the request's outcome.
            try:
                await self.courier.answer(step)
            except MessageError as exc:  # checked, yet not sendable: answer Rejected
                return reception.unsendable(exc)
            self._observe(reception, step)
            return reception.answered()
        raise TypeError(f"not a step: {step!r}")

    def _observe(self, reception: Reception, answer: Answer) -> None:
        """(#21) The metrics of a request answered: its outcome, its problems if rejected."""
        received = reception.received
        assert received is not None
        result = answer.outcome[0]
        if result == "Rejected" and reception.problems:
            self.metrics.rejected(received.message_type, received.sender_domain,
                                  reception.problems)
        self.metrics.received(received.message_type, received.sender_domain,
                              outcome_of((answer.message_type, {"result": result})))


def _sender(envelope: Envelope | None) -> About:
    """Who the envelope says sent it, for a log line (made only when a line is written)."""
    return About() if envelope is None else About(counterparty=excerpt(envelope.sender_domain),
                                                  role=envelope.sender_role)


def _refused(refusal: Refuse, who: About) -> Reply:
    logger.warning("refused a request from %s with HTTP %d: %s", who, refusal.status,
                   excerpt(refusal.text, 240), extra=who)
    return Reply(refusal.status, refusal.text, refusal.retry_after)
