"""The exchange core: what a party decides about UFTP messages, with no I/O (sans-I/O).

Everything a service decides is decided here, from values passed in, and unit-tested without
sockets: the HTTP status for a request, the functional reasons to reject a verified message,
the response to a request, and which waiting request a response settles. The aiohttp service
(:mod:`pyuftp.server.service`) only moves bytes, looks keys up and keeps the journal::

    exchange = Exchange("dso.example.com", "DSO")
    refused = exchange.check_head("text/xml", "utf-8", len(body))    # None: go on
    envelope = exchange.open(body)                 # raises MessageError -> 400
    verdict = exchange.judge(envelope, key_lookup(envelope.sender_domain, envelope.sender_role))
    verdict.status, verdict.text                   # the HTTP answer
    verdict.problems                               # answer Rejected with these, handle nothing
    answer_type, payload = exchange.response(verdict.received, {"result": "Accepted"})

The clock is injectable (``clock=lambda: 1700000000.0``), so time windows test exactly.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..message.catalog import Spec, spec
from ..message.codec import complete_payload
from ..signing.crypto import VerifyKey
from ..signing.envelope import Envelope, Received, open_envelope, open_message
from ..exceptions import (
    InvalidKey,
    InvalidSignature,
    MessageError,
    PyUFTPError,
    Rejected,
    RequestRefused,
    SenderMismatch,
    UnknownSender,
    excerpt,
    quote,
)
from ..rules import Context, Lookups, Rules, chosen
from .responses import MAX_REASON as MAX_REASON
from .responses import fill, rejection
from .responses import problem as problem_of

if TYPE_CHECKING:  # the bearer check needs PyJWT, an optional dependency
    from ..auth.bearer import BearerCheck, BearerDecision

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

#: Content types a service takes; the spec says text/xml, some peers send application/xml.
CONTENT_TYPES = ("text/xml", "application/xml")
MAX_BODY = 4 * 1024 * 1024
#: At most this many public keys are tried on one message (each try costs a signature check
#: over the whole message; a party publishes two while it rotates its key).
MAX_KEYS = 2


@dataclass(frozen=True)
class Verdict:
    """What to answer to one request, and what to do with it afterwards.

    ``status`` and ``text`` are the HTTP answer. With 200, ``received`` is the verified
    message; ``problems`` (if any) are the functional reasons to answer it ``Rejected``
    instead of handling it; ``record`` says whether it goes into the journal (a message whose
    envelope names another sender is answered, never recorded under that sender's name).
    """

    status: int
    text: str
    received: Received | None = None
    problems: tuple[str, ...] = ()
    record: bool = True

    @property
    def accepted(self) -> bool:
        """HTTP 200: the message is ours to answer."""
        return self.status == 200


@dataclass(frozen=True)
class Waiting:
    """A request sent through ``request()``, waiting for its response."""

    message_type: str
    message_id: str
    conversation_id: str
    recipient_domain: str
    recipient_role: str


class Exchange:
    """The decisions of one party (``domain``, ``role``) about the messages it receives.

    :param version: the UFTP version this party writes (responses answer in the request's).
    :param max_age: a message whose ``time_stamp`` is older (seconds) is rejected.
    :param max_clock_skew: ... or further in the future than this.
    :param max_body: the largest request body taken (bigger: HTTP 413).
    :param clock: ``() -> unix time``; injectable for tests.
    :param rules: the business rules a received message must pass (:mod:`pyuftp.rules`;
        default :data:`~pyuftp.rules.DEFAULT_RULES`; ``False``: none).
    :param bearer: a :class:`~pyuftp.auth.BearerCheck`: requests must carry a valid bearer
        token (``check_bearer()``); None: no token asked for.
    """

    def __init__(self, domain: str, role: str, *, version: Any = None,
                 max_age: float = 24 * 3600.0, max_clock_skew: float = 300.0,
                 max_body: int = MAX_BODY, clock: Clock = time.time,
                 rules: Rules | bool | None = None, bearer: BearerCheck | None = None) -> None:
        self.domain = domain
        self.bearer = bearer
        self.role = role
        self.spec: Spec = spec(version)
        self.max_age = max_age
        self.max_clock_skew = max_clock_skew
        self.max_body = max_body
        self.clock = clock
        self.accepted_types = self.spec.accepted_by(role)
        self.rules: Rules | None = chosen(rules)

    # --- a request arrives ----------------------------------------------------------------

    def check_head(self, content_type: str | None, charset: str | None,
                   content_length: int | None) -> RequestRefused | None:
        """The refusal for a request whose headers are wrong, before its body is read."""
        if content_type not in CONTENT_TYPES:
            return RequestRefused("Content-Type must be text/xml, not "
                                  f"{quote(content_type or 'absent')}", 400)
        if charset and charset.lower() not in ("utf-8", "utf8"):
            return RequestRefused(f"charset must be utf-8, not {quote(charset)}", 400)
        if content_length is None:
            return RequestRefused("a Content-Length is required", 411)
        if content_length > self.max_body:
            return RequestRefused(f"the body may be at most {self.max_body} bytes", 413)
        return None

    def check_bearer(self, authorization: str | None,
                     may_fetch: bool = True) -> BearerDecision | None:
        """The bearer-token decision on a request's Authorization header, before its body
        is read (None when no token is asked for). A refusal is answered 401; when it asks
        for the issuer's keys (``fetch_keys``), fetch them and ask again with
        ``may_fetch=False``."""
        if self.bearer is None:
            return None
        return self.bearer.check(authorization, self.clock(), may_fetch)

    @staticmethod
    def open(data: bytes) -> Envelope:
        """Read the SignedMessage: who says they sent it. Raises MessageError (HTTP 400)."""
        return open_envelope(data)

    def judge(self, envelope: Envelope,
              public_key: str | VerifyKey | Sequence[str | VerifyKey] | None,
              data: bytes | None = None) -> Verdict:
        """The verdict on a request, given the public key found for its sender (or None),
        or the keys it publishes (two during a key rotation: either may have signed)."""
        keys = ((public_key,) if isinstance(public_key, (str, VerifyKey))
                else tuple(public_key or ())[:MAX_KEYS])
        keys = tuple(key for key in keys if key)
        if not keys:
            return _refused(UnknownSender(f"no public key found for {_who(envelope)}"))
        failure: PyUFTPError | None = None
        for key in keys:
            try:
                received = open_message(envelope, key, data)
            except InvalidSignature as exc:  # perhaps signed with the other published key
                failure = exc
                continue
            except SenderMismatch as exc:
                return Verdict(200, "OK", exc.received, (str(exc),), record=False)
            except InvalidKey:
                # The key is ours to fix (and never quoted): the sender can only try again.
                logger.error("a public key found for %s is unusable", _who(envelope))
                continue
            except PyUFTPError as exc:  # MessageError 400
                return _refused(exc, "invalid message: " if isinstance(exc, MessageError)
                                else "")
            return Verdict(200, "OK", received, tuple(self.problems(received)))
        if failure is None:
            return _refused(UnknownSender(f"no usable public key for {_who(envelope)}"))
        return _refused(failure)

    def problems(self, received: Received) -> list[str]:
        """The functional reasons to reject a verified message: wrong role or route, not
        addressed to us, outside the time window."""
        message_type, payload = received.message_type, received.payload
        found = []
        if message_type not in self.accepted_types:
            found.append(f"a {self.role} does not accept {message_type} messages")
        elif not self.spec.may_send(received.sender_role, self.role, message_type):
            found.append(f"a {received.sender_role} may not send {message_type} to a {self.role}")
        if payload["recipient_domain"] != self.domain:
            found.append(f"addressed to {payload['recipient_domain']}, not to {self.domain}")
        age = self.clock() - payload["time_stamp"].timestamp()
        if age > self.max_age:
            found.append(f"time_stamp {payload['time_stamp'].isoformat()} is older than "
                         f"{self.max_age:.0f} s")
        elif -age > self.max_clock_skew:
            found.append(f"time_stamp {payload['time_stamp'].isoformat()} is in the future")
        return found

    def rule_context(self, received: Received, lookups: Lookups | None) -> Context:
        """What the business rules see of a verified message, as of this party's clock."""
        now = dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)
        return Context(received.message_type, received.payload, "in", received.sender_domain,
                       now, lookups=lookups)

    def rule_problems(self, received: Received, lookups: Lookups | None) -> list[str]:
        """What the sync business rules find wrong with a verified message (all of them,
        the stateful ones through ``lookups``), as of this party's clock."""
        if self.rules is None:
            return []
        return self.rules.check_all(self.rule_context(received, lookups))

    # --- the answer ------------------------------------------------------------------------

    def outcome(self, received: Received, result: Any = None, *,
                handled: bool = True) -> dict[str, Any] | None:
        """The response fields for a handler's outcome: what it returned (a dict of extra
        fields, or None: Accepted), a :class:`Rejected` it raised, another exception it
        raised, or ``handled=False`` for no handler. None when nothing is to be answered.
        Anything else a handler returns is a rejection that says what it was."""
        message_type = received.message_type
        if self.spec.response_type(message_type) is None:
            return None
        if isinstance(result, Rejected):
            fields = result.fields if isinstance(result.fields, Mapping) else {}
            return {**fields, "result": "Rejected", "rejection_reason": str(result.reason)}
        if isinstance(result, BaseException):
            return {"result": "Rejected",
                    "rejection_reason": f"processing failed: {type(result).__name__}"}
        if not handled and message_type != "TestMessage":
            return {"result": "Rejected",
                    "rejection_reason": f"{self.domain} does not handle {message_type}"}
        if result is not None and not isinstance(result, Mapping):
            return {"result": "Rejected", "rejection_reason": "processing failed: the handler "
                    f"returned a {type(result).__name__}, not a dict of response fields"}
        fields = dict(result) if isinstance(result, Mapping) else {}
        fields.setdefault("result", "Accepted")
        return fields

    @staticmethod
    def rejection(problems: tuple[str, ...] | list[str]) -> dict[str, Any]:
        """Response fields that reject a message for all these problems at once."""
        return rejection(problems)

    def response(self, received: Received,
                 fields: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """The ``...Response`` to a request, filled in from the request: its conversation,
        version and id, the fields both messages share (a query's period), and a MessageID
        derived from the request, so that answering the same request twice (a handler run
        again after a crash) gives the same message, which the receiver drops as a repeat.

        A rejection gets the parts its type requires (e.g. a FlexSettlementResponse's
        FlexOrderSettlementStatus, one Disputed per FlexOrderSettlement of the request).
        What is returned always passes pyuftp's check: fields that do not (a handler's
        wrong key or value) give a rejection that names the problem instead; None only for
        a request without a response, or a type whose schema leaves no valid rejection
        (logged as an ERROR).
        """
        answer = self.spec.response_type(received.message_type)
        if answer is None:
            return None
        answer_spec = spec(received.payload.get("version", self.spec.version))
        node = answer_spec.messages[answer]
        try:
            # None is "absent" in a payload dict: the request's value fills it in.
            payload = fill(self.domain, self.spec.version, received, answer, node,
                           {k: v for k, v in fields.items() if v is not None})
            complete_payload(answer, payload)  # as the courier will complete and check it
            return answer, payload
        except Exception as exc:  # noqa: BLE001 - a handler's value: any failure is possible
            problem = f"the response could not be made: {problem_of(exc)}"
        logger.warning("answering %s %s from %s Rejected: %s", received.message_type,
                       received.message_id, received.sender_domain, excerpt(problem, 200))
        payload = fill(self.domain, self.spec.version, received, answer, node,
                       rejection((problem,)))
        try:
            complete_payload(answer, payload)
        except Exception as exc:  # noqa: BLE001
            logger.error("no valid Rejected %s can answer %s %s from %s: %s", answer,
                         received.message_type, received.message_id, received.sender_domain,
                         excerpt(exc, 200))
            return None
        return answer, payload

    # --- a response arrives ----------------------------------------------------------------

    def settles(self, received: Received, waiting: Mapping[str, Waiting]) -> str | None:
        """The id of the waiting request (``request message_id -> Waiting``) that this
        response answers, or None. Only the party that was asked can answer, in the
        conversation of the request, naming the request's id (a TestMessageResponse names
        none: its conversation does)."""
        request_type = self.spec.request_type(received.message_type)
        if request_type is None:
            return None
        payload = received.payload
        key = spec(payload.get("version")).reference_key(request_type)
        if key is not None:
            found = waiting.get(str(payload.get(key)))
        else:
            found = next((w for w in waiting.values()
                          if w.conversation_id == payload["conversation_id"]
                          and w.message_type == request_type), None)
        if found is None or found.message_type != request_type:
            return None
        if (received.sender_domain, received.sender_role) != (found.recipient_domain,
                                                              found.recipient_role):
            logger.warning("%s %s from %s names our request %s, which went to %s: ignored",
                           received.message_type, received.message_id, received.sender_domain,
                           found.message_id, found.recipient_domain)
            return None
        if payload["conversation_id"] != found.conversation_id:
            logger.warning("%s %s names our request %s but another conversation: ignored",
                           received.message_type, received.message_id, found.message_id)
            return None
        return found.message_id


def _who(envelope: Envelope) -> str:
    """The sender an envelope names, bounded and escaped (made only for a refusal)."""
    return f"{excerpt(envelope.sender_domain)} ({envelope.sender_role})"


def _refused(error: PyUFTPError, prefix: str = "") -> Verdict:
    return Verdict(error.http_status, f"{prefix}{error}")


