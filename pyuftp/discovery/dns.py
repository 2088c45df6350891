"""Discovery by DNS: a party's keys, endpoint and version from its own zone, with DNSSEC.

    dns = DnsDiscovery("127.0.0.1:5353", trust_anchors=open("anchors.txt").read())
    participant = await dns.lookup("agr.example.com", "AGR")
    participant.keys, participant.endpoint, participant.authenticated

DNSSEC is mandatory (the spec: "implementation of DNSSEC is mandatory"). Two ways to trust an
answer, chosen when the object is made:

- ``trust_anchors`` (recommended): built-in validation (:mod:`.trust`). Every RRset used is
  checked through a chain of RRSIG, DNSKEY and DS records up to an anchor; the server asked
  (``resolver``) need not be trusted at all.
- ``trust_ad=True``: a validating resolver on a fully trusted network (localhost, say) does
  the work; an answer is trusted when it carries the AD bit. Only as safe as the path to it.

Either way an answer that is not authenticated, a validation failure, a time-out, a CNAME
loop or a chain longer than ``max_chain`` raise :class:`DiscoveryError` with
``temporary=True`` (HTTP 419 on receipt, a retried delivery on sending). Only
``insecure_skip_dnssec=True`` accepts unauthenticated answers (for tests; it logs a warning).

Costs are bounded: answers (found, not found, failed) are cached for their TTL, at most
``max_ttl`` (not found: ``negative_ttl``; failed: ``error_ttl``) in an LRU of ``max_entries``;
identical look-ups in flight share one; at most ``max_concurrent`` queries are outstanding
and at most ``max_waiting`` wait for a turn (more fail at once, temporarily). Queries are
asyncio (``dns.asyncquery``, UDP then TCP when truncated): a cold look-up never blocks the
event loop.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset

from ..exceptions import excerpt
from .records import (
    MISS,
    DiscoveryError,
    Participant,
    endpoint_name,
    endpoint_url,
    key_name,
    normal_domain,
    normal_role,
    parse_keys,
    parse_target,
    parse_version,
    txt_text,
    version_name,
)
from .trust import Anchors, Validator, find, load_anchors

logger = logging.getLogger(__name__)

_warned_insecure = False
_TXT, _CNAME = dns.rdatatype.TXT, dns.rdatatype.CNAME


def parse_resolver(text: str) -> tuple[str, int]:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` as (address, port); ValueError otherwise."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"resolver must be IP or IP:PORT, not {excerpt(text)}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        port = int(number)
    ipaddress.ip_address(host)  # a name would need a resolver to find the resolver
    if not 0 < port < 65536:
        raise ValueError(f"resolver port out of range: {port}")
    return host, port


def system_resolver() -> tuple[str, int]:
    """The first name server of the system's configuration (``/etc/resolv.conf``)."""
    servers = dns.resolver.Resolver(configure=True).nameservers
    if not servers:
        raise DiscoveryError("no DNS resolver configured on this system")
    return parse_resolver(str(servers[0]))


