"""Every error pyuftp raises on purpose, in one place.

All derive from :class:`PyUFTPError`, so callers can catch one class for "the message (or its
transport) was bad" and still tell the cases apart where it matters: a schema problem (fix
the payload) from a temporary transport failure (try again later).

Errors about what another party sent carry the HTTP status a receiving service answers with
(``http_status``), so that the service maps an error to its answer in one line. Their texts
quote what the sender sent only through :func:`quote` (a short, escaped excerpt), because
they end up in logs and in HTTP answers.
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any

#: The most characters of what another party sent that an error text or log line quotes.
EXCERPT = 80


#: Every character :meth:`str.splitlines` breaks a line at: none may reach a log line raw.
LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def _escape_breaks(text: str) -> str:
    """``text`` with every line break and other unprintable character escaped as in a repr
    (``\\n``, ``\\x85``, ``\\u2028``): one line, whatever it came from."""
    if text.isprintable():  # the common case, in C; line breaks are never printable
        return text
    return "".join(c if c.isprintable() and c not in LINE_BREAKS else repr(c)[1:-1]
                   for c in text)


def quote(value: Any, limit: int = EXCERPT) -> str:
    """``repr(value)``, cut to at most ``limit`` characters: safe to log and to send back.

    The repr escapes control characters and lone surrogates; what a user's ``__repr__``
    leaves raw (a line break of any kind) is escaped here, so a quoted value can neither
    forge a log line nor break an encoding; the cut keeps a hostile megabyte out of logs.
    """
    if isinstance(value, str) and len(value) > limit * 2:
        value = value[: limit * 2]  # repr of a megabyte costs a megabyte: cut it first
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a user's object with a broken __repr__
        text = f"<{type(value).__name__}>"
    text = _escape_breaks(text[: limit * 4])
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def excerpt(text: Any, limit: int = EXCERPT) -> str:
    """Text from elsewhere (a parser's message, a peer's answer, a rule's finding) cut and
    escaped for a log line: printable ASCII kept as it is, everything else escaped, so no
    line separator :meth:`str.splitlines` knows (``\\n \\r \\v \\f \\x1c-\\x1e \\x85
    \\u2028 \\u2029``) is ever written raw. At most ``limit`` characters."""
    try:
        text = str(text)
    except Exception:  # noqa: BLE001 - a user's object with a broken __str__
        text = f"<{type(text).__name__}>"
    text = text[: limit * 2]  # time and memory bounded by the limit, not by the text
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in escaped[: limit * 2])
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def summary(problems: Any, shown: int = 3, limit: int = EXCERPT) -> str:
    """Many findings as one bounded log text: their count, then the first ``shown`` of
    them, each an :func:`excerpt` of ``limit`` characters."""
    items = list(problems[:shown]) if isinstance(problems, (list, tuple)) else []
    count = len(problems) if isinstance(problems, (list, tuple)) else 0
    text = f"{count} problem{'' if count == 1 else 's'}: " + "; ".join(
        excerpt(p, limit) for p in items)
    return text + ("; ..." if count > shown else "")


class About(dict[str, str]):
    """The fields that name a message in a log record (:func:`about`); as text, the same
    fields in words: ``FlexOffer 5b1c… (conversation 77e0…) with dso.example.com``."""

    def __str__(self) -> str:
        if "message_type" not in self and "message_id" not in self:  # a sender only
            role = f" ({self['role']})" if "role" in self else ""
            return f"{self.get('counterparty', 'an unknown sender')}{role}"
        text = f"{self.get('message_type', 'a message')} {self.get('message_id', '')}".strip()
        if "conversation_id" in self:
            text += f" (conversation {self['conversation_id']})"
        return text + (f" with {self['counterparty']}" if "counterparty" in self else "")


def about(subject: Any, counterparty: str | None = None) -> About:
    """The ``extra`` of a log line about a message: ``message_type``, ``message_id``,
    ``conversation_id`` and ``counterparty``, each an ``excerpt`` (those not known are
    left out). ``subject``: a received message (its sender is the counterparty), an outbox
    item (its recipient; the conversation is read from the head of its body), a
    ``(message_type, payload)`` pair or a payload dict. ``str()`` of the result names the
    message in the text, so ``logger.info("sent %s", fields, extra=fields)`` puts the fields
    in both; one grep for a conversation id then finds every line about it."""
    payload = getattr(subject, "payload", None)
    message_type = getattr(subject, "message_type", None)
    if isinstance(subject, tuple) and len(subject) == 2:
        message_type, payload = subject
    elif isinstance(subject, dict):
        payload = subject
    found: dict[str, Any] = {"message_type": message_type}
    if isinstance(payload, dict):
        found.update(message_id=payload.get("message_id"),
                     conversation_id=payload.get("conversation_id"))
    else:  # an outbox item: the id it has, the conversation from its sealed body
        found.update(message_id=getattr(subject, "message_id", None),
                     conversation_id=_conversation(getattr(subject, "body", b"")))
    if counterparty is None:  # a received message's sender, an outbox item's recipient
        counterparty = getattr(subject, "sender_domain" if hasattr(subject, "signed_xml")
                               else "recipient_domain", None)
    found["counterparty"] = counterparty
    return About((key, excerpt(value)) for key, value in found.items() if value)


def _conversation(body: Any) -> str | None:
    """The ConversationID of a SignedMessage, from the first bytes of its body only (the
    payload's root element comes first): time bounded, whatever the message's size."""
    if not isinstance(body, bytes):
        return None
    start = body.find(b'Body="')
    chunk = body[start + 6:start + 6 + 1024] if start >= 0 else b""
    chunk = chunk.split(b'"')[0]
    try:
        head = base64.b64decode(chunk[: len(chunk) // 4 * 4])[64:]
    except (binascii.Error, ValueError):
        return None
    match = re.search(rb'ConversationID="([^"]{1,100})"', head)
    return match.group(1).decode("ascii", "replace") if match else None


class PyUFTPError(Exception):
    """Base class of all pyuftp errors."""

    #: The HTTP status a service answers when this error is about a request it received.
    http_status: int = 400


# --- the message layer ------------------------------------------------------------------------


class MessageError(PyUFTPError, ValueError):
    """A message could not be rendered or parsed (HTTP 400 when received)."""


class UnknownMessageType(MessageError):
    """The message type (XML root element) is not a UFTP payload message."""


class UnsupportedVersion(MessageError):
    """The UFTP version is not one that pyuftp supports."""


class MalformedXML(MessageError):
    """The bytes are not well-formed XML, use refused XML features (DOCTYPE), or are shaped
    unlike any UFTP message (too many attributes, children or levels)."""


class ValidationError(MessageError):
    """A payload does not fit the UFTP schema.

    ``field`` is the dict path of the offending value, e.g.
    ``FlexOffer.offer_options[0].isps[3].power``; ``reason`` says what is wrong with it.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class RuleViolation(ValidationError):
    """A message breaks business rules (:mod:`pyuftp.rules`): ``problems`` lists them all,
    each ending in the id of its rule, e.g. ``offer_options[0].isps[2]: ISPs 97-97 lie outside
    2026-11-24, which has ISPs 1-96 in Europe/Amsterdam [isp.within_period]``."""

    #: The most problems its text lists (``problems`` keeps them all): 50,000 findings must
    #: not make a message of megabytes wherever it is printed or logged.
    SHOWN = 20

    def __init__(self, message_type: str, problems: list[str]) -> None:
        self.problems = list(problems)
        count, shown = len(self.problems), self.problems[: self.SHOWN]
        more = f"; and {count - len(shown)} more" if count > len(shown) else ""
        super().__init__(message_type, "breaks " + ("a rule: " if count == 1 else
                                                    f"{count} rules: ") + "; ".join(shown) + more)


class SenderMismatch(MessageError):
    """The inner message names another sender than the envelope it came in.

    ``received`` is the verified message, so that the receiver can still answer it with a
    ``Rejected`` response to the party that signed it.
    """

    def __init__(self, message: str, received: Any) -> None:
        super().__init__(message)
        self.received = received


# --- keys and signatures ----------------------------------------------------------------------


class InvalidKey(PyUFTPError, ValueError):
    """A signing or verification key is malformed (wrong length, not base64, ...).

    Received with a request, it means the key found for the sender is unusable: the sender
    can do nothing about it but retry later (HTTP 419, as for a key not found).
    """

    http_status = 419


class InvalidSignature(PyUFTPError):
    """A sealed message does not verify with the sender's public key (HTTP 401)."""

    http_status = 401


class UnknownSender(PyUFTPError):
    """No public key could be found for the sender's domain and role (HTTP 419)."""

    http_status = 419


# --- transport --------------------------------------------------------------------------------


class RequestRefused(PyUFTPError):
    """A request refused before its content was looked at: wrong content type (400), no
    Content-Length (411), too big (413), too slow (408), or no room just now (503)."""

    def __init__(self, message: str, http_status: int, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after


class DeliveryError(PyUFTPError):
    """A message could not be delivered.

    ``temporary`` says whether trying again later may succeed (5xx, 404, 419, 429, a
    timeout or a broken connection) or not (any other 4xx); ``status`` is the HTTP status,
    if one came back.
    """

    def __init__(self, message: str, *, temporary: bool, status: int | None = None,
                 url: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.status = status
        self.url = url
        self.retry_after = retry_after  # seconds the peer asked us to wait, if it said


class TemporaryDeliveryError(DeliveryError):
    """A delivery failed in a way that trying again later may fix."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, temporary=True, **kwargs)


class FinalDeliveryError(DeliveryError):
    """A delivery failed for good (the peer refused the message)."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, temporary=False, **kwargs)


class DeliveryExpired(FinalDeliveryError):
    """A message failed temporarily until its ``expires_at`` passed; ``last_error`` is the
    failure of the last attempt (also ``__cause__``)."""

    def __init__(self, message: str, last_error: BaseException, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.last_error = last_error


class AddressingError(PyUFTPError, ValueError):
    """A message cannot be addressed: no endpoint (or an invalid URL) or no public key is
    known for its recipient. Raised when sending, before anything is queued; ``domain`` and
    ``role`` name the recipient."""

    def __init__(self, message: str, domain: str, role: str) -> None:
        super().__init__(message)
        self.domain = domain
        self.role = role


# --- handling and storage ---------------------------------------------------------------------


class Rejected(PyUFTPError):
    """Raise from a handler to answer the message with ``Result="Rejected"``.

    Extra keyword arguments become fields of the response (e.g. the
    ``flex_order_settlement_statuses`` a rejected FlexSettlementResponse still needs).
    """

    def __init__(self, reason: str, **fields: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


class StoreError(PyUFTPError):
    """The store cannot be used: closed, corrupt, full, locked by another process, not a
    pyuftp store, or made by a newer pyuftp. Nothing was changed by the failed call."""

    http_status = 503
