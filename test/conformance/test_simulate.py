"""``pyuftp simulate``'s counterparty over real sockets on 127.0.0.1: a GOPACS-like day-ahead
flow with a simulated DSO in place of a hand-written one (it requests, a pyuftp AGR offers,
it orders the cheapest option), rejections, delays, faults, drops and scenario errors."""
from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import aiohttp
import pytest

from conftest import run
from pyuftp.conformance.scenario import ScenarioError, load, parse
from pyuftp.conformance.simulator import Simulator
from pyuftp.discovery import Directory
from pyuftp.message.examples import example
from pyuftp.server.service import SERVICES
from pyuftp.signing.crypto import generate_keypair
from pyuftp.signing.envelope import seal_message

RULES = "all"  # every business rule, stateful ones included: the flows build their history
EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples" / "scenarios"


class Parties:
    """A simulator and a pyuftp service of another role that know each other."""

    def __init__(self, scenario, role: str, domain: str, **simulator_options):
        self.directory = Directory()
        sim_private, self.sim_public = generate_keypair()
        self.private, public = generate_keypair()
        self.simulator = Simulator(scenario, sim_private, self.directory.key,
                                   self.directory.endpoint, **simulator_options)
        self.service = SERVICES[role](domain, self.private, self.directory.key,
                                      self.directory.endpoint, port=0)
        self.role, self.domain, self.public = role, domain, public

    async def __aenter__(self):
        await self.service.start()
        self.directory.add(self.domain, self.role, self.public, self.service.url)
        await self.simulator.start()
        # known before its first scheduled send (the scenarios' first is at 0.3 s or later)
        self.directory.add(self.simulator.scenario.domain, self.simulator.scenario.role,
                           self.sim_public, self.simulator.url)
        return self

    async def __aexit__(self, *exc):
        await self.simulator.stop()
        await self.service.stop()


def offering_agr(service):
    """The AGR's side of the day-ahead flow: every FlexRequest is answered by an offer."""
    async def offer(request):
        payload = example("FlexOffer", now=dt.datetime.now(dt.timezone.utc))
        payload.pop("d_prognosis_message_id")  # no prognosis in this test's story
        for key in ("period", "congestion_point", "isp_duration", "time_zone"):
            payload[key] = request[key]
        payload.update(flex_request_message_id=request["message_id"],
                       conversation_id=request["conversation_id"])
        for key in ("message_id", "time_stamp", "sender_domain", "recipient_domain"):
            payload.pop(key)
        await service.request(request["sender_domain"], "DSO", "FlexOffer", payload, 10)

    @service.handler("FlexRequest")
    async def on_request(request):
        asyncio.get_running_loop().create_task(offer(request))

    @service.handler("FlexOrder")
    async def on_order(order):
        return None  # Accepted


def test_day_ahead_flow_with_a_simulated_dso():
    scenario = load(EXAMPLES / "gopacs-day-ahead-dso.toml")
    scenario = type(scenario)(**{**scenario.__dict__, "domain": "dso.sim.test",
                                 "sends": tuple(type(s)(**{**s.__dict__, "to": "agr.sim.test"})
                                                for s in scenario.sends)})

    async def flow():
        async with Parties(scenario, "AGR", "agr.sim.test") as parties:
            offering_agr(parties.service)
            assert await parties.simulator.finished(20)
            return parties.simulator.results, parties.simulator.timeline()

    results, timeline = run(flow(), 40)
    kinds = [(kind, outcome) for kind, _, outcome in results]
    assert kinds == [("FlexRequest", "Accepted"), ("FlexOrder", "Accepted")], results
    lines = timeline.splitlines()
    assert [line.split()[1:3] for line in lines] == [
        ["->", "FlexRequest"], ["<-", "FlexRequestResponse"], ["<-", "FlexOffer"],
        ["->", "FlexOfferResponse"], ["->", "FlexOrder"], ["<-", "FlexOrderResponse"]]


