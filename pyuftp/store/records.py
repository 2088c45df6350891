"""The records a store keeps and hands out: :class:`OutboxItem` and :class:`ArchivedMessage`
(re-exported by :mod:`pyuftp.store.base` and :mod:`pyuftp.store`)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)  # a store in memory keeps one per message: no __dict__ each
class OutboxItem:
    """One message to deliver, as the outbox keeps it."""

    message_id: str
    message_type: str
    sender_domain: str
    recipient_domain: str
    recipient_role: str
    body: bytes            # the SignedMessage envelope, exactly as it will be POSTed
    created_at: float      # unix time
    expires_at: float      # give up (final failure) after this
    id: int | None = None  # assigned by the store
    attempts: int = 0
    next_attempt_at: float = 0.0
    state: str = "pending"   # "pending" | "delivered" | "failed"
    last_error: str | None = None
    last_status: int | None = None


@dataclass(slots=True)
class ArchivedMessage:
    """One message sent (``direction="out"``) or received (``"in"``), as the archive keeps it."""

    direction: str            # "in" (received) or "out" (sent)
    message_type: str         # "FlexOffer", "D-Prognosis", ...
    message_id: str
    conversation_id: str
    sender_domain: str
    sender_role: str
    recipient_domain: str
    recipient_role: str
    time_stamp: float         # the message's own TimeStamp, unix time
    payload_xml: bytes        # the payload XML exactly as sent/received (not the envelope)
    # key -> the message id it names, e.g. {"flex_request_message_id": "..."}
    references: dict[str, str] = field(default_factory=dict)
    period: str | None = None     # ISO date of the message's Period, if it has one
    # a D-Prognosis's or FlexRequest's congestion point and revision (highest_revision's index)
    congestion_point: str | None = None
    revision: int | None = None
    outcome: str | None = None    # "Accepted", "Rejected", "Revoked" (set_outcome) or None
    reasons: str | None = None    # the rejection reasons, if any
    archived_at: float = 0.0      # set by the store: unix time of storing
    # the SignedMessage envelope exactly as posted, when the archive has it (the journal's
    # data of a message received, the outbox body of one sent); kept with payload_xml as one
    # compressed blob, the XML once (pyuftp.store.signed)
    envelope: bytes | None = None

    @property
    def counterparty(self) -> str:
        """The other party's domain: the recipient of a message sent, the sender of one
        received."""
        return self.recipient_domain if self.direction == "out" else self.sender_domain