class DnsDiscovery:
    """A party's records from DNS, authenticated by DNSSEC, cached for their TTL."""

    def __init__(self, resolver: str | None = None, *,
                 trust_anchors: Anchors | str | None = None, trust_ad: bool = False,
                 insecure_skip_dnssec: bool = False, timeout: float = 3.0,
                 max_concurrent: int = 8, max_waiting: int = 256, negative_ttl: float = 30.0,
                 error_ttl: float = 5.0, max_ttl: float = 3600.0, max_entries: int = 10_000,
                 max_chain: int = 8, clock: Callable[[], float] = time.monotonic) -> None:
        global _warned_insecure
        self.host, self.port = parse_resolver(resolver) if resolver else system_resolver()
        anchors = load_anchors(trust_anchors) if isinstance(trust_anchors, str) else trust_anchors
        if not anchors and not trust_ad and not insecure_skip_dnssec:
            raise ValueError("DNSSEC is mandatory: give trust_anchors (built-in validation) or "
                             "trust_ad=True (a validating resolver on a trusted network); "
                             "insecure_skip_dnssec=True is for tests only")
        if insecure_skip_dnssec and not _warned_insecure:
            _warned_insecure = True
            logger.warning("DNSSEC checking is OFF (insecure_skip_dnssec=True): public keys "
                           "from DNS are trusted without authentication; never in production")
        self.validator = Validator(anchors, self._query, clock) if anchors else None
        self.trust_ad, self.insecure = trust_ad, insecure_skip_dnssec
        self.timeout, self.max_chain, self.clock = timeout, max_chain, clock
        self.negative_ttl, self.error_ttl, self.max_ttl = negative_ttl, error_ttl, max_ttl
        self.max_entries, self.max_waiting = max_entries, max_waiting
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._cache: OrderedDict[tuple[str, str, str], tuple[float, Any]] = OrderedDict()
        self._pending: dict[tuple[str, str, str], asyncio.Task[Any]] = {}
        self._waiting = 0
        #: Figures: DNS queries sent, the most outstanding at once, now outstanding.
        self.queries = self.max_in_flight = self.in_flight = 0

    # --- the look-ups ------------------------------------------------------------------------

    def peek(self, kind: str, domain: str, role: str) -> Any:
        """A cached answer (``kind``: keys, endpoint or version) if still fresh, else the
        :data:`MISS` marker; a cached failure is raised again. The hot path: a dict look-up."""
        key = (kind, domain, role)
        entry = self._cache.get(key)
        if entry is None or entry[0] <= self.clock():
            return MISS
        self._cache.move_to_end(key)
        value = entry[1]
        if isinstance(value, DiscoveryError):
            raise DiscoveryError(str(value), temporary=value.temporary)
        return value

    async def keys(self, domain: str, role: str) -> tuple[str, ...]:
        """The published public keys (one, or two during a rotation); ``()`` if none."""
        value: tuple[str, ...] = await self._get("keys", domain, role, self._keys)
        return value

    async def endpoint(self, domain: str, role: str) -> str | None:
        """The service URL from the ``_http`` CNAME (chain followed), or None."""
        value: str | None = await self._get("endpoint", domain, role, self._endpoint)
        return value

    async def version(self, domain: str) -> str | None:
        """The version in the ``_usef`` TXT record, or None."""
        value: str | None = await self._get("version", domain, "", self._version)
        return value

    async def lookup(self, domain: str, role: str) -> Participant:
        """Everything published for ``domain`` in ``role`` (one query each, concurrently)."""
        keys, endpoint, version = await asyncio.gather(
            self.keys(domain, role), self.endpoint(domain, role), self.version(domain))
        authenticated = self._authenticated(domain, role)
        return Participant(normal_domain(domain), normal_role(role), keys, endpoint, version,
                           authenticated=authenticated, source="dns")

    def invalidate(self, domain: str, role: str) -> None:
        """Forget what is cached for ``domain`` in ``role`` (after a signature failed: the
        key may have been rotated); the next look-up asks DNS again."""
        for kind in ("keys", "endpoint"):
            self._cache.pop((kind, domain, role), None)
            self._cache.pop((kind + "-auth", domain, role), None)

    # --- computing an answer once ------------------------------------------------------------

    async def _get(self, kind: str, domain: str, role: str,
                   compute: Callable[[str, str], Awaitable[tuple[Any, float, bool]]]) -> Any:
        value = self.peek(kind, domain, role)
        if value is not MISS:
            return value
        key = (kind, domain, role)
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fill(key, compute))
            task.add_done_callback(_retrieve)
            self._pending[key] = task
        return await asyncio.shield(task)

    async def _fill(self, key: tuple[str, str, str],
                    compute: Callable[[str, str], Awaitable[tuple[Any, float, bool]]]) -> Any:
        kind, domain, role = key
        try:
            value, ttl, authenticated = await compute(domain, role)
        except DiscoveryError as exc:
            self._store(key, exc, self.error_ttl if exc.temporary else self.negative_ttl)
            raise
        finally:
            self._pending.pop(key, None)
        ttl = ttl if value else min(ttl, self.negative_ttl)
        self._store(key, value, ttl)
        self._store((kind + "-auth", domain, role), authenticated, ttl)
        return value

    def _store(self, key: tuple[str, str, str], value: Any, ttl: float) -> None:
        ttl = min(ttl, self.max_ttl)
        if ttl <= 0:
            return
        self._cache[key] = (self.clock() + ttl, value)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    def _authenticated(self, domain: str, role: str) -> bool:
        kinds = (("keys", role), ("endpoint", role), ("version", ""))
        return all(self._cache.get((kind + "-auth", domain, r), (0, True))[1]
                   for kind, r in kinds)

    async def _keys(self, domain: str, role: str) -> tuple[tuple[str, ...], float, bool]:
        rrset, ttl, authenticated = await self._resolve(key_name(domain, role), _TXT)
        texts = [txt_text(rdata.strings) for rdata in rrset] if rrset is not None else []
        return parse_keys(texts), ttl, authenticated

    async def _version(self, domain: str, _role: str) -> tuple[str | None, float, bool]:
        rrset, ttl, authenticated = await self._resolve(version_name(domain), _TXT)
        texts = [txt_text(rdata.strings) for rdata in rrset] if rrset is not None else []
        return parse_version(texts), ttl, authenticated

    async def _endpoint(self, domain: str, role: str) -> tuple[str | None, float, bool]:
        start = _name(endpoint_name(domain, role))
        current, seen = start, {start}
        ttl, authenticated = self.max_ttl, True
        for _ in range(self.max_chain + 1):
            response = await self._query(current, _CNAME)
            cname, sigs = find(response, current, _CNAME)
            if cname is None:
                return (None if current == start else endpoint_url(
                    parse_target(current.to_text()))), ttl, authenticated
            hop_ttl, hop_auth = await self._trust(response, cname, sigs)
            ttl, authenticated = min(ttl, hop_ttl), authenticated and hop_auth
            current = self._next(cname, seen)
        raise DiscoveryError(f"CNAME chain from {excerpt(start.to_text())} is longer than "
                             f"{self.max_chain}")

    async def _resolve(self, name: str, rdtype: dns.rdatatype.RdataType
                       ) -> tuple[dns.rrset.RRset | None, float, bool]:
        """The RRset of ``name``/``rdtype`` (None if there is none), CNAMEs followed."""
        current = _name(name)
        seen = {current}
        ttl, authenticated = self.max_ttl, True
        for _ in range(self.max_chain + 1):
            response = await self._query(current, rdtype)
            rrset, sigs = find(response, current, rdtype)
            if rrset is not None:
                hop_ttl, hop_auth = await self._trust(response, rrset, sigs)
                return rrset, min(ttl, hop_ttl), authenticated and hop_auth
            cname, sigs = find(response, current, _CNAME)
            if cname is None:  # nothing there. The denial is not validated (a forged one
                # only denies service, as dropping packets would); "authenticated" speaks of
                # the records found, and there are none.
                return None, self.negative_ttl, True
            hop_ttl, hop_auth = await self._trust(response, cname, sigs)
            ttl, authenticated = min(ttl, hop_ttl), authenticated and hop_auth
            current = self._next(cname, seen)
        raise DiscoveryError(f"CNAME chain from {excerpt(name)} is longer than {self.max_chain}")

    def _next(self, cname: dns.rrset.RRset, seen: set[dns.name.Name]) -> dns.name.Name:
        target: dns.name.Name = cname[0].target
        if target in seen:
            raise DiscoveryError(f"CNAME loop at {excerpt(target.to_text())}")
        seen.add(target)
        return target

    async def _trust(self, response: dns.message.Message, rrset: dns.rrset.RRset,
                     sigs: dns.rrset.RRset | None) -> tuple[float, bool]:
        """How long ``rrset`` may be kept and whether it is authenticated; DiscoveryError
        when it is not and DNSSEC is required."""
        try:
            if self.validator is not None:
                return await self.validator.check(rrset, sigs), True
            if self.trust_ad and response.flags & dns.flags.AD:
                return float(rrset.ttl), True
            raise DiscoveryError(f"{excerpt(rrset.name.to_text())}: the resolver did not "
                                 "authenticate the answer (no AD bit)")
        except DiscoveryError:
            if not self.insecure:
                raise
            return float(rrset.ttl), False

    # --- one query ---------------------------------------------------------------------------

    async def _query(self, name: dns.name.Name,
                     rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        """One query to the configured server, within the concurrency bound."""
        if self._waiting >= self.max_waiting:
            raise DiscoveryError("too many DNS look-ups waiting; try again later")
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1
        what = f"{excerpt(name.to_text())} {dns.rdatatype.to_text(rdtype)}"
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.queries += 1
            query = dns.message.make_query(name, rdtype, want_dnssec=True)
            # CD: a validating upstream hands over what it has, we validate it ourselves.
            query.flags |= dns.flags.CD if self.validator is not None else dns.flags.AD
            response, _ = await asyncio.wait_for(dns.asyncquery.udp_with_fallback(
                query, self.host, timeout=self.timeout, port=self.port), 2 * self.timeout)
        except (dns.exception.DNSException, OSError, asyncio.TimeoutError, ValueError) as exc:
            raise DiscoveryError(f"DNS query {what} failed: {type(exc).__name__}") from None
        finally:
            self.in_flight -= 1
            self._semaphore.release()
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise DiscoveryError(f"DNS query {what}: the server answered "
                                 f"{dns.rcode.to_text(rcode)}")
        return response


def _name(text: str) -> dns.name.Name:
    """A DNS name; DiscoveryError (final) when it cannot be one (over 255 octets, say)."""
    try:
        return dns.name.from_text(text)
    except (dns.exception.DNSException, ValueError) as exc:
        raise DiscoveryError(f"not a usable DNS name: {excerpt(text)} ({exc})",
                             temporary=False) from None


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Nobody may be left waiting for a shared look-up: mark its failure as seen.
    if not task.cancelled():
        task.exception()


__all__ = ["DnsDiscovery", "MISS", "parse_resolver", "system_resolver"]