def _two_simulators(dso_changes=None, agr_changes=None):
    """The example DSO and AGR scenarios, playing each other on 127.0.0.1."""
    import dataclasses

    dso = dataclasses.replace(load(EXAMPLES / "gopacs-day-ahead-dso.toml"), **(dso_changes or {}))
    agr = dataclasses.replace(load(EXAMPLES / "agr-offers.toml"), **(agr_changes or {}))

    async def flow():
        directory = Directory()
        simulators = []
        for scenario in (agr, dso):  # the AGR first: the DSO's request goes out at once
            private, public = generate_keypair()
            simulator = Simulator(scenario, private, directory.key, directory.endpoint)
            await simulator.start()
            directory.add(scenario.domain, scenario.role, public, simulator.url)
            simulators.append(simulator)
        try:
            # done when no simulator has work left twice in a row, 0.5 s apart (an answer in
            # flight starts new work: an offer, then an order)
            quiet = 0
            for _ in range(40):
                done = [await s.finished(20) for s in simulators]
                busy = any(s._tasks for s in simulators)
                quiet = quiet + 1 if all(done) and not busy else 0
                if quiet == 2:
                    break
                await asyncio.sleep(0.5)
            assert quiet == 2
            return [([(k, o) for k, _, o in s.results], s.timeline()) for s in simulators]
        finally:
            for simulator in simulators:
                await simulator.stop()

    return run(flow(), 40)


def test_simulated_dso_and_agr_trade():
    (agr_sent, agr_timeline), (dso_sent, _) = _two_simulators()
    assert dso_sent == [("FlexRequest", "Accepted"), ("FlexOrder", "Accepted")]
    assert agr_sent == [("FlexOffer", "Accepted")]
    assert [line.split()[1:3] for line in agr_timeline.splitlines()] == [
        ["<-", "FlexRequest"], ["->", "FlexRequestResponse"], ["->", "FlexOffer"],
        ["<-", "FlexOfferResponse"], ["<-", "FlexOrder"], ["->", "FlexOrderResponse"]]


def test_a_revoked_offer_is_not_ordered():
    """The AGR revokes its offer before the DSO orders: the DSO's own rules stop the order."""
    (agr_sent, _), (dso_sent, _) = _two_simulators({"order_wait": 1.0}, {"revoke_after": 0.1})
    assert agr_sent == [("FlexOffer", "Accepted"), ("FlexOfferRevocation", "Accepted")]
    assert dso_sent[0] == ("FlexRequest", "Accepted")
    kind, outcome = dso_sent[1]
    assert kind == "FlexOrder"
    assert outcome.startswith("not sent: RuleViolation") and "was revoked" in outcome


def test_reject_delay_and_drop():
    scenario = parse("""
        [party]
        role = "DSO"
        domain = "dso.sim.test"
        [answers]
        delay = 0.4
        reject = { D-Prognosis = "no prognoses today" }
        drop = ["Metering"]
    """)

    async def exchange():
        async with Parties(scenario, "AGR", "agr.sim.test") as parties:
            agr = parties.service
            now = dt.datetime.now(dt.timezone.utc)
            started = time.monotonic()
            _, answer = await agr.request("dso.sim.test", "DSO", "D-Prognosis",
                                          _fresh("D-Prognosis", now), 10)
            took = time.monotonic() - started
            with pytest.raises(TimeoutError):
                await agr.request("dso.sim.test", "DSO", "Metering", _fresh("Metering", now), 1.5)
            return answer, took, parties.simulator.dropped

    answer, took, dropped = run(exchange(), 30)
    assert answer["result"] == "Rejected" and answer["rejection_reason"] == "no prognoses today"
    assert took >= 0.4
    assert dropped == ["Metering"]


def _fresh(message_type, now):
    payload = example(message_type, now=now)
    for key in ("message_id", "conversation_id", "time_stamp", "sender_domain",
                "recipient_domain"):
        payload.pop(key)
    return payload


