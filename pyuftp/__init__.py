"""pyuftp: the USEF Flex Trading Protocol (UFTP / Shapeshifter) as plain Python dicts.

    import pyuftp
    xml = pyuftp.create_message("FlexOffer", {...})
    message_type, payload = pyuftp.parse_message(xml)

Everything a user needs is here, by name: the message functions, keys, the services and
clients of each role, :class:`Directory`, :class:`Rejected`, the errors, the enumerations and
the payload types. The folders below are the layers (docs/architecture.rst); what they do
not name here is internal.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .api import MessageType, check_payload, create_message, parse_message
from .exceptions import (
    AddressingError,
    FinalDeliveryError,
    InvalidKey,
    InvalidSignature,
    MalformedXML,
    MessageError,
    PyUFTPError,
    Rejected,
    RuleViolation,
    StoreError,
    TemporaryDeliveryError,
    UnknownMessageType,
    UnsupportedVersion,
    ValidationError,
)
from .message.catalog import DEFAULT_VERSION, MESSAGE_TYPES, VERSIONS
from .types.enums import (Disposition, ProfileType, RedispatchBy, Result, Role,
                          SettlementDisposition, Unit)
from .types.payloads import PAYLOADS

__version__ = "0.1.0"

# What loads on first use (aiohttp, PyNaCl, the stores), so that code that only converts
# messages keeps ``import pyuftp`` fast: name -> module below pyuftp.
_LAZY = {
    "generate_keypair": "signing.crypto", "SigningKey": "signing.crypto",
    "VerifyKey": "signing.crypto", "load_keys": "signing.keyfile", "KeyPair": "signing.keyfile",
    "Directory": "discovery",
    "ShapeshifterService": "server.service", "ShapeshifterAgrService": "server.service",
    "ShapeshifterCroService": "server.service", "ShapeshifterDsoService": "server.service",
    "Limits": "server.limits",
    "ShapeshifterClient": "clients", "ShapeshifterAgrCroClient": "clients",
    "ShapeshifterAgrDsoClient": "clients", "ShapeshifterCroAgrClient": "clients",
    "ShapeshifterCroDsoClient": "clients", "ShapeshifterDsoAgrClient": "clients",
    "ShapeshifterDsoCroClient": "clients",
    "open_store": "store",
}
_LAZY.update({cls.__name__: "types.payloads" for cls in PAYLOADS.values()})

if TYPE_CHECKING:
    from .clients import (ShapeshifterAgrCroClient, ShapeshifterAgrDsoClient,
                          ShapeshifterClient, ShapeshifterCroAgrClient,
                          ShapeshifterCroDsoClient, ShapeshifterDsoAgrClient,
                          ShapeshifterDsoCroClient)
    from .discovery import Directory
    from .server.limits import Limits
    from .server.service import (ShapeshifterAgrService, ShapeshifterCroService,
                                 ShapeshifterDsoService, ShapeshifterService)
    from .signing.crypto import SigningKey, VerifyKey, generate_keypair
    from .signing.keyfile import KeyPair, load_keys
    from .store import open_store


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pyuftp' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    # messages
    "create_message", "parse_message", "check_payload", "MessageType",
    "DEFAULT_VERSION", "MESSAGE_TYPES", "VERSIONS", "PAYLOADS",
    # keys
    "generate_keypair", "SigningKey", "VerifyKey", "load_keys", "KeyPair",
    # parties
    "Directory", "ShapeshifterService", "ShapeshifterAgrService", "ShapeshifterCroService",
    "ShapeshifterDsoService", "Limits", "Rejected", "open_store",
    "ShapeshifterClient", "ShapeshifterAgrCroClient", "ShapeshifterAgrDsoClient",
    "ShapeshifterCroAgrClient", "ShapeshifterCroDsoClient", "ShapeshifterDsoAgrClient",
    "ShapeshifterDsoCroClient",
    # errors
    "PyUFTPError", "MessageError", "UnknownMessageType", "UnsupportedVersion", "MalformedXML",
    "ValidationError", "InvalidKey", "InvalidSignature", "RuleViolation", "StoreError",
    "TemporaryDeliveryError", "FinalDeliveryError", "AddressingError",
    # enumerations
    "Disposition", "ProfileType", "RedispatchBy", "Result", "Role", "SettlementDisposition",
    "Unit",
    # payload types: FlexOfferPayload, DPrognosisPayload, ... (one per message type)
    *sorted(cls.__name__ for cls in PAYLOADS.values()),
]
