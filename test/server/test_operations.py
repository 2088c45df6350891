"""Operating a service (#21): GET /metrics scraped after known messages matches what was
sent; GET /health is ready only with a reachable store and a running outbox; log lines about
a message carry its fields; outbox_summary of the memory and SQLite stores."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import pyuftp
from pyuftp.discovery import Directory
from pyuftp.logs import JsonFormatter
from pyuftp.rules import Rules
from pyuftp.server.service import ShapeshifterAgrService, ShapeshifterDsoService
from pyuftp.signing.envelope import wrap
from pyuftp.store import MemoryStore, OutboxItem, SQLiteStore, open_store

from conftest import fresh, run

DSO_KEY, DSO_PUBLIC = pyuftp.generate_keypair()
AGR_KEY, AGR_PUBLIC = pyuftp.generate_keypair()
OTHER_KEY, _ = pyuftp.generate_keypair()
_SAMPLE = re.compile(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$')


def scraped(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of a Prometheus text exposition: (name, labels) -> value."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: connections refused


class Parties:
    """A DSO service with metrics and health on loopback, and an AGR service that sends."""

    def __init__(self, **dso_options: Any) -> None:
        self.directory = Directory()
        self.dso = ShapeshifterDsoService("dso.example.com", DSO_KEY, self.directory.key,
                                          self.directory.endpoint, port=0, **dso_options)
        self.agr = ShapeshifterAgrService("agr.example.com", AGR_KEY, self.directory.key,
                                          self.directory.endpoint, port=0)
        self.dso.add_handler("TestMessage", lambda payload: None)
        self.dso.add_handler("FlexOffer", lambda payload: None)

    async def __aenter__(self) -> Parties:
        await self.dso.start()
        await self.agr.start()
        self.directory.add("dso.example.com", "DSO", DSO_PUBLIC, self.dso.url)
        self.directory.add("agr.example.com", "AGR", AGR_PUBLIC, self.agr.url)
        self.base = f"http://127.0.0.1:{self.dso.port}"
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.session.close()
        await self.agr.stop()
        await self.dso.stop()

    async def get(self, path: str) -> tuple[int, str, str]:
        async with self.session.get(self.base + path) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.text()

    async def post(self, body: bytes) -> int:
        async with self.session.post(self.dso.url, data=body,
                                     headers={"Content-Type": "text/xml; charset=utf-8"}) as resp:
            return resp.status

    async def metrics(self) -> dict:
        status, kind, text = await self.get("/metrics")
        assert status == 200 and kind.startswith("text/plain"), (status, kind)
        return scraped(text)


def strict_rules() -> Rules:
    """The default rules and one the sender does not have: every FlexOffer breaks it."""
    rules = Rules()

    @rules.rule("test.no_offers", ["FlexOffer"], "this DSO takes no offers")
    def no_offers(ctx):
        return ["no offers today"]
    return rules


def test_metrics_match_what_was_sent():
    async def scenario():
        async with Parties(metrics=True, rules=strict_rules()) as p:
            for _ in range(3):
                await p.agr.request("dso.example.com", "DSO", "TestMessage", {}, timeout=10)
            # rejected by the DSO's own rule (and the stateful ones: no such request was sent)
            _, answer = await p.agr.request("dso.example.com", "DSO", "FlexOffer",
                                            fresh("FlexOffer"), timeout=10)
            assert answer["result"] == "Rejected"
            rules = set(re.findall(r"\[([a-z_.]+)\]", answer["rejection_reason"]))
            assert "test.no_offers" in rules, answer["rejection_reason"]
            assert await p.post(b"<SignedMessage/>") == 400  # refused: counted by status
            forged = wrap(pyuftp.create_message("TestMessage", {
                "sender_domain": "agr.example.com", "recipient_domain": "dso.example.com"}),
                OTHER_KEY, "agr.example.com", "AGR")
            assert await p.post(forged) == 401
            assert await p.dso.drain(10)
            m = await p.metrics()
        agr = "agr.example.com"
        received = "pyuftp_received_messages_total"
        assert value(m, received, message_type="TestMessage", sender=agr, outcome="Accepted") == 3
        assert value(m, received, message_type="FlexOffer", sender=agr, outcome="Rejected") == 1
        assert sum(v for (name, _), v in m.items() if name == received) == 4
        for rule in rules:
            assert value(m, "pyuftp_rejections_total", message_type="FlexOffer", sender=agr,
                         rule=rule) == 1, rule
        assert value(m, "pyuftp_http_requests_total", status="200") == 4
        assert value(m, "pyuftp_http_requests_total", status="400") == 1
        assert value(m, "pyuftp_http_requests_total", status="401") == 1
        assert value(m, "pyuftp_receive_seconds_count") == 6
        assert value(m, "pyuftp_receive_seconds_bucket", le="+Inf") == 6
        assert value(m, "pyuftp_handler_seconds_count", message_type="TestMessage") == 3
        sent = "pyuftp_sent_messages_total"
        for kind, outcome, count in (("TestMessageResponse", "queued", 3),
                                     ("TestMessageResponse", "delivered", 3),
                                     ("FlexOfferResponse", "queued", 1),
                                     ("FlexOfferResponse", "delivered", 1)):
            assert value(m, sent, message_type=kind, recipient=agr, outcome=outcome) == count
        assert value(m, "pyuftp_delivery_attempts_total", recipient=agr, result="delivered") == 4
        assert value(m, "pyuftp_outbox_pending") == 0
        assert value(m, "pyuftp_store_up") == 1 and value(m, "pyuftp_outbox_running") == 1
        assert value(m, "pyuftp_store_errors_total", operation="record") == 0
    run(scenario())


def test_metrics_show_the_outbox_depth_and_retries_of_an_unreachable_peer():
    async def scenario():
        async with Parties(metrics="/internal/metrics", health=True) as p:
            assert (await p.get("/metrics"))[0] == 404  # served where it was asked only
            url = f"http://127.0.0.1:{closed_port()}/shapeshifter/api/v3/message"
            p.directory.add("down.example.com", "AGR", AGR_PUBLIC, url)
            for _ in range(2):
                await p.dso.courier.send("FlexRequest", fresh("FlexRequest"),
                                         "down.example.com", "AGR")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                status, _, text = await p.get("/internal/metrics")
                m = scraped(text)
                if value(m, "pyuftp_delivery_attempts_total", recipient="down.example.com",
                         result="retry") >= 2:
                    break
                await asyncio.sleep(0.05)
            assert value(m, "pyuftp_outbox_pending") == 2
            assert value(m, "pyuftp_outbox_oldest_pending_seconds") > 0
            assert value(m, "pyuftp_sent_messages_total", message_type="FlexRequest",
                         recipient="down.example.com", outcome="queued") == 2
            status, _, text = await p.get("/health")
            report = json.loads(text)
            assert status == 200 and report["outbox_pending"] == 2
            assert report["oldest_pending_seconds"] > 0
            # never counted as UFTP requests
            assert value(m, "pyuftp_http_requests_total", status="200") == 0
    run(scenario())


def test_health_is_ready_only_with_a_reachable_store_and_a_running_outbox(tmp_path):
    async def scenario():
        store = SQLiteStore(tmp_path / "dso.sqlite")
        async with Parties(health=True, store=store) as p:
            status, kind, text = await p.get("/health")
            assert (status, json.loads(text)["status"]) == (200, "ready"), text
            assert kind.startswith("application/json")
            await p.dso.outbox.stop()
            status, _, text = await p.get("/health")
            assert status == 503 and json.loads(text)["outbox"] == "stopped", text
            await p.dso.outbox.start()
            assert (await p.get("/health"))[0] == 200
            store.close()
            status, _, text = await p.get("/health")
            report = json.loads(text)
            assert status == 503 and report["store"] == "unreachable", text
            assert "outbox_pending" not in report
    run(scenario())


@pytest.mark.parametrize("path", ["/shapeshifter/api/v3/message",
                                  "/shapeshifter/api/v3/message/metrics", "metrics", "//x"])
def test_operations_are_never_served_at_or_under_the_message_path(path):
    with pytest.raises(ValueError, match="message path"):
        ShapeshifterDsoService("dso.example.com", DSO_KEY, lambda d, r: None,
                               lambda d, r: None, metrics=path)


def test_log_lines_about_a_message_carry_its_fields_and_refusals_name_the_sender():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("pyuftp")
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    async def scenario():
        async with Parties() as p:
            sent, _ = await p.agr.request("dso.example.com", "DSO", "TestMessage", {},
                                          timeout=10)
            forged = wrap(pyuftp.create_message("TestMessage", {
                "sender_domain": "agr.example.com", "recipient_domain": "dso.example.com"}),
                OTHER_KEY, "agr.example.com", "AGR")
            assert await p.post(forged) == 401
            await p.dso.drain(10)
            await p.agr.drain(10)
            return sent
    try:
        sent = run(scenario())
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    conversation = [line for line in lines if line.get("conversation_id") == sent["conversation_id"]]
    # queued and delivered by the AGR; its response queued and delivered by the DSO
    loggers = {line["logger"] for line in conversation}
    assert {"pyuftp.sending.delivery", "pyuftp.sending.attempts"} <= loggers, loggers
    for line in conversation:
        assert line["message_type"] in ("TestMessage", "TestMessageResponse"), line
        assert line["message_id"] and line["counterparty"] in ("agr.example.com",
                                                               "dso.example.com"), line
        assert sent["conversation_id"] in line["message"], line  # one grep follows it
    refusals = [line for line in lines if "HTTP 401" in line["message"]]
    assert len(refusals) == 1, lines
    assert refusals[0]["counterparty"] == "agr.example.com"
    assert "agr.example.com" in refusals[0]["message"]
    assert "signature" in refusals[0]["message"].lower(), refusals[0]


def _item(n: int, created_at: float, recipient: str = "agr.example.com") -> OutboxItem:
    return OutboxItem(f"id-{n}", "TestMessage", "dso.example.com", recipient, "AGR", b"x",
                      created_at, created_at + 3600)


def _store(kind: str, tmp_path: Path) -> Any:
    if kind == "postgresql":
        import pg

        return open_store(pg.store_url(pg.new_schema()))
    return MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "s.sqlite")


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgresql"])
def test_outbox_summary_counts_pending_and_failed_and_dates_the_oldest(kind, tmp_path):
    store = _store(kind, tmp_path)
    with store:
        assert tuple(store.outbox_summary()) == (0, 0, None)
        ids = [store.add_outgoing(_item(n, 1000.0 + n)) for n in range(5)]
        store.mark_delivered(ids[0])
        store.mark_failed(ids[1], "gone", 404)
        summary = store.outbox_summary()
        assert (summary.pending, summary.failed, summary.oldest_pending_at) == (3, 1, 1002.0)
        assert summary.oldest_age(1010.0) == 8.0
        store.retry_outgoing(ids[1], 0.0, 5000.0)  # failed, retried: the oldest pending now
        assert tuple(store.outbox_summary()) == (4, 0, 1001.0)
        for item_id in ids[1:]:
            store.mark_delivered(item_id)
        assert tuple(store.outbox_summary()) == (0, 0, None)
    with pytest.raises(pyuftp.exceptions.StoreError):
        store.outbox_summary()  # closed: the health check's "unreachable"
