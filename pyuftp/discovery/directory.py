"""Finding other parties: their public keys and service endpoints, by (domain, role).

UFTP publishes both in DNS (``_{role}._usef.{domain}`` TXT for the ``cs1.`` key,
``_http._{role}._usef.{domain}`` CNAME for the endpoint) or exchanges them by hand. A
:class:`Directory` holds what was exchanged by hand; its ``key`` and ``endpoint`` methods are
the ``key_lookup`` and ``endpoint_lookup`` a service takes.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..auth.tls import check_url
from ..signing.crypto import VerifyKey


@dataclass(frozen=True)
class Party:
    domain: str
    role: str
    public_key: str
    endpoint: str | None = None


class Directory:
    """Public keys and endpoints of known parties, keyed by (domain, role)."""

    def __init__(self) -> None:
        self._parties: dict[tuple[str, str], Party] = {}
        #: how often a party was added: caches of "unknown" answers start again when it moves
        self.changes = 0

    def add(self, domain: str, role: str, public_key: str, endpoint: str | None = None) -> Party:
        """Register a party; the key (base64 of 32 bytes, or ``cs1.``) and the endpoint (an
        absolute http(s) URL) are checked now, so that a typo shows here, not as a failing
        delivery later."""
        VerifyKey(public_key)
        if endpoint is not None:
            endpoint = check_url(endpoint, f"the endpoint of {domain} ({role})")
        party = self._parties[(domain, role)] = Party(domain, role, public_key, endpoint)
        self.changes += 1
        return party

    def key(self, domain: str, role: str) -> str | None:
        """The party's public key, or None if unknown (a service then answers HTTP 419)."""
        party = self._parties.get((domain, role))
        return party.public_key if party else None

    def endpoint(self, domain: str, role: str) -> str | None:
        """The party's service URL, or None if unknown."""
        party = self._parties.get((domain, role))
        return party.endpoint if party else None

    def __contains__(self, item: tuple[str, str]) -> bool:
        return item in self._parties
