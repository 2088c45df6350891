"""pyuftp: the USEF Flex Trading Protocol (UFTP / Shapeshifter) as plain Python dicts.

    import pyuftp
    xml = pyuftp.create_message("FlexOffer", {...})
    message_type, payload = pyuftp.parse_message(xml)
"""
from __future__ import annotations

from typing import Any

from .catalog import DEFAULT_VERSION, MESSAGE_TYPES, VERSIONS
from .exceptions import (
    InvalidKey,
    InvalidSignature,
    MalformedXML,
    MessageError,
    PyUFTPError,
    RuleViolation,
    UnknownMessageType,
    UnsupportedVersion,
    ValidationError,
)
from .enums import (Disposition, ProfileType, RedispatchBy, Result, Role,
                    SettlementDisposition, Unit)
from .messaging import check_payload, create_message, parse_message

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Crypto (PyNaCl) and transport (aiohttp) load on first use, so that code that only
    # converts messages keeps `import pyuftp` fast.
    if name == "generate_keypair":
        from .crypto import generate_keypair
        return generate_keypair
    if name in ("load_keys", "KeyPair"):
        from . import keyfile
        return getattr(keyfile, name)
    raise AttributeError(f"module 'pyuftp' has no attribute {name!r}")


__all__ = [
    "DEFAULT_VERSION", "MESSAGE_TYPES", "VERSIONS",
    "create_message", "parse_message", "check_payload", "generate_keypair",
    "load_keys", "KeyPair",
    "PyUFTPError", "MessageError", "UnknownMessageType", "UnsupportedVersion", "MalformedXML",
    "ValidationError", "InvalidKey", "InvalidSignature", "RuleViolation",
    "Disposition", "ProfileType", "RedispatchBy", "Result", "Role", "SettlementDisposition",
    "Unit",
]
