"""Built-in DNSSEC validation: an answer is trusted only through a chain of signatures that
ends at a configured trust anchor.

For an RRset and its RRSIGs the :class:`Validator` finds the signing zone's DNSKEY set,
trusts it when one of its keys matches a trust anchor of that zone (a DS or DNSKEY record
given by the operator) or a DS record that is itself validated one zone up, and checks the
RRset's signature with those keys (dnspython's ``dns.dnssec.validate``: Ed25519, ECDSA and
RSA as the ``cryptography`` package offers them). Validated DNSKEY sets are kept for their
TTL (bounded). Anything less than a full chain raises :class:`DiscoveryError` with
``temporary=True``: the spec treats verification failures as temporary.

Trust anchors are read from text, one record per line in zone-file form (what ``dig DS``
or ``dig DNSKEY`` prints, comments after ``;``)::

    example.test.  3600  IN  DS  12345 15 2 3a6f...
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset

from ..exceptions import excerpt
from .records import DiscoveryError

#: A query: (name, rdtype) -> the response of the configured server.
Query = Callable[[dns.name.Name, dns.rdatatype.RdataType], Awaitable[dns.message.Message]]
Anchors = dict[dns.name.Name, list[Any]]
#: How many zone cuts a chain of trust may cross (a name has at most 127 labels).
MAX_DEPTH = 16
#: Validated DNSKEY sets kept at most this long, and at most this many zones.
MAX_KEY_TTL = 3600
MAX_ZONES = 1024


def load_anchors(text: str) -> Anchors:
    """Trust anchors from zone-file lines (``name [ttl] [IN] DS|DNSKEY rdata``); ValueError
    naming the line for anything else."""
    anchors: Anchors = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        rest = parts[1:]
        if rest and rest[0].isdigit():
            rest = rest[1:]
        if rest and rest[0].upper() == "IN":
            rest = rest[1:]
        if len(rest) < 2 or rest[0].upper() not in ("DS", "DNSKEY"):
            raise ValueError(f"trust anchor line {number}: expected 'name [ttl] [IN] DS|DNSKEY "
                             f"...', got {excerpt(line)}")
        try:
            name = dns.name.from_text(parts[0])
            rdata = dns.rdata.from_text(dns.rdataclass.IN, rest[0].upper(), " ".join(rest[1:]))
        except (dns.exception.DNSException, ValueError) as exc:
            raise ValueError(f"trust anchor line {number}: {exc}") from None
        anchors.setdefault(name, []).append(rdata)
    if not anchors:
        raise ValueError("no trust anchor found (expected DS or DNSKEY lines)")
    return anchors


def find(message: dns.message.Message, name: dns.name.Name,
         rdtype: dns.rdatatype.RdataType) -> tuple[dns.rrset.RRset | None, dns.rrset.RRset | None]:
    """The answer section's RRset of ``name``/``rdtype`` and the RRSIGs covering it."""
    rrset = message.get_rrset(message.answer, name, dns.rdataclass.IN, rdtype)
    sigs = message.get_rrset(message.answer, name, dns.rdataclass.IN, dns.rdatatype.RRSIG,
                             rdtype)
    return rrset, sigs


