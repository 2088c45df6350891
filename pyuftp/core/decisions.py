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
