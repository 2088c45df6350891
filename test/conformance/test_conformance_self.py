"""The conformance suite against pyuftp's own services, over real sockets on 127.0.0.1: every
check passes for every role pair, in both versions; a service with a fault fails the check
that looks for it; the command line writes its reports and says 1 when a check fails."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from conftest import METADATA, run
from pyuftp.message.examples import example
from pyuftp.conformance.checks import FAIL, PASS, SKIP, select
from pyuftp.conformance.suite import registry
from pyuftp.conformance.report import as_json, html_page, junit, passed, table
from pyuftp.conformance.runner import Party, Runner, Settings
from pyuftp.discovery import Directory
from pyuftp.server.service import SERVICES
from pyuftp.signing.crypto import generate_keypair
from pyuftp.signing.keyfile import format_keys

RULES = "all"  # the services under test keep every business rule, as in production
PAIRS = [("AGR", "DSO"), ("DSO", "AGR"), ("AGR", "CRO"), ("CRO", "AGR"), ("DSO", "CRO"),
         ("CRO", "DSO")]
FAST = Settings(answer_timeout=5.0, rate=500.0, duplicate_grace=0.3)


def domain(role: str) -> str:
    return f"{role.lower()}.conformance.test"


def portfolio(query: str):
    """A CRO's handler for a portfolio query: the example answer's content (a CRO without
    one cannot answer: the response requires content; see the report of #22)."""
    answer = example(query + "Response")
    fields = {k: v for k, v in answer.items()
              if k not in METADATA and not k.endswith("_message_id") and k != "result"}

    async def handle(payload):
        return fields
    return handle


async def check_service(us: str, them: str, only=(), skip=(), settings=FAST, **service_options):
    """Run the selected checks of ``us`` against a pyuftp service of role ``them``."""
    directory = Directory()
    target_private, target_public = generate_keypair()
    our_private, our_public = generate_keypair()
    target = SERVICES[them](domain(them), target_private, directory.key, directory.endpoint,
                            port=0, **service_options)
    for query in ("AGRPortfolioQuery", "DSOPortfolioQuery"):
        if query in target.accepted_types:
            target.add_handler(query, portfolio(query))
    await target.start()
    try:
        directory.add(domain(them), them, target_public, target.url)
        runner = Runner(Party(domain(us), us), our_private, Party(domain(them), them),
                        target.url, target_public, settings=settings)
        async with runner:
            directory.add(domain(us), us, our_public, runner.service_url)
            checks = select(registry(us, them, ("3.1.0", "3.0.0")), only, skip)
            results = await runner.run(checks)
        return results, runner, target
    finally:
        await target.stop()


@pytest.mark.parametrize("us,them", PAIRS)
def test_every_check_passes_against_pyuftp(us, them):
    started = time.monotonic()
    results, runner, target = run(check_service(us, them), 60)
    assert passed(results), table(results)
    statuses = {r.check.id: r.outcome.status for r in results}
    assert statuses.pop("transport.redirect") == SKIP  # pyuftp serves without redirects
    assert statuses.pop("version.published") == SKIP  # no DNS here: test_version_published
    assert set(statuses.values()) == {PASS}
    ids = set(statuses)
    assert {"transport.test_message", "transport.unknown_sender", "transport.duplicate",
            "message.TestMessage@3.1.0", "message.TestMessage@3.0.0"} <= ids
    if (us, them) == ("AGR", "DSO"):
        assert {"message.FlexOffer@3.0.0", "rule.expiration.in_future.FlexOffer@3.1.0",
                "rule.metering.unit.Metering@3.1.0"} <= ids
    # bounded: no more messages than the checks' costs allow, all with our ids
    assert runner.link.sent <= sum(r.check.cost for r in results)
    assert time.monotonic() - started < 30
    print(f"{us}->{them}: {len(results)} checks, {runner.wall:.2f} s, "
          f"{1000 * runner.cpu / len(results):.1f} ms CPU per check")


def test_a_fault_fails_its_check():
    """A service that takes any Content-Type ... is not a pyuftp service; a service whose
    body limit is tiny refuses even the valid message: the checks that send one fail."""
    results, _, _ = run(check_service("AGR", "DSO", only=["transport.test_message",
                                                          "transport.oversize"],
                                      max_body=200), 30)
    outcome = {r.check.id: r.outcome for r in results}
    assert outcome["transport.test_message"].status == FAIL
    assert outcome["transport.test_message"].got == "HTTP 413"
    assert outcome["transport.oversize"].status == PASS
    assert not passed(results)


def test_budget_bounds_the_run():
    settings = Settings(answer_timeout=2.0, rate=500.0, max_messages=3)
    results, runner, _ = run(check_service("AGR", "DSO", only=["transport.*"],
                                           settings=settings), 30)
    assert runner.link.sent == 3
    spent = [r for r in results if r.outcome.got == "not run"]
    assert spent and all(r.outcome.status == FAIL for r in spent)
    assert "budget of 3 messages" in spent[0].outcome.excerpt


def test_reports():
    results, _, _ = run(check_service("DSO", "AGR", only=["transport.*", "message.Flex*"],
                                      settings=FAST), 30)
    about = {"us": "dso", "them": "agr"}
    data = json.loads(json.dumps(as_json(results, about)))
    assert data["passed"] is True and len(data["checks"]) == len(results)
    assert {"id", "section", "explanation", "status", "expected", "got"} <= set(data["checks"][0])
    suite = ElementTree.fromstring(junit(results))
    assert suite.get("tests") == str(len(results)) and suite.get("failures") == "0"
    assert suite.get("skipped") == "1"  # the redirect check
    page = html_page(results, about)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    assert "transport.duplicate" in page


def test_select():
    checks = registry("AGR", "CRO", ("3.1.0",))
    assert [c.id for c in select(checks, only=["message."])] == [
        "message.AGRPortfolioUpdate@3.1.0", "message.AGRPortfolioQuery@3.1.0",
        "message.TestMessage@3.1.0"]
    assert "transport.oversize" not in [c.id for c in select(checks, level="must")]
    with pytest.raises(ValueError, match="--skip 'nope' matches no check"):
        select(checks, skip=["nope"])
    with pytest.raises(ValueError, match="role pair"):
        registry("AGR", "AGR", ("3.1.0",))
    assert all(c.id and c.section and c.explanation for c in checks)
    assert len({c.id for c in checks}) == len(checks)


@pytest.mark.slow
def test_command_line(tmp_path: Path):
    """``pyuftp conformance`` in a process of its own against a service in this one."""
    async def scenario():
        directory = Directory()
        target_private, target_public = generate_keypair()
        our_private, our_public = generate_keypair()
        (tmp_path / "agr.keys").write_text(format_keys(our_private))
        (tmp_path / "dso.pub").write_text(f"public key: {target_public}\n")
        target = SERVICES["DSO"](domain("DSO"), target_private, directory.key,
                                 directory.endpoint, port=0)
        async with target:
            directory.add(domain("DSO"), "DSO", target_public, target.url)
            # the runner's service listens on a port we choose, so the target can find it
            import socket
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            directory.add(domain("AGR"), "AGR", our_public,
                          f"http://127.0.0.1:{port}/shapeshifter/api/v3/message")
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pyuftp", "conformance", "--as", "AGR",
                "--domain", domain("AGR"), "--key", str(tmp_path / "agr.keys"),
                "--them", domain("DSO"), "--role", "DSO",
                "--their-key", str(tmp_path / "dso.pub"), "--url", target.url,
                "--listen", f"127.0.0.1:{port}", "--rate", "200", "--timeout", "5",
                "--only", "transport.,message.TestMessage*", "--skip", "transport.oversize",
                "--junit", str(tmp_path / "report.xml"), "--html", str(tmp_path / "r.html"),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
            out, err = await asyncio.wait_for(process.communicate(), 60)
            return process.returncode, out.decode(), err.decode()

    code, out, err = run(scenario(), 90)
    assert code == 0, out + err
    assert "transport.unknown_sender" in out and "PASS" in out
    assert "[1/" in err  # progress
    assert "message.TestMessage@3.0.0" in (tmp_path / "report.xml").read_text()
    assert "UFTP conformance report" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("status,expected", [(307, PASS), (308, PASS), (302, FAIL)])
def test_redirects(status, expected):
    """An endpoint that redirects: 307 and 308 keep the POST (the check follows once, on the
    same host, and wants 200); 302 would let a client turn it into a GET."""
    from aiohttp import web

    async def scenario():
        directory = Directory()
        target_private, target_public = generate_keypair()
        our_private, our_public = generate_keypair()
        target = SERVICES["DSO"](domain("DSO"), target_private, directory.key,
                                 directory.endpoint, port=0)
        app = web.Application()

        async def moved(request):
            return web.Response(status=status, headers={"Location": target.url})
        app.router.add_post("/old", moved)
        runner_app = web.AppRunner(app)
        await runner_app.setup()
        site = web.TCPSite(runner_app, "127.0.0.1", 0)
        async with target:
            await site.start()
            try:
                port = runner_app.addresses[0][1]
                directory.add(domain("DSO"), "DSO", target_public, target.url)
                runner = Runner(Party(domain("AGR"), "AGR"), our_private,
                                Party(domain("DSO"), "DSO"), f"http://127.0.0.1:{port}/old",
                                target_public, settings=FAST)
                async with runner:
                    directory.add(domain("AGR"), "AGR", our_public, runner.service_url)
                    checks = select(registry("AGR", "DSO", ("3.1.0",)), ["transport.redirect"])
                    return await runner.run(checks)
            finally:
                await runner_app.cleanup()

    [result] = run(scenario(), 30)
    assert result.outcome.status == expected, result.outcome
    assert result.outcome.got == ("HTTP 200" if expected == PASS else f"HTTP {status}")


def test_dry_run_sends_nothing(capsys):
    """--dry-run needs no key and no endpoint: it lists each check and what it would send."""
    from pyuftp.cli import main

    code = main(["conformance", "--as", "DSO", "--domain", "dso.test", "--them", "agr.test",
                 "--role", "AGR", "--url", "http://127.0.0.1:9/nothing", "--dry-run",
                 "--version", "3.0.0", "--only", "message.,transport.duplicate"])
    out = capsys.readouterr().out
    assert code == 0
    assert "transport.duplicate  [must]  sends: one valid TestMessage, twice" in out
    assert "message.FlexOrder@3.0.0" in out and "@3.1.0" not in out
    assert out.rstrip().endswith("6 checks, at most 8 messages")
    assert main(["conformance", "--as", "DSO", "--domain", "d", "--them", "a", "--role",
                 "AGR"]) == 2  # no keys: a usage error, before anything is sent


@pytest.mark.parametrize("published,status", [("3.1.0", PASS), ("3.0.0", PASS),
                                              ("2015", FAIL), (None, FAIL)])
def test_version_published(published, status):
    """What a party publishes in its _usef TXT record, read from a real DNS server on
    127.0.0.1 (a zone signed at test time, validated up to its trust anchor), against what
    it takes: a TestMessage in that version must be taken and answered."""
    from dns_servers import AuthServer, ZoneKey, build_zone
    from pyuftp.discovery.dns import DnsDiscovery

    key = ZoneKey("conformance.test.")
    records = [] if published is None else [f'_usef.dso 60 IN TXT "{published}"']
    server = AuthServer([build_zone("conformance.test.", records, key)]).start()
    try:
        dns = DnsDiscovery(f"127.0.0.1:{server.port}", trust_anchors=key.anchor())
        settings = Settings(answer_timeout=5.0, rate=500.0, version_lookup=dns.version)
        results, _, _ = run(check_service("AGR", "DSO", only=["version.published"],
                                          settings=settings), 30)
    finally:
        server.stop()
    [result] = results
    assert result.outcome.status == status, result.outcome
    if published == "2015":
        assert result.outcome.got == "2015"
