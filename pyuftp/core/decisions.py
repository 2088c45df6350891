"""The exchange core's decisions, as values: what the I/O around the core is to do next.

The core (:mod:`pyuftp.core.exchange`) never awaits anything; it returns these, and the
receiving and sending layers carry them out. One word each, used everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Answer:
    """A response to send for a received request: the one thing ``Courier.answer`` takes.

    ``answers`` names the recorded request it answers (sender domain, message id): queueing
    the answer marks that request handled in the same transaction. None for a request that
    was answered without being recorded (a sender mismatch). ``outcome`` is what the
    request's archive entry notes: ``(result, rejection reason or None)``.
    """

    message_type: str
    payload: dict[str, Any]
    recipient_domain: str
    recipient_role: str
    answers: tuple[str, str] | None = None
    outcome: tuple[str, str | None] = ("Accepted", None)
    #: the payload XML's digest of the request, for logs and the derived message id
    request_digest: str = field(default="", compare=False)


# --- the steps of one request (pyuftp.core.reception.Reception), in the order they come ----


@dataclass(frozen=True)
class Refuse:
    """Answer the request with this HTTP status (not 200) and text, and ``Retry-After``
    seconds when given; nothing else happens to it."""

    status: int
    text: str
    retry_after: int | None = None


@dataclass(frozen=True)
class Admit:
    """Wait for an admission slot (first come, first served), then say whether one came:
    ``Reception.admitted(entered)``. From here on the slot is the driver's to give back,
    on every path, once the reception is :class:`Done` (or refused)."""


@dataclass(frozen=True)
class Record:
    """Record the request in the journal and its ``entry`` in the archive, in one
    transaction, before answering 200; then ``Reception.recorded(result)`` with the
    journal's answer (``"new"``, ``"duplicate"``, ``"conflict"``), or ``recorded(error=…)``
    when the store failed."""

    sender_domain: str
    message_id: str
    digest: str
    signed_xml: bytes
    entry: Any


@dataclass(frozen=True)
class Drop:
    """Answer 200 and do nothing more: a resend of a request already received (handled or
    being handled), or an unrecorded request answered before. Give the slot back, if held."""


@dataclass(frozen=True)
class Accept:
    """Answer 200 now; the rest happens after it (``Reception.begin()``), holding the slot."""


@dataclass(frozen=True)
class CheckRules:
    """Run the business rules' sync step: ``Reception.check_rules(lookups)`` through
    ``store.call`` (it reads the archive: on a worker thread when the store is threaded)."""


@dataclass(frozen=True)
class AwaitRules:
    """The user's ``async def`` rules apply: await ``rules.check_async(context)`` on the
    loop, then ``Reception.rules_awaited(problems)`` (or ``rules_awaited(error=…)``)."""

    rules: Any
    context: Any


@dataclass(frozen=True)
class Handle:
    """Call the user's handler, then ``Reception.handled(result)`` (or
    ``handled(found=False)`` when there is none). Before it: ``settles`` is the id of our
    waiting request this response answers (wake its ``request()``), and ``note`` the
    outcome to note on the archived request it answers, ``(direction, counterparty,
    message_id, result, rejection_reason)``."""

    settles: str | None = None
    note: tuple[str, str, str, str, str | None] | None = None


@dataclass(frozen=True)
class MarkHandled:
    """Mark the recorded request handled without an answer (a request that has none, or
    whose answer could not be made): it is not handled again after a restart."""

    sender_domain: str
    message_id: str


@dataclass(frozen=True)
class Done:
    """Nothing more to do for this request; give its admission slot back."""


#: The decisions without fields, one instance each.
ADMIT, DROP, ACCEPT, CHECK_RULES, DONE = Admit(), Drop(), Accept(), CheckRules(), Done()

#: What ``Reception.start`` … ``recorded`` return (the HTTP part of a request's life).
Arrival = Refuse | Admit | Record | Drop | Accept
#: What ``Reception.begin`` … ``finish`` return (after the 200).
Step = CheckRules | AwaitRules | Handle | Answer | MarkHandled | Done
