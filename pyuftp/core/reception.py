"""The order of steps for one received request, owned by the core: a sync state machine.

A :class:`Reception` is made for each request the exchange has judged. Each of its methods
takes what the I/O around it produced (an admission slot, the journal's answer, the rules'
problems, the handler's result) and returns the next decision
(:mod:`pyuftp.core.decisions`); it never awaits, never touches a socket or a store. The
receiving layer (:class:`~pyuftp.receiving.inbox.Inbox`) is the async driver that carries
the decisions out::

    reception = Reception(exchange, verdict, memory, waiting)
    step = reception.start()                   # Refuse | Drop | Admit
    step = reception.admitted(entered)          # Refuse | Record | Accept
    step = reception.recorded(result)           # Refuse | Drop | Accept     -> HTTP 200
    step = reception.begin()                    # CheckRules | Handle | Answer | Done
    step = reception.check_rules(lookups)       # AwaitRules | Handle | Answer | Done
    step = reception.handled(result)            # Answer | Done
    step = reception.answered()                 # Done
    step = reception.finish()                   # MarkHandled | Done  (always, at the end)

The guarantees it keeps: a recorded request gets exactly one answer, which is queued in the
same transaction that marks the request handled (``Answer.answers``); a request is handled
only once (a resend is dropped); a request whose rules or handler fail is still answered.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ..exceptions import About, MessageError, StoreError, about, excerpt, summary
from ..rules import Lookups
from ..signing.envelope import Received
from ..store.archiving import entry
from .decisions import (ACCEPT, ADMIT, CHECK_RULES, DONE, DROP, Answer, Arrival, AwaitRules,
                        Done, Handle, MarkHandled, Record, Refuse, Step)
from .exchange import Exchange, Verdict, Waiting

logger = logging.getLogger(__name__)

#: Answered messages that are not recorded (another sender's name, a conflicting id) that a
#: party remembers, so that a replay of one is not answered again: memory stays bounded.
UNRECORDED_ANSWERS = 4096
#: Seconds a sender is asked to wait (Retry-After) while the store cannot record messages.
STORE_RETRY = 5
#: Seconds a sender is asked to wait when the service itself is unavailable (HTTP 503).
BUSY_RETRY = 60


class AnsweredMemory:
    """The unrecorded requests answered already, newest last, at most ``size`` of them."""

    def __init__(self, size: int = UNRECORDED_ANSWERS) -> None:
        self.size = size
        self._seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def seen(self, received: Received) -> bool:
        """Whether this request was answered before (and keep it fresh if so)."""
        key = (received.sender_domain, received.message_id, received.digest)
        if key not in self._seen:
            return False
        self._seen.move_to_end(key)
        return True

    def remember(self, received: Received) -> None:
        self._seen[(received.sender_domain, received.message_id, received.digest)] = None
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)


class Reception:
    """The life of one judged request (see the module docstring for the order of steps).

    :param memory: the party's :class:`AnsweredMemory` of unrecorded answers.
    :param waiting: the party's requests waiting for a response, by message id.
    """

    def __init__(self, exchange: Exchange, verdict: Verdict, memory: AnsweredMemory,
                 waiting: Mapping[str, Waiting]) -> None:
        self.exchange, self.verdict = exchange, verdict
        self.memory, self.waiting = memory, waiting
        self.received: Received | None = verdict.received
        self.problems: tuple[str, ...] = verdict.problems
        self.record = verdict.record
        #: whether an answer was queued (the request is then marked handled with it)
        self.is_answered = False
        self._fallback_used = False
        self._answer_made = False

    @property
    def who(self) -> About:
        """The request, for a log line: its type, id, conversation and sender, bounded and
        escaped, as ``extra`` fields and (``str()``) in words."""
        return About() if self.received is None else about(self.received)

    def _message(self) -> Received:
        assert self.received is not None, "only an accepted request gets this far"
        return self.received

    # --- before the HTTP answer ------------------------------------------------------------

    def start(self) -> Arrival:
        """The first decision: refuse, drop a replay of an unrecorded answer, or admit."""
        verdict = self.verdict
        if not verdict.accepted or verdict.received is None:
            retry = BUSY_RETRY if verdict.status == 503 else None
            return Refuse(verdict.status, verdict.text, retry)
        if not self.record and self.memory.seen(verdict.received):
            logger.info("%s again: answered before, not answered twice", self.who,
                        extra=self.who)
            return DROP
        return ADMIT

    def admitted(self, entered: bool) -> Arrival:
        """After waiting for a slot: refuse when none came in time, else record the
        request (or, when it is not ours to record, accept it at once)."""
        if not entered:
            return Refuse(503, "too many messages being handled; try again", 1)
        received = self._message()
        if self.record:
            kept = entry("in", received.message_type, received.payload, received.payload_xml,
                         received.sender_role, self.exchange.role)
            return Record(received.sender_domain, received.message_id, received.digest,
                          received.signed_xml or b"", kept)
        self.memory.remember(received)
        return ACCEPT

    def recorded(self, result: str | None = None, *,
                 error: BaseException | None = None) -> Arrival:
        """The journal's answer (``"new"``, ``"duplicate"``, ``"conflict"``) or the store's
        failure: 503 while the store cannot record, drop a resend, answer a reused id
        Rejected without recording it (and only once), else accept."""
        received = self._message()
        if error is not None or result is None:
            if not isinstance(error, StoreError):
                logger.error("recording %s failed: %s", self.who,
                             excerpt(f"{type(error).__name__}: {error}", 200), extra=self.who)
            name = type(error).__name__ if error is not None else "no answer"
            return Refuse(503, f"cannot record messages just now ({name}); try again later",
                          STORE_RETRY)
        if result == "new":
            return ACCEPT
        if result == "duplicate":
            logger.info("%s again: already received, not handled twice", self.who,
                        extra=self.who)
            return DROP
        if self.memory.seen(received):
            logger.info("%s again: answered before, not answered twice", self.who,
                        extra=self.who)
            return DROP
        self.problems, self.record = ("duplicate message id: a different message with this "
                                      "MessageID was received before",), False
        self.memory.remember(received)
        return ACCEPT

    # --- after the HTTP 200 ----------------------------------------------------------------

    def begin(self) -> Step:
        """The first step after the 200: the rules (if any), else the handler."""
        if not self.problems and self.exchange.rules is not None:
            return CHECK_RULES
        return self._after_rules()

    def check_rules(self, lookups: Lookups | None) -> Step:
        """The business rules' sync step (run it through ``store.call``: it reads the
        archive). A rule that raises is one problem; the store failing is one too (the
        request is answered, rejected, rather than left unanswered)."""
        received, rules = self._message(), self.exchange.rules
        if rules is None:
            return self._after_rules()
        context = self.exchange.rule_context(received, lookups)
        try:
            problems = tuple(rules.check_all(context))
        except Exception as exc:  # noqa: BLE001 - a store error: the sender is still answered
            return self.rules_awaited(error=exc)
        if not problems and rules.awaiting(received.message_type):
            return AwaitRules(rules, context)
        self.problems = problems
        return self._after_rules()

    def rules_awaited(self, problems: list[str] | tuple[str, ...] = (), *,
                      error: BaseException | None = None) -> Step:
        """The user's async rules' problems (or the failure of a rule step)."""
        if error is not None:
            logger.error("the rules could not check %s: %s: %s", self.who,
                         type(error).__name__, excerpt(error), extra=self.who)
            problems = (f"rules could not be checked: {type(error).__name__}",)
        self.problems = tuple(problems)
        return self._after_rules()

    def _after_rules(self) -> Step:
        received = self._message()
        if self.problems:
            logger.warning("rejecting %s (%s): %s", self.who, received.sender_role,
                           summary(self.problems), extra=self.who)
            return self._answer(self.exchange.rejection(self.problems))
        settles = self.exchange.settles(received, self.waiting)
        return Handle(settles, self._note(received))

    def _note(self, received: Received) -> tuple[str, str, str, str, str | None] | None:
        """A response received: the outcome to note on the archived request it answers."""
        s = self.exchange.spec
        request_type = s.request_type(received.message_type)
        key = s.reference_key(request_type) if request_type else None
        payload = received.payload
        if key and payload.get(key) and payload.get("result"):
            return ("out", received.sender_domain, str(payload[key]), str(payload["result"]),
                    payload.get("rejection_reason"))
        return None

    def handled(self, result: Any = None, *, found: bool = True) -> Step:
        """The handler's return value, the exception it raised, or ``found=False`` when no
        handler is registered: the answer it makes, if the request has one."""
        received = self._message()
        if not found:
            settled = self.exchange.settles(received, self.waiting)
            if settled is None and self.exchange.spec.response_type(
                    received.message_type) is None:
                logger.info("no handler for %s; ignored", self.who, extra=self.who)
            return self._answer(self.exchange.outcome(received, handled=False))
        return self._answer(self.exchange.outcome(received, result))

    def failed(self, error: BaseException) -> Step:
        """A step of the driver's failed unexpectedly (a store call, say): answer with the
        failure, unless an answer was already made (handing it over is what failed: the
        request is then marked handled unanswered, never answered in a loop)."""
        if self._answer_made:
            return DONE
        return self._answer(self.exchange.outcome(self._message(), error))

    def _answer(self, fields: dict[str, Any] | None) -> Step:
        received = self._message()
        self._answer_made = True
        reply = None if fields is None else self.exchange.response(received, fields)
        if reply is None:
            return DONE
        message_type, payload = reply
        return Answer(message_type, payload, received.sender_domain, received.sender_role,
                      answers=(received.sender_domain, received.message_id)
                      if self.record else None,
                      outcome=(str(payload.get("result", "Accepted")),
                               payload.get("rejection_reason")),
                      request_digest=received.digest)

    def unsendable(self, error: MessageError) -> Step:
        """The answer was checked, yet the courier could not send it: answer Rejected
        instead, once (a second failure ends the reception unanswered, logged)."""
        logger.error("the answer to %s cannot be sent: %s", self.who, excerpt(error, 200),
                     extra=self.who)
        if self._fallback_used:
            return DONE
        self._fallback_used = True
        fields = self.exchange.rejection(
            (f"the response could not be made: {type(error).__name__}",))
        return self._answer(fields)

    def answered(self) -> Step:
        """The answer is queued (and the request marked handled with it)."""
        self.is_answered = True
        return DONE

    def finish(self) -> MarkHandled | Done:
        """The last step, on every path: mark a recorded request handled when no answer
        did so (it has none, or none could be made), so a restart does not handle it
        again."""
        received = self._message()
        if self.record and not self.is_answered:
            return MarkHandled(received.sender_domain, received.message_id)
        return DONE
