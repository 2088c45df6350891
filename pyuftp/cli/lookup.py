"""``pyuftp lookup DOMAIN ROLE``: what a party publishes in DNS, and whether DNSSEC
authenticated it.

Exit status 0: keys found and authenticated; 1: nothing found, not authenticated, or the
look-up failed; 2: a usage error (a bad resolver address or trust-anchor file). Without
``--trust-anchor`` the answers are trusted when the resolver sets the AD bit (a validating
resolver on a trusted network); ``--insecure`` shows unauthenticated answers too (and says
so).
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from ..discovery.records import DiscoveryError, Participant, key_name


def add_lookup_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``lookup`` on the sub-command parsers of ``python -m pyuftp``."""
    parser = commands.add_parser(
        "lookup", help="show what a party publishes in DNS (keys, endpoint, version)",
        description="Look up the UFTP DNS records of DOMAIN for ROLE (_usef, _role._usef, "
                    "_http._role._usef) and say whether DNSSEC authenticated them. Exits 0 "
                    "when keys were found and authenticated, 1 otherwise, 2 on usage errors.")
    parser.add_argument("domain", help="the party's domain, e.g. agr.example.com")
    parser.add_argument("role", type=str.upper, choices=("AGR", "CRO", "DSO"),
                        help="AGR, CRO or DSO")
    parser.add_argument("--resolver", metavar="IP:PORT",
                        help="the DNS server to ask (default: the system's first resolver)")
    parser.add_argument("--trust-anchor", metavar="FILE",
                        help="validate DNSSEC ourselves up to the DS/DNSKEY lines in FILE "
                             "(default: trust the resolver's AD bit)")
    parser.add_argument("--insecure", action="store_true",
                        help="show unauthenticated answers too (never trust them)")
    parser.set_defaults(run=run_lookup)


def run_lookup(args: argparse.Namespace) -> int:
    """The ``lookup`` command."""
    from ..discovery.dns import DnsDiscovery  # dnspython only when the command runs

    try:
        anchors = None
        if args.trust_anchor:
            with open(args.trust_anchor, encoding="utf-8") as file:
                anchors = file.read()
        discovery = DnsDiscovery(args.resolver, trust_anchors=anchors,
                                 trust_ad=anchors is None, insecure_skip_dnssec=args.insecure)
    except (OSError, ValueError, DiscoveryError) as exc:
        print(f"pyuftp lookup: {exc}", file=sys.stderr)
        return 2
    try:
        found = asyncio.run(discovery.lookup(args.domain, args.role))
    except DiscoveryError as exc:
        print(f"look-up failed ({'temporary' if exc.temporary else 'final'}): {exc}")
        return 1
    print(describe(found, key_name(args.domain, args.role),
                   "built-in validation" if anchors else "the resolver's AD bit"))
    return 0 if found.keys and found.authenticated else 1


def describe(found: Participant, name: str, method: str) -> str:
    """What was found, for people."""
    lines = [f"domain:   {found.domain}", f"role:     {found.role}",
             f"version:  {found.version or '(no _usef TXT record)'}"]
    if found.keys:
        lines += [f"key:      {key}" for key in found.keys]
        if len(found.keys) > 1:
            lines.append("          (two keys: a key rotation is under way)")
    else:
        lines.append(f"key:      (none published at {name})")
    lines.append(f"endpoint: {found.endpoint or '(no _http CNAME record)'}")
    lines.append(f"DNSSEC:   {'authenticated' if found.authenticated else 'NOT AUTHENTICATED'}"
                 f" ({method})")
    return "\n".join(lines)


__all__ = ["add_lookup_command", "run_lookup", "describe"]