class Validator:
    """Validates RRsets up to the trust ``anchors``, asking ``query`` for DNSKEY and DS."""

    def __init__(self, anchors: Anchors, query: Query,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.anchors, self.query, self.clock = anchors, query, clock
        self._keys: OrderedDict[dns.name.Name, tuple[float, dns.rdataset.Rdataset]] = \
            OrderedDict()
        self._pending: dict[dns.name.Name, asyncio.Task[dns.rdataset.Rdataset]] = {}

    async def check(self, rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None,
                    depth: int = 0) -> float:
        """Validate ``rrset`` with ``sigs``; the seconds it may be trusted (its TTL, cut at
        the end of the signatures' validity). DiscoveryError (temporary) otherwise."""
        what = f"{rrset.name.to_text()} {dns.rdatatype.to_text(rrset.rdtype)}"
        if sigs is None or not len(sigs):
            raise DiscoveryError(f"{excerpt(what)} is not signed (no RRSIG): not trusted")
        signers = {sig.signer for sig in sigs}
        if len(signers) != 1:
            raise DiscoveryError(f"{excerpt(what)} is signed by more than one zone")
        signer = signers.pop()
        if not rrset.name.is_subdomain(signer):
            raise DiscoveryError(f"{excerpt(what)} is signed by {excerpt(signer.to_text())}, "
                                 "which is not its zone")
        keys = await self.zone_keys(signer, depth)
        try:
            dns.dnssec.validate(rrset, sigs, {signer: keys})
        except (dns.exception.DNSException, ValueError) as exc:  # ValidationFailure, mostly
            raise DiscoveryError(f"DNSSEC validation of {excerpt(what)} failed: {exc}") from None
        valid_for = float(min(sig.expiration for sig in sigs)) - time.time()
        return max(0.0, min(float(rrset.ttl), valid_for))

    async def zone_keys(self, zone: dns.name.Name, depth: int = 0) -> dns.rdataset.Rdataset:
        """The validated DNSKEY set of ``zone`` (look-ups of one zone at once share one)."""
        cached = self._keys.get(zone)
        if cached is not None and cached[0] > self.clock():
            self._keys.move_to_end(zone)
            return cached[1]
        task = self._pending.get(zone)
        if task is None:
            task = asyncio.ensure_future(self._zone_keys(zone, depth))
            task.add_done_callback(_retrieve)
            self._pending[zone] = task
        return await asyncio.shield(task)

    async def _zone_keys(self, zone: dns.name.Name, depth: int) -> dns.rdataset.Rdataset:
        # Forgotten as it ends, in the task itself: a done-callback might never run (its
        # loop closed), leaving a finished task, perhaps a failure, to be awaited forever.
        try:
            return await self._fetch_zone_keys(zone, depth)
        finally:
            self._pending.pop(zone, None)

    async def _fetch_zone_keys(self, zone: dns.name.Name, depth: int
                               ) -> dns.rdataset.Rdataset:
        now = self.clock()
        if depth > MAX_DEPTH:
            raise DiscoveryError("the chain of trust is too long")
        response = await self.query(zone, dns.rdatatype.DNSKEY)
        dnskeys, sigs = find(response, zone, dns.rdatatype.DNSKEY)
        if dnskeys is None or sigs is None:
            raise DiscoveryError(f"zone {excerpt(zone.to_text())} publishes no signed DNSKEY")
        if zone in self.anchors:
            trusted, ttl = self.anchors[zone], float(MAX_KEY_TTL)
        else:
            trusted, ttl = await self._delegation(zone, depth)
        entry = dns.rrset.RRset(zone, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
        for key in dnskeys:
            if any(_matches(zone, key, anchor) for anchor in trusted):
                entry.add(key)
        if not len(entry):
            raise DiscoveryError(f"no DNSKEY of {excerpt(zone.to_text())} matches its DS "
                                 "records or trust anchor")
        try:
            dns.dnssec.validate(dnskeys, sigs, {zone: entry})
        except (dns.exception.DNSException, ValueError) as exc:  # ValidationFailure, mostly
            raise DiscoveryError(f"the DNSKEY set of {excerpt(zone.to_text())} does not "
                                 f"validate: {exc}") from None
        keep = min(ttl, float(dnskeys.ttl), float(MAX_KEY_TTL))
        self._keys[zone] = (now + keep, dnskeys)
        while len(self._keys) > MAX_ZONES:
            self._keys.popitem(last=False)
        return dnskeys

    async def _delegation(self, zone: dns.name.Name, depth: int) -> tuple[list[Any], float]:
        """The DS records of ``zone``, validated with its parent's keys."""
        if zone == dns.name.root:
            raise DiscoveryError("no trust anchor covers this name")
        response = await self.query(zone, dns.rdatatype.DS)
        ds, sigs = find(response, zone, dns.rdatatype.DS)
        if ds is None:
            raise DiscoveryError(f"zone {excerpt(zone.to_text())} has no DS record: no chain "
                                 "of trust to a trust anchor (an insecure delegation)")
        if sigs is None or any(sig.signer == zone for sig in sigs):
            raise DiscoveryError(f"the DS set of {excerpt(zone.to_text())} is not signed by "
                                 "its parent")
        ttl = await self.check(ds, sigs, depth + 1)
        return list(ds), ttl

    def forget(self) -> None:
        """Drop every validated DNSKEY set (after a trust anchor changed, say)."""
        self._keys.clear()


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():  # a failure nobody awaits any more is still seen
        task.exception()


def _matches(zone: dns.name.Name, key: Any, anchor: Any) -> bool:
    if anchor.rdtype == dns.rdatatype.DNSKEY:
        return bool(key == anchor)
    if key.algorithm != anchor.algorithm or dns.dnssec.key_id(key) != anchor.key_tag:
        return False
    try:
        return bool(dns.dnssec.make_ds(zone, key, anchor.digest_type) == anchor)
    except (dns.exception.UnsupportedAlgorithm, ValueError):
        return False


__all__ = ["Validator", "load_anchors", "find", "Anchors", "Query"]
