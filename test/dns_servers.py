"""Real DNS for the tests: signed zones made at test time, served over UDP and TCP on
127.0.0.1 by a small authoritative server (dnspython messages, asyncio in a thread).

``build_zone(origin, records, key)`` makes a zone from zone-file lines and signs it with an
Ed25519 key made for the test (``dns.dnssec.sign_zone``: DNSKEY, RRSIG and NSEC records);
``AuthServer`` answers from a set of such zones as an authoritative server does: the RRset
asked for with its RRSIGs (the DO bit set), else the name's CNAME (not chased), NXDOMAIN or
NODATA with the SOA, REFUSED outside its zones; DS queries at a zone cut from the parent.
It counts queries, can delay each answer and records the most in flight at once.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ed25519

SOA = "@ 60 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 30"


class ZoneKey:
    """An Ed25519 key-signing key for one zone, and its DS and DNSKEY."""

    def __init__(self, origin: str) -> None:
        self.origin = dns.name.from_text(origin)
        self.private = ed25519.Ed25519PrivateKey.generate()
        self.dnskey = dns.dnssec.make_dnskey(self.private.public_key(), "ED25519", flags=257)
        self.ds = dns.dnssec.make_ds(self.origin, self.dnskey, "SHA256")

    def anchor(self) -> str:
        """The trust-anchor line for this zone (zone-file DS form)."""
        return f"{self.origin.to_text()} 3600 IN DS {self.ds.to_text()}"


def build_zone(origin: str, records: Iterable[str], key: ZoneKey | None,
               expired: bool = False) -> dns.zone.Zone:
    """A zone from ``records`` (zone-file lines relative to ``origin``), signed with ``key``
    (None: unsigned); ``expired``: with signatures that expired an hour ago."""
    text = "\n".join([SOA, "@ 60 IN NS ns.test.", *records]) + "\n"
    zone = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
    if key is not None:
        with zone.writer() as txn:
            if expired:
                now = int(time.time())
                dns.dnssec.sign_zone(zone, txn, keys=[(key.private, key.dnskey)],
                                     inception=now - 86400, expiration=now - 3600)
            else:
                dns.dnssec.sign_zone(zone, txn, keys=[(key.private, key.dnskey)],
                                     lifetime=86400)
    return zone


def corrupt(zone: dns.zone.Zone, name: str, rdtype: str, new_rdata: str) -> None:
    """Replace the data of ``name``/``rdtype`` but keep its old RRSIG: a bogus answer."""
    owner = dns.name.from_text(name)
    with zone.writer() as txn:
        old = txn.get(owner, rdtype)
        rrset = dns.rrset.from_text(owner, old.ttl, "IN", rdtype, new_rdata)
        txn.replace(owner, rrset)


class AuthServer:
    """An authoritative DNS server for ``zones`` on 127.0.0.1 (one port, UDP and TCP)."""

    def __init__(self, zones: list[dns.zone.Zone], delay: float = 0.0) -> None:
        self.zones, self.delay = zones, delay
        #: Set the AD bit on answers, as a validating resolver does (for the trust_ad mode).
        self.set_ad = False
        self.queries: list[tuple[str, str]] = []
        self.in_flight = self.max_in_flight = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._ready = threading.Event()

    # --- answering ---------------------------------------------------------------------------

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | (dns.flags.AD if self.set_ad else 0)
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        self.queries.append((qname.to_text(), dns.rdatatype.to_text(qtype)))
        zone = self._zone_for(qname, qtype)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        signed = bool(query.ednsflags & dns.flags.DO)
        node = zone.get_node(qname)
        if node is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            self._add(response.authority, zone, zone.origin, dns.rdatatype.SOA, signed)
            return response
        for rdtype in (qtype, dns.rdatatype.CNAME):
            if node.get_rdataset(dns.rdataclass.IN, rdtype) is not None:
                self._add(response.answer, zone, qname, rdtype, signed)
                return response
        self._add(response.authority, zone, zone.origin, dns.rdatatype.SOA, signed)
        return response

    def _zone_for(self, qname: dns.name.Name, qtype: int) -> dns.zone.Zone | None:
        best = None
        for zone in self.zones:
            origin = zone.origin
            assert origin is not None
            if not qname.is_subdomain(origin):
                continue
            if qtype == dns.rdatatype.DS and qname == origin:
                continue  # a DS lives in the parent zone
            if best is None or len(origin) > len(best.origin):
                best = zone
        return best

    @staticmethod
    def _add(section: list[dns.rrset.RRset], zone: dns.zone.Zone, name: dns.name.Name,
             rdtype: int, signed: bool) -> None:
        node = zone.get_node(name)
        rdataset = node.get_rdataset(dns.rdataclass.IN, rdtype)
        section.append(dns.rrset.RRset(name, dns.rdataclass.IN, rdtype))
        section[-1].update(rdataset)
        section[-1].ttl = rdataset.ttl
        sigs = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rdtype)
        if signed and sigs is not None:
            rrsig = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.RRSIG, rdtype)
            rrsig.update(sigs)
            rrsig.ttl = sigs.ttl
            section.append(rrsig)

    async def _respond(self, wire: bytes) -> bytes | None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            query = dns.message.from_wire(wire)
            return self.answer(query).to_wire(max_size=65535)
        except Exception:  # a malformed query gets no answer, as from a real server
            return None
        finally:
            self.in_flight -= 1

    # --- serving -----------------------------------------------------------------------------

    def start(self) -> AuthServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    async def _serve(self) -> None:
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                async def reply() -> None:
                    wire = await server._respond(data)
                    if wire is not None:
                        if len(wire) > 1232:  # too big for UDP: truncated, ask over TCP
                            query = dns.message.from_wire(data)
                            short = dns.message.make_response(query)
                            short.flags |= dns.flags.TC
                            wire = short.to_wire()
                        self.transport.sendto(wire, addr)  # type: ignore[attr-defined]
                asyncio.ensure_future(reply())

        async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                size = int.from_bytes(await reader.readexactly(2), "big")
                wire = await server._respond(await reader.readexactly(size))
                if wire is not None:
                    writer.write(len(wire).to_bytes(2, "big") + wire)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self._tcp = await asyncio.start_server(tcp, "127.0.0.1", 0)
        self.port = self._tcp.sockets[0].getsockname()[1]
        self._udp, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Udp, local_addr=("127.0.0.1", self.port))

    def stop(self) -> None:
        async def close() -> None:
            self._udp.close()
            self._tcp.close()
            await self._tcp.wait_closed()
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def count(self, name: str, rdtype: str | None = None) -> int:
        """How many queries for ``name`` (and ``rdtype``) arrived."""
        want = dns.name.from_text(name).to_text()
        return sum(1 for n, t in self.queries if n == want and rdtype in (None, t))
