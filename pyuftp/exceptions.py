"""Every error pyuftp raises on purpose derives from :class:`PyUFTPError`.

Callers can catch one class for "the message (or its transport) was bad" and still tell
the cases apart where it matters, e.g. a schema problem (fix the payload) from a
temporary transport failure (try again later).
"""
from __future__ import annotations


class PyUFTPError(Exception):
    """Base class of all pyuftp errors."""


class MessageError(PyUFTPError, ValueError):
    """A message could not be rendered or parsed."""


class UnknownMessageType(MessageError):
    """The message type (XML root element) is not a UFTP payload message."""


class UnsupportedVersion(MessageError):
    """The UFTP version is not one that pyuftp supports."""


class MalformedXML(MessageError):
    """The bytes are not well-formed XML, or use XML features that are refused (DOCTYPE)."""


class ValidationError(MessageError):
    """A payload does not fit the UFTP schema.

    ``field`` is the dict path of the offending value, e.g.
    ``FlexOffer.offer_options[0].isps[3].power``; ``reason`` says what is wrong with it.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class InvalidKey(PyUFTPError, ValueError):
    """A signing or verification key is malformed (wrong length, not base64, ...)."""


class InvalidSignature(PyUFTPError):
    """A sealed message does not verify with the sender's public key."""
