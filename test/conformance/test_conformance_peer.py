"""The conformance suite against the peer library shapeshifter-uftp 2.4.0 serving on
127.0.0.1: the report lists that peer's real deviations from the spec as failures, and this
test asserts the exact list, so that a change on either side shows.

The peer's services are started with the helpers of ``test/face/test_interop.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "face"))
import test_interop as interop  # noqa: E402 - skips this module when the peer is missing

from conftest import run  # noqa: E402
from pyuftp.conformance.checks import FAIL, select  # noqa: E402
from pyuftp.conformance.suite import registry  # noqa: E402
from pyuftp.conformance.runner import Party, Runner, Settings  # noqa: E402
from pyuftp.discovery import Directory  # noqa: E402
from pyuftp.signing.crypto import generate_keypair  # noqa: E402

pytestmark = pytest.mark.slow  # a uvicorn server in a thread, answers waited for

SETTINGS = Settings(answer_timeout=2.0, rate=200.0, duplicate_grace=0.5, offer_timeout=1.0)


def check_peer(us: str, them: str, version: str):
    directory = Directory()
    interop.CURRENT.directory = directory
    service, _private, public = interop.pooled_peer_service(them, version)
    directory.add(interop.DOMAIN[them], them, public, service.url)
    our_private, our_public = generate_keypair()

    async def go():
        runner = Runner(Party(interop.DOMAIN[us], us), our_private,
                        Party(interop.DOMAIN[them], them), service.url, public,
                        version=version, settings=SETTINGS)
        async with runner:
            directory.add(interop.DOMAIN[us], us, our_public, runner.service_url)
            checks = select(registry(us, them, (version,)))
            # The peer handles requests in threads and sometimes answers a valid message 400
            # while it handles others at once: the transport checks go one at a time, so the
            # list below is the same on every run; the message checks wait for answers that
            # never come, side by side.
            transport = [c for c in checks if c.id.startswith("transport.")]
            rest = [c for c in checks if not c.id.startswith("transport.")]
            return (await runner.run(transport, concurrency=1)
                    + await runner.run(rest, concurrency=8))

    return run(go(), 120)


@pytest.fixture(scope="module", autouse=True)
def stop_peers():
    yield
    for service, _, _ in interop.PEER_POOL.values():
        interop.stop_peer_service(service)
    interop.PEER_POOL.clear()


#: what shapeshifter-uftp 2.4.0 answers where the transport appendix says otherwise, whatever
#: the role pair and version: it takes any Content-Type and character set, bodies without a
#: Content-Length, of any size, and sealed XML that breaks the schema (HTTP 200 each); an
#: unknown sender makes it fail (500, not 419); it answers a duplicate twice.
TRANSPORT_DEVIATIONS = {
    "transport.content_type": "HTTP 200",
    "transport.charset": "HTTP 200",
    "transport.content_length": "HTTP 200",
    "transport.oversize": "HTTP 200",
    "transport.unknown_sender": "HTTP 500",
    "transport.unsealed_invalid": "HTTP 200",
    "transport.duplicate": "HTTP 200 twice, 2 TestMessageResponse(s)",
}
NO_ANSWER = "HTTP 200, no answer"  # it sends no ...Response on its own: the user's code must


def deviations(us: str, them: str, version: str) -> dict[str, str]:
    failed = {}
    for r in check_peer(us, them, version):
        if r.outcome.status == FAIL:
            failed[r.check.id] = r.outcome.got
            assert r.outcome.expected and r.outcome.got  # a clear text on both sides
    return failed


@pytest.mark.parametrize("version", ["3.1.0", "3.0.0"])
def test_peer_deviations_agr_to_dso(version):
    v = "@" + version
    assert deviations("AGR", "DSO", version) == {
        **TRANSPORT_DEVIATIONS,
        # its TestMessageResponse carries a Result, which the schemas do not allow
        "message.TestMessage" + v: "TestMessageResponse Accepted",
        "message.D-Prognosis" + v: NO_ANSWER,
        "message.FlexOffer" + v: NO_ANSWER,
        "message.FlexOfferRevocation" + v: NO_ANSWER,
        "message.Metering" + v: NO_ANSWER,
        "rule.expiration.in_future.FlexOffer" + v: NO_ANSWER,
        "rule.isp.no_overlap.D-Prognosis" + v: NO_ANSWER,
        "rule.isp.no_overlap.FlexOffer" + v: NO_ANSWER,
        "rule.isp.within_period.D-Prognosis" + v: NO_ANSWER,
        "rule.isp.within_period.FlexOffer" + v: NO_ANSWER,
        "rule.metering.unit.Metering" + v: NO_ANSWER,
        "rule.period.today_or_later.D-Prognosis" + v: NO_ANSWER,
        "rule.period.today_or_later.FlexOffer" + v: NO_ANSWER,
    }


def test_peer_deviations_cro_to_dso():
    """A CRO sends a DSO only TestMessages: the transport deviations and the schema one."""
    assert deviations("CRO", "DSO", "3.1.0") == {
        **TRANSPORT_DEVIATIONS, "message.TestMessage@3.1.0": "TestMessageResponse Accepted"}


def test_peer_schema_deviation_is_explained():
    results = check_peer("DSO", "AGR", "3.1.0")
    outcome = {r.check.id: r.outcome for r in results}["message.TestMessage@3.1.0"]
    assert outcome.excerpt == (
        "not valid against the 3.1.0 schema: TestMessageResponse: line 2: Element "
        "'TestMessageResponse', attribute 'Result': The attribute 'Result' is not allowed.")
    assert {r.check.id for r in results if r.outcome.status != FAIL} == {
        "transport.test_message", "transport.signature", "transport.malformed_xml",
        "transport.redirect", "version.published"}
