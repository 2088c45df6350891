"""Hostile values against the business rules of a real DSO service (issue #16, items 2, 3, 5).

The DSO runs in a process of its own (rules_service.py: every rule on, a SQLite store) so
that its memory and CPU are its own; it sends this process's AGR service a real FlexRequest
first, and the offers here name it. Messages are signed with the AGR's key and POSTed over
127.0.0.1; the DSO's responses come back to the AGR service here.

- A FlexOffer naming that request with one ISP of Duration 10,000,000: before, the rule
  ``offer.request_exists`` built a set of ten million ISP numbers (1.4 s of a blocked event
  loop, 530 MiB). Now the probes meanwhile stay fast, the DSO's peak memory stays put, and
  the offer is rejected for its ISPs beyond the day.
- A FlexOffer for Period 9999-12-31 or 0001-01-01: before, an OverflowError in a rule left
  the offer without any response. Now it is rejected by ``period.on_calendar``.
- 300 D-Prognoses of one day with rising revisions: before, ``revision.increases`` re-read
  and re-parsed every earlier one (CPU per message growing with the day's count). Now the CPU
  per message of the last 50 is about that of the first 50, and a revision that does not
  rise is still rejected.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyuftp
from pyuftp.clients import ShapeshifterAgrDsoClient
from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery import Directory
from pyuftp.signing.envelope import wrap
from pyuftp.message.examples import example
from pyuftp.message.codec import build_message
from pyuftp.server.service import ShapeshifterAgrService

HERE = Path(__file__).resolve().parents[1]  # test/: the helper scripts
# The tree whose pyuftp this process imported goes first on the child's path too, so that
# ``PYTHONPATH=/work/before pytest ...`` measures the old rules in the child as well.
TREE = str(Path(pyuftp.__file__).resolve().parent.parent)
METADATA = ("version", "message_id", "conversation_id", "time_stamp")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_line(process: subprocess.Popen, deadline: float) -> str:
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not select.select([process.stdout], [], [], remaining)[0]:
        return ""
    return process.stdout.readline()


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


class Scene:
    """The AGR service here, the DSO child, and the responses by the id they answer."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.agr_key, self.agr_public = generate_keypair()
        self.dso_key, self.dso_public = generate_keypair()
        self.answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.child: subprocess.Popen | None = None
        self.request: dict[str, Any] = {}
        self.client: ShapeshifterAgrDsoClient | None = None

    def answer(self, message_id: str) -> asyncio.Future[dict[str, Any]]:
        return self.answers.setdefault(message_id, asyncio.get_running_loop().create_future())

    def _responded(self, key: str):
        async def handler(payload: dict[str, Any]) -> None:  # async: on the loop
            future = self.answer(payload[key])
            if not future.done():
                future.set_result(payload)
        return handler

    @contextlib.asynccontextmanager
    async def running(self):
        directory = Directory()
        agr = ShapeshifterAgrService("agr.example.com", self.agr_key, directory.key,
                                     directory.endpoint, port=0)
        agr.add_handler("FlexRequest", lambda payload: None)
        agr.add_handler("FlexOfferResponse", self._responded("flex_offer_message_id"))
        agr.add_handler("D-PrognosisResponse", self._responded("d_prognosis_message_id"))
        agr.add_handler("TestMessageResponse", lambda payload: None)
        async with agr:
            env = dict(os.environ, PYTHONPATH=TREE + os.pathsep + os.environ.get("PYTHONPATH", ""))
            log = (self.tmp_path / "dso.log").open("w")
            port = free_port()
            url = f"http://127.0.0.1:{port}/shapeshifter/api/v3/message"
            directory.add("dso.example.com", "DSO", self.dso_public, url)
            self.child = subprocess.Popen(
                [sys.executable, str(HERE / "rules_service.py"), str(self.tmp_path / "dso.sqlite"),
                 str(port), self.dso_key, self.agr_public, agr.url],
                env=env, stdout=subprocess.PIPE, stderr=log, text=True)
            try:
                line = await asyncio.to_thread(read_line, self.child, time.monotonic() + 60)
                assert line, (self.tmp_path / "dso.log").read_text()[-3000:]
                started = json.loads(line)
                assert started["response"] == "Accepted"
                self.request = started["request"]
                async with ShapeshifterAgrDsoClient("agr.example.com", self.agr_key,
                                                    "dso.example.com", url,
                                                    attempts=1) as self.client:
                    yield self
            finally:
                self.child.kill()
                self.child.wait(10)
                log.close()

    def signed(self, message_type: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        """Sealed with the AGR's key, without the sender's own rule check (these messages are
        meant to break the rules of the receiver)."""
        xml, sent = build_message(message_type, payload)
        return wrap(xml, self.agr_key, "agr.example.com", "AGR"), sent

    def offer(self, **fields: Any) -> dict[str, Any]:
        """A FlexOffer that names the FlexRequest the DSO really sent, in its conversation."""
        now = dt.datetime.now(dt.timezone.utc)
        payload = {k: v for k, v in example("FlexOffer", now=now).items() if k not in METADATA}
        payload.update(
            conversation_id=self.request["conversation_id"],
            flex_request_message_id=self.request["message_id"],
            period=dt.date.fromisoformat(self.request["period"]),
            congestion_point=self.request["congestion_point"],
            expiration_date_time=now + dt.timedelta(minutes=30))
        payload.pop("d_prognosis_message_id")  # no D-Prognosis was exchanged here
        payload.update(fields)
        return payload

    async def probe(self) -> float:
        """Seconds for one TestMessage to be taken in (HTTP 200)."""
        data, _ = self.signed("TestMessage", {"sender_domain": "agr.example.com",
                                              "recipient_domain": "dso.example.com"})
        started = time.monotonic()
        await self.client.courier.poster.post_once(data, await self.client.endpoint())
        return time.monotonic() - started


def rejected_by(response: dict[str, Any], rule_id: str) -> bool:
    return response["result"] == "Rejected" and f"[{rule_id}]" in response["rejection_reason"]


def test_a_huge_isp_duration_costs_the_service_neither_time_nor_memory(tmp_path):
    async def scenario() -> None:
        async with Scene(tmp_path).running() as scene:
            for _ in range(3):
                await scene.probe()  # warm: the first messages load schemas and templates
            before = proc_status(scene.child.pid)
            option = {"option_reference": "A", "price": Decimal("10.00"),
                      "isps": [{"start": 69, "duration": 10_000_000, "power": -200000}]}
            data, sent = scene.signed("FlexOffer", scene.offer(offer_options=[option]))
            assert len(data) < 2500  # a small message
            answered = scene.answer(sent["message_id"])
            await scene.client.courier.poster.post_once(data, await scene.client.endpoint())
            probes = []
            deadline = time.monotonic() + 20
            while not answered.done() and time.monotonic() < deadline:
                probes.append(await scene.probe())
                await asyncio.sleep(0.02)
            response = await asyncio.wait_for(answered, max(0.1, deadline - time.monotonic()))
            after = proc_status(scene.child.pid)
            assert rejected_by(response, "isp.within_period"), response
            assert max(probes, default=0.0) < 0.5, probes
            grown = (after["VmHWM"] - before["VmHWM"]) / 1024
            assert grown < 64, f"peak memory grew by {grown:.0f} MiB"

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_a_period_off_the_calendar_is_rejected_not_left_unanswered(tmp_path):
    async def scenario() -> None:
        async with Scene(tmp_path).running() as scene:
            for day in (dt.date(9999, 12, 31), dt.date(1, 1, 1)):
                data, sent = scene.signed("FlexOffer", scene.offer(period=day))
                answered = scene.answer(sent["message_id"])
                await scene.client.courier.poster.post_once(data, await scene.client.endpoint())
                response = await asyncio.wait_for(answered, 20)
                assert rejected_by(response, "period.on_calendar"), response
                assert str(day) in response["rejection_reason"]
            log = (tmp_path / "dso.log").read_text()
            assert "OverflowError" not in log and "Traceback" not in log

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_d_prognosis_cost_does_not_grow_with_the_day(tmp_path):
    count, window = 300, 50

    async def scenario() -> list[float]:
        async with Scene(tmp_path).running() as scene:
            now = dt.datetime.now(dt.timezone.utc)
            base = {k: v for k, v in example("D-Prognosis", now=now).items() if k not in METADATA}

            async def send(**fields: Any) -> dict[str, Any]:
                data, sent = scene.signed("D-Prognosis", base | fields)
                answered = scene.answer(sent["message_id"])
                await scene.client.courier.poster.post_once(data, await scene.client.endpoint())
                return await asyncio.wait_for(answered, 30)

            costs = []
            for revision in range(1, count + 1):
                used = cpu_seconds(scene.child.pid)
                response = await send(revision=revision)
                costs.append(cpu_seconds(scene.child.pid) - used)
                assert response["result"] == "Accepted", response
            # the rule still holds: a revision that does not rise is rejected; another
            # congestion point of the same day starts at its own first revision
            assert rejected_by(await send(revision=count), "revision.increases")
            other = await send(revision=1, congestion_point="ea1.2019-04.com.example.dso:cp-2")
            assert other["result"] == "Accepted", other
            return costs

    costs = asyncio.run(asyncio.wait_for(scenario(), 300))
    first, last = statistics.mean(costs[:window]), statistics.mean(costs[-window:])
    # before: the last 50 cost about 10 times the first 50 (every earlier one re-parsed)
    assert last < 2.5 * first + 0.002, (first, last)
