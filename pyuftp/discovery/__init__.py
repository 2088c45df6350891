"""Finding other parties: their public keys and service endpoints, by (domain, role).

A :class:`Directory` holds what was exchanged by hand; :class:`DnsDiscovery` reads what a
party publishes in DNS (DNSSEC checked); :class:`ParticipantRegistry` asks a market
platform's address book; a :class:`LookupChain` asks them in that order (docs/discovery.rst).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .chain import LookupChain
from .directory import Directory, Party
from .records import DiscoveryError, Participant

if TYPE_CHECKING:
    from .dns import DnsDiscovery
    from .registry import ParticipantRegistry


def __getattr__(name: str) -> Any:
    # dnspython is an extra (pip install usef-uftp[dns]): imported only when DNS is used.
    if name == "DnsDiscovery":
        from .dns import DnsDiscovery
        return DnsDiscovery
    if name == "ParticipantRegistry":
        from .registry import ParticipantRegistry
        return ParticipantRegistry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Directory", "Party", "LookupChain", "DnsDiscovery", "DiscoveryError", "Participant",
           "ParticipantRegistry"]
