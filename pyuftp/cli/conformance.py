"""``pyuftp conformance``: check another party's endpoint (or your own) against the spec.

    pyuftp conformance --as AGR --domain agr.example.com --key agr.keys \\
        --them dso.example.com --role DSO --their-key dso.pub --listen 0.0.0.0:8443

See docs/conformance.rst. Exit status 0 only when every selected check passed (a skipped
check does not fail the run), 1 when one failed, 2 for a usage error.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import (BAD, OK, Commands, Usage, add_command, add_json, print_json, private_key,
                      public_key, role)

DEFAULT_PATH = "/shapeshifter/api/v3/message"


def _patterns(values: list[str] | None) -> list[str]:
    return [p.strip() for value in values or () for p in value.split(",") if p.strip()]


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: give HOST:PORT, e.g. 127.0.0.1:8443")
    return host, int(port)


def _checks(args: argparse.Namespace) -> list[Any]:
    from ..conformance.checks import select
    from ..conformance.suite import registry
    from ..message.catalog import spec

    versions = tuple(dict.fromkeys(spec(v).version for v in args.version or ("3.1.0", "3.0.0")))
    try:
        return select(registry(getattr(args, "as"), args.role, versions),
                      _patterns(args.only), _patterns(args.skip), args.level)
    except ValueError as exc:
        raise Usage(str(exc)) from None


def _version_lookup(args: argparse.Namespace) -> Any:
    """``--dns``: the look-up of what the other party publishes in ``_usef`` (validated up to
    ``--trust-anchor``, or trusting the resolver's AD bit); None without it."""
    if not args.dns:
        return None
    from ..discovery.dns import DnsDiscovery

    anchors = None
    if args.trust_anchor:
        with open(args.trust_anchor, encoding="utf-8") as file:
            anchors = file.read()
    try:
        return DnsDiscovery(args.dns, trust_anchors=anchors, trust_ad=anchors is None).version
    except ValueError as exc:
        raise Usage(f"--dns {args.dns}: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from ..conformance import report
    from ..conformance.runner import Party, Runner, Settings

    checks = _checks(args)
    if args.dry_run or args.list:
        print(report.dry_run(checks) if args.dry_run else
              "\n".join(f"{c.id}  {c.explanation}" for c in checks))
        return OK
    if not args.key or not args.their_key:
        raise Usage("--key and --their-key are needed to run the checks (not for --dry-run)")
    us, them = Party(args.domain, getattr(args, "as")), Party(args.them, args.role)
    url = args.url or f"https://{args.them}{DEFAULT_PATH}"
    settings = Settings(answer_timeout=args.timeout, rate=args.rate,
                        max_messages=args.max_messages, oversize=args.oversize,
                        version_lookup=_version_lookup(args))
    host, port = args.listen

    def progress(result: Any, done: int, total: int) -> None:
        print(f"[{done}/{total}] {result.check.id}: {result.outcome.status}",
              file=sys.stderr, flush=True)

    async def go() -> tuple[list[Any], Runner]:
        their_key = public_key(args.their_key).public_key
        runner = Runner(us, private_key(args.key), them, url, their_key,
                        host=host, port=port, settings=settings, progress=progress)
        async with runner:
            print(f"answers are expected at {runner.service_url}", file=sys.stderr)
            return await runner.run(checks), runner

    results, runner = asyncio.run(go())
    about = {"us": f"{us.domain} ({us.role})", "them": f"{them.domain} ({them.role})",
             "url": url, "messages sent": runner.link.sent if runner.link else 0,
             "seconds": round(runner.wall, 2)}
    if args.junit:
        with open(args.junit, "wb") as binary:
            binary.write(report.junit(results))
    if args.html:
        with open(args.html, "w", encoding="utf-8") as text:
            text.write(report.html_page(results, about))
    if args.json:
        print_json(report.as_json(results, about))
    else:
        print(report.table(results))
    return OK if report.passed(results) else BAD


def add_conformance(commands: Commands[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands, "conformance", "check another party's endpoint against the UFTP spec",
        "Run conformance checks against another party's live endpoint: transport checks "
        "(status codes of the transport appendix, duplicates, redirects), and per message "
        "type the pair exchanges a valid message and one that breaks each applicable business "
        "rule, in each version. A temporary service of your role receives their answers: it "
        "must be reachable by them (--listen). Bounded: at most --max-messages, at most --rate "
        "a second; every id starts with 5e1f7e57. Exit status 0 only when every selected "
        "check passed.", _run)
    parser.add_argument("--as", required=True, type=role, metavar="ROLE", help="your role")
    parser.add_argument("--domain", required=True, help="your domain")
    parser.add_argument("--key", metavar="KEYFILE", help="your keys file (to sign)")
    parser.add_argument("--them", required=True, metavar="DOMAIN", help="their domain")
    parser.add_argument("--role", required=True, type=role, help="their role")
    parser.add_argument("--their-key", metavar="KEY",
                        help="their public key: a keys file, base64 or cs1. (to verify answers)")
    parser.add_argument("--url", help=f"their endpoint (default https://DOMAIN{DEFAULT_PATH})")
    parser.add_argument("--listen", type=_listen, default=("127.0.0.1", 0), metavar="HOST:PORT",
                        help="where your temporary service listens (default 127.0.0.1, any port)")
    parser.add_argument("--version", action="append", choices=("3.1.0", "3.0.0"),
                        help="a UFTP version to check (repeat; default both)")
    parser.add_argument("--level", choices=("must", "should"), default="should",
                        help="'must': only what the spec requires (default: all)")
    parser.add_argument("--only", action="append", metavar="IDS",
                        help="check ids or patterns to run (comma-separated; e.g. transport.*)")
    parser.add_argument("--skip", action="append", metavar="IDS", help="check ids to leave out")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would be sent; send nothing")
    parser.add_argument("--list", action="store_true", help="list the selected checks")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for an answer (default 10)")
    parser.add_argument("--rate", type=float, default=5.0, help="messages a second, at most (5)")
    parser.add_argument("--max-messages", type=int, default=200,
                        help="messages in the run, at most (200)")
    parser.add_argument("--oversize", type=int, default=8 * 1024 * 1024,
                        help="bytes of the oversized body (default 8 MiB)")
    parser.add_argument("--dns", metavar="IP:PORT",
                        help="a resolver to read their _usef version record with (the check "
                             "version.published; skipped without it)")
    parser.add_argument("--trust-anchor", metavar="FILE",
                        help="with --dns: validate DNSSEC up to the DS/DNSKEY lines in FILE "
                             "(default: trust the resolver's AD bit)")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML there (for CI)")
    parser.add_argument("--html", metavar="FILE", help="write an HTML report there")
    add_json(parser, "the report")