def test_faults_then_service():
    scenario = parse("""
        [party]
        role = "CRO"
        domain = "cro.sim.test"
        [faults]
        status = 429
        first = 2
        retry_after = 3
    """)

    async def posts():
        async with Parties(scenario, "DSO", "dso.sim.test") as parties:
            payload = example("TestMessage")
            payload.update(sender_domain="dso.sim.test", recipient_domain="cro.sim.test",
                           time_stamp=dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
            data, _ = seal_message("TestMessage", payload, parties.private, "DSO")
            statuses = []
            async with aiohttp.ClientSession() as session:
                for _ in range(3):
                    async with session.post(parties.simulator.url, data=data,
                                            headers={"Content-Type": "text/xml"}) as reply:
                        statuses.append((reply.status, reply.headers.get("Retry-After")))
            return statuses, parties.simulator.faulted

    statuses, faulted = run(posts(), 30)
    assert statuses == [(429, "3"), (429, "3"), (200, None)]
    assert faulted == 2


D = "[party]\nrole = 'DSO'\ndomain = 'x'\n"


@pytest.mark.parametrize("text,message", [
    ("[party]\nrole = 'DSO'", "scenario key 'party.domain' is required"),
    ("[party]\nrole = 'DS0'\ndomain = 'x'",
     "'party.role': 'DS0' is not allowed (did you mean 'DSO'?)"),
    (D + "[answers]\ndelai = 1", "'answers.delai' is unknown (did you mean 'delay'?)"),
    (D + "[answers]\ndelay = -1", "'answers.delay': must be a number >= 0"),
    (D + "[faults]\nstatus = 404", "'faults.status': 429 or 5xx"),
    (D + "[[send]]\ntype = 'FlexRequset'\nto = 'a'\nrole = 'AGR'",
     "'send[0].type': 'FlexRequset' is not allowed (did you mean 'FlexRequest'?)"),
    (D + "[[send]]\ntype = 'FlexRequest'\nto = 'a'\nrole = 'AGR'\ncount = 20000",
     "more than 10000 messages"),
    ("[party\n", "not valid TOML"),
    ("[answers]\ndelay = 1", "scenario key 'party' is required"),
])
def test_scenario_errors_name_the_key(text, message):
    with pytest.raises(ScenarioError, match=None) as caught:
        parse(text)
    assert message in str(caught.value)


def test_example_scenarios_load():
    found = sorted(EXAMPLES.glob("*.toml"))
    assert len(found) >= 2
    for path in found:
        assert load(path).domain


@pytest.mark.slow
def test_simulate_command_cro_register(tmp_path):
    """``pyuftp simulate cro`` with the example register scenario, in a process of its own:
    it refuses the first two requests (503: the DSO's sender retries), registers the DSO's
    congestion point and answers an AGR's query from its register (the hooks); interrupted,
    it prints its timeline, and its archive stays queryable."""
    import os
    import signal
    import socket
    import sys

    from pyuftp.signing.keyfile import format_keys
    from pyuftp.store import open_store

    cro_private, cro_public = generate_keypair()
    (tmp_path / "cro.keys").write_text(format_keys(cro_private))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cro_url = f"http://127.0.0.1:{port}/shapeshifter/api/v3/message"
    directory = Directory()
    directory.add("cro.example.com", "CRO", cro_public, cro_url)
    parties = {}
    for role in ("DSO", "AGR"):
        private, public = generate_keypair()
        parties[role] = (SERVICES[role](f"{role.lower()}.example.com", private, directory.key,
                                        directory.endpoint, port=0), public)

    async def scenario():
        for service, public in parties.values():
            await service.start()
            directory.add(service.sender_domain, service.role, public, service.url)
        peers = [arg for service, public in parties.values()
                 for arg in ("--peer", service.sender_domain, service.role, public, service.url)]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pyuftp", "simulate", "cro",
            "--scenario", str(EXAMPLES / "cro-register.toml"),
            "--key", str(tmp_path / "cro.keys"), "--port", str(port),
            "--store", str(tmp_path / "cro.db"), *peers,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        try:
            line = await asyncio.wait_for(process.stderr.readline(), 20)
            assert b"simulating CRO cro.example.com" in line, line
            dso, agr = parties["DSO"][0], parties["AGR"][0]
            update = _fresh("DSOPortfolioUpdate", dt.datetime.now(dt.timezone.utc))
            _, updated = await dso.request("cro.example.com", "CRO", "DSOPortfolioUpdate",
                                           update, 20)
            query = _fresh("AGRPortfolioQuery", dt.datetime.now(dt.timezone.utc))
            _, answer = await agr.request("cro.example.com", "CRO", "AGRPortfolioQuery",
                                          query, 20)
        finally:
            process.send_signal(signal.SIGINT)
            out, _ = await asyncio.wait_for(process.communicate(), 20)
            for service, _ in parties.values():
                await service.stop()
        return updated, answer, out.decode()

    updated, answer, out = run(scenario(), 60)
    assert updated["result"] == "Accepted"
    assert answer["result"] == "Accepted"
    points = [p["entity_address"] for view in answer["dso_views"]
              for portfolio in view["dso_portfolios"] for p in portfolio["congestion_points"]]
    assert points == ["ea1.2019-04.com.example.dso:cp-utrecht-0042"]
    assert "<- DSOPortfolioUpdate" in out and "-> AGRPortfolioQueryResponse" in out
    with open_store(str(tmp_path / "cro.db")) as store:
        kinds = sorted(m.message_type for m in store.query())
    assert kinds == ["AGRPortfolioQuery", "AGRPortfolioQueryResponse", "DSOPortfolioUpdate",
                     "DSOPortfolioUpdateResponse"]


def test_conformance_builds_the_order_conversation_with_a_simulated_agr():
    """The runner, as a DSO, orders what a (simulated) AGR offers on its FlexRequest: the
    order is answered Accepted, since it names a real offer."""
    import dataclasses

    from pyuftp.conformance.checks import PASS, select
    from pyuftp.conformance.runner import Party, Runner, Settings
    from pyuftp.conformance.suite import registry

    agr = dataclasses.replace(load(EXAMPLES / "agr-offers.toml"), domain="agr.sim.test")

    async def check():
        directory = Directory()
        agr_private, agr_public = generate_keypair()
        dso_private, dso_public = generate_keypair()
        simulator = Simulator(agr, agr_private, directory.key, directory.endpoint)
        async with simulator:
            directory.add("agr.sim.test", "AGR", agr_public, simulator.url)
            runner = Runner(Party("dso.sim.test", "DSO"), dso_private,
                            Party("agr.sim.test", "AGR"), simulator.url, agr_public,
                            settings=Settings(rate=500.0, answer_timeout=5.0))
            async with runner:
                directory.add("dso.sim.test", "DSO", dso_public, runner.service_url)
                checks = select(registry("DSO", "AGR", ("3.1.0", "3.0.0")),
                                ["message.FlexOrder@*"])
                return await runner.run(checks), simulator.results

    results, agr_sent = run(check(), 40)
    assert [(r.check.id, r.outcome.status, r.outcome.got) for r in results] == [
        ("message.FlexOrder@3.1.0", PASS, "FlexOrderResponse Accepted"),
        ("message.FlexOrder@3.0.0", PASS, "FlexOrderResponse Accepted")]
    assert all(r.outcome.excerpt == "ordered option B of their FlexOffer" for r in results)
    assert [kind for kind, _, _ in agr_sent] == ["FlexOffer", "FlexOffer"]


def test_the_simulated_dso_settles_what_it_ordered():
    """Month end, early: the DSO settles the order the AGR accepted; the AGR's rules (the
    orders, their references, periods and sums) accept the settlement."""
    (agr_sent, agr_timeline), (dso_sent, _) = _two_simulators({"settle_after": 2.0})
    assert dso_sent == [("FlexRequest", "Accepted"), ("FlexOrder", "Accepted"),
                        ("FlexSettlement", "Accepted")], dso_sent
    assert [line.split()[1:3] for line in agr_timeline.splitlines()][-2:] == [
        ["<-", "FlexSettlement"], ["->", "FlexSettlementResponse"]]
