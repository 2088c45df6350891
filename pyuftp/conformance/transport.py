"""The transport checks, from the spec's transport appendix (its error-handling table, its
transmission section). Each sends a TestMessage (the message the protocol has for testing a
link), well formed or deliberately not, and looks at the HTTP status and at what comes back.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from ..exceptions import excerpt
from ..message.catalog import VERSIONS
from ..signing.crypto import SigningKey, generate_keypair
from ..signing.envelope import wrap
from .checks import FAIL, PASS, SKIP, TRANSPORT, Check, Outcome
from .runner import Link, Reply, new_id

__all__ = ["checks"]

ERRORS = TRANSPORT + " § Error handling"
TRANSMISSION = TRANSPORT + " § Transmission"
EXCHANGE = TRANSPORT + " § Message exchange logic"
DNS = TRANSPORT + " § DNS"


def _test_message(link: Link, version: str) -> tuple[bytes, dict[str, Any]]:
    return link.seal("TestMessage", link.payload("TestMessage", version))


def _said(reply: Reply) -> str:
    return f"HTTP {reply.status}: {excerpt(reply.text.strip(), 120)}"


def _status(reply: Reply, expected: int, why: str) -> Outcome:
    return Outcome(PASS if reply.status == expected else FAIL, f"HTTP {expected} ({why})",
                   f"HTTP {reply.status}", _said(reply))


def _fresh_key() -> SigningKey:
    return SigningKey(generate_keypair()[0])


def checks(version: str) -> list[Check]:
    """The transport checks, sending TestMessages of ``version``."""

    async def test_message_in(link: Link, version: str) -> Outcome:
        data, sent = _test_message(link, version)
        reply = await link.post(data)
        if reply.status != 200:
            return _status(reply, 200, "received")
        answer = await link.answer(sent["conversation_id"], "TestMessageResponse")
        if answer is None:
            return Outcome(FAIL, "HTTP 200, then a TestMessageResponse", "HTTP 200, no answer",
                           f"nothing in conversation {sent['conversation_id']} within "
                           f"{link.settings.answer_timeout:g} s")
        return Outcome(PASS, "HTTP 200, then a TestMessageResponse",
                       "HTTP 200, TestMessageResponse",
                       f"message_id {answer.payload.get('message_id')}")

    async def published_version(link: Link) -> Outcome:
        """What its ``_usef`` record says it implements, against what it accepts: a
        TestMessage in that version must be taken and answered."""
        lookup = link.settings.version_lookup
        if lookup is None:
            return Outcome(SKIP, "the version in _usef." + link.them.domain, "not looked up",
                           "no DNS look-up given (pyuftp conformance --dns IP:PORT)")
        try:
            published = await lookup(link.them.domain)
        except Exception as exc:  # noqa: BLE001 - a look-up failure is a finding, not a crash
            return Outcome(FAIL, "a _usef TXT record", "no answer", excerpt(exc, 160))
        if published is None:
            return Outcome(FAIL, "a _usef TXT record", "none", f"_usef.{link.them.domain}")
        if published not in VERSIONS:
            return Outcome(FAIL, f"one of {', '.join(VERSIONS)}", excerpt(published, 40),
                           "a version pyuftp cannot send, or not a UFTP version")
        outcome = await test_message_in(link, published)
        return Outcome(outcome.status, f"{published} (published) taken and answered",
                       outcome.got, outcome.excerpt)

    async def test_message(link: Link) -> Outcome:
        return await test_message_in(link, version)

    async def content_type(link: Link) -> Outcome:
        data, _ = _test_message(link, version)
        return _status(await link.post(data, content_type="application/json"), 400,
                       "Content-Type is not text/xml")

    async def charset(link: Link) -> Outcome:
        data, _ = _test_message(link, version)
        return _status(await link.post(data, content_type="text/xml; charset=iso-8859-1"), 400,
                       "the character set is not utf-8")

    async def content_length(link: Link) -> Outcome:
        data, _ = _test_message(link, version)
        return _status(await link.post(data, chunked=True), 411, "no Content-Length")

    async def oversize(link: Link) -> Outcome:
        data, _ = _test_message(link, version)
        # a valid message padded with white space after its end: only its size is wrong
        body = data + b" " * max(0, link.settings.oversize - len(data))
        return _status(await link.post(body), 413, "a body larger than the receiver takes")

    async def signature(link: Link) -> Outcome:
        payload = link.payload("TestMessage", version)
        data, _ = link.seal("TestMessage", payload, key=_fresh_key())  # not our key
        return _status(await link.post(data), 401, "the seal does not verify")

    async def unknown_sender(link: Link) -> Outcome:
        payload = link.payload("TestMessage", version)
        # .invalid never resolves (RFC 2606): no registry or DNS knows this party
        payload["sender_domain"] = f"unknown-{new_id()[:8]}.conformance.invalid"
        data, _ = link.seal("TestMessage", payload, key=_fresh_key())
        return _status(await link.post(data), 419, "the sender's key cannot be looked up")

    async def malformed(link: Link) -> Outcome:
        return _status(await link.post(b'<SignedMessage SenderDomain="'), 400,
                       "the body is not XML")

    async def unsealed_invalid(link: Link) -> Outcome:
        # a valid seal around a TestMessage that lacks every required attribute
        data = wrap(b"<TestMessage/>", link.key, link.us.domain, link.us.role)
        return _status(await link.post(data), 400, "the sealed XML breaks the schema")

    async def duplicate(link: Link) -> Outcome:
        data, sent = _test_message(link, version)
        first, second = await link.post(data), await link.post(data)
        expected = "HTTP 200 twice, then exactly one TestMessageResponse"
        if (first.status, second.status) != (200, 200):
            return Outcome(FAIL, expected, f"HTTP {first.status}, then {second.status}",
                           _said(second))
        conversation = sent["conversation_id"]
        if await link.answer(conversation, "TestMessageResponse") is None:
            return Outcome(FAIL, expected, "HTTP 200 twice, no answer")
        # a second answer would come about as fast as the first
        await link.answer(conversation, "_never_", link.settings.duplicate_grace)
        count = len(link.arrived(conversation, "TestMessageResponse"))
        return Outcome(PASS if count == 1 else FAIL, expected,
                       f"HTTP 200 twice, {count} TestMessageResponse(s)")

    async def redirect(link: Link) -> Outcome:
        data, sent = _test_message(link, version)
        reply = await link.post(data)
        expected = "a redirect that keeps the POST (307/308) leading to HTTP 200"
        if reply.status not in range(300, 400):
            return Outcome(SKIP, expected, f"HTTP {reply.status}: no redirect used")
        if reply.status not in (307, 308):
            return Outcome(FAIL, expected, f"HTTP {reply.status}",
                           "only 307 and 308 tell a client to repeat the POST")
        target = urljoin(link.url, reply.headers.get("Location", ""))
        if urlsplit(target).hostname != urlsplit(link.url).hostname:
            return Outcome(SKIP, expected, f"HTTP {reply.status} to another host",
                           "the runner posts only to the host it was given")
        moved = await link.post(data, url=target)
        if moved.status != 200:
            return _status(moved, 200, "the redirect's target takes it")
        answered = await link.answer(sent["conversation_id"], "TestMessageResponse")
        return Outcome(PASS if answered else FAIL, expected,
                       "HTTP 200" + ("" if answered else ", no answer"),
                       f"via {excerpt(target, 120)}")

    made: list[tuple[str, str, str, Callable[[Link], Any], str, str, int]] = [
        ("transport.test_message", EXCHANGE,
         "a valid signed TestMessage is taken (HTTP 200) and answered by a TestMessageResponse",
         test_message, "a valid TestMessage", "must", 1),
        ("transport.content_type", ERRORS, "a Content-Type other than text/xml is refused: 400",
         content_type, "a valid TestMessage as application/json", "must", 1),
        ("transport.charset", ERRORS, "a character set other than utf-8 is refused: 400",
         charset, "a valid TestMessage as text/xml; charset=iso-8859-1", "must", 1),
        ("transport.content_length", ERRORS, "a request without Content-Length is refused: 411",
         content_length, "a valid TestMessage, chunked (no Content-Length)", "must", 1),
        ("transport.oversize", TRANSMISSION,
         "a body larger than the receiver takes is refused: 413 (the spec leaves the limit "
         "open)", oversize, "a TestMessage padded to the --oversize bytes", "should", 1),
        ("transport.signature", ERRORS, "a seal that does not verify is refused: 401",
         signature, "a TestMessage sealed with a key that is not ours", "must", 1),
        ("transport.unknown_sender", ERRORS,
         "a sender whose key cannot be looked up is refused: 419", unknown_sender,
         "a TestMessage from an unknown domain under .invalid", "must", 1),
        ("transport.malformed_xml", ERRORS, "a body that is not XML is refused: 400",
         malformed, "a truncated SignedMessage", "must", 1),
        ("transport.unsealed_invalid", ERRORS,
         "a sealed message that breaks the schema is refused: 400", unsealed_invalid,
         "a valid seal around <TestMessage/> without attributes", "must", 1),
        ("transport.duplicate", EXCHANGE,
         "the same message twice is taken twice (HTTP 200) and answered once", duplicate,
         "one valid TestMessage, twice", "must", 2),
        ("version.published", DNS,
         "the version its _usef TXT record names is one it takes and answers; skipped without "
         "--dns", published_version, "a valid TestMessage in the published version", "should",
         1),
        ("transport.redirect", TRANSMISSION,
         "a redirect keeps the POST (307/308); skipped when no redirect is used", redirect,
         "a valid TestMessage (and again to a redirect's target on the same host)",
         "should", 2),
    ]
    return [Check(id_, section, text, run, sends, level, frozenset(), cost)
            for id_, section, text, run, sends, level, cost in made]
