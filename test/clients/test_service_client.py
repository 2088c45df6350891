"""One party owns its sending (#17.1): a client made from a party's service shares its courier,
store and archive, so the service knows the requests the client sent and takes their answers;
end to end over sockets, and across a sender that died before the answer came."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import pyuftp
from pyuftp import (AddressingError, Directory, ShapeshifterAgrDsoClient, ShapeshifterAgrService,
                    ShapeshifterDsoAgrClient, ShapeshifterDsoCroClient, ShapeshifterDsoService)

from conftest import run
from readme_offer import offer

HERE = Path(__file__).resolve().parent
AGR_KEY, AGR_PUBLIC = pyuftp.generate_keypair()
DSO_KEY, DSO_PUBLIC = pyuftp.generate_keypair()
AGR, DSO = "agr.example.com", "dso.example.com"
WAIT = 20.0
RULES = "all"  # the default rules, as a user has them: answers are matched to requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_client_takes_the_recipients_role_and_shares_the_services_courier():
    directory = Directory()
    directory.add(AGR, "AGR", AGR_PUBLIC, "http://127.0.0.1:9/x")
    directory.add("both.example.com", "AGR", AGR_PUBLIC, "http://127.0.0.1:9/a")
    directory.add("both.example.com", "CRO", AGR_PUBLIC, "http://127.0.0.1:9/c")
    dso = ShapeshifterDsoService(DSO, DSO_KEY, directory.key, directory.endpoint, port=0)
    client = dso.client(AGR)
    assert type(client) is ShapeshifterDsoAgrClient
    assert client.courier is dso.courier and client.outbox is dso.outbox
    with pytest.raises(ValueError, match=r"both\.example\.com is known as AGR and CRO: say "
                                         r"which, e\.g\. client\('both\.example\.com', "
                                         r"role='AGR'\)"):
        dso.client("both.example.com")
    assert type(dso.client("both.example.com", role="CRO")) is ShapeshifterDsoCroClient
    with pytest.raises(AddressingError, match=r"no endpoint known for nobody\.example\.com"):
        dso.client("nobody.example.com")


async def _parties() -> tuple[Directory, ShapeshifterDsoService, ShapeshifterAgrService,
                              asyncio.Queue[dict[str, Any]]]:
    directory = Directory()
    dso = ShapeshifterDsoService(DSO, DSO_KEY, directory.key, directory.endpoint, port=0)
    agr = ShapeshifterAgrService(AGR, AGR_KEY, directory.key, directory.endpoint, port=0)
    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_response(response: dict[str, Any]) -> None:
        await answers.put(response)
    agr.add_handler("FlexOfferResponse", on_response)
    dso.add_handler("FlexOffer", lambda offer: None)  # the README's: Accepted
    await dso.start()
    await agr.start()
    directory.add(DSO, "DSO", DSO_PUBLIC, dso.url)
    directory.add(AGR, "AGR", AGR_PUBLIC, agr.url)
    return directory, dso, agr, answers


def test_the_readme_flow_with_a_client_made_from_the_service_gets_its_answer_handled():
    async def scenario() -> None:
        directory, dso, agr, answers = await _parties()
        try:
            async with agr.client(DSO) as client:
                assert type(client) is ShapeshifterAgrDsoClient
                sent = await client.send_flex_offer(offer())
                response = await asyncio.wait_for(answers.get(), WAIT)
        finally:
            await agr.stop()
            await dso.stop()
        assert response["flex_offer_message_id"] == sent["message_id"]
        assert response["result"] == "Accepted", response.get("rejection_reason")
    run(scenario())


def test_a_standalone_client_without_the_services_store_cannot_have_its_answer_matched(caplog):
    # The documented limit: the service never saw the offer, so the default rules refuse
    # the DSO's answer (the refusal names the rule) and the handler does not run.
    async def scenario() -> None:
        directory, dso, agr, answers = await _parties()
        try:
            with caplog.at_level(logging.WARNING, logger="pyuftp"):
                async with ShapeshifterAgrDsoClient(AGR, AGR_KEY, DSO, dso.url) as client:
                    await client.send_flex_offer(offer())
                assert await dso.drain(WAIT)
                assert await agr.drain(WAIT)
        finally:
            await agr.stop()
            await dso.stop()
        assert answers.empty()
        assert any("names no FlexOffer" in r.getMessage() for r in caplog.records)
    run(scenario())


def read_line(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stdout is not None
    while time.monotonic() < deadline:  # bounded by the deadline
        line = process.stdout.readline()
        if line:
            return line
        if process.poll() is not None:
            break
    raise AssertionError("the AGR process said nothing in time")


@pytest.mark.slow
def test_an_answer_to_a_sender_that_died_is_matched_after_its_restart(tmp_path):
    """The AGR sends its offer with a client made from its service (SQLite store) in a
    process of its own, which is killed before the DSO answers; the AGR restarted on the
    same store takes the answer: its archive knows the offer."""
    store = str(tmp_path / "agr.sqlite")
    port = free_port()
    agr_url = f"http://127.0.0.1:{port}/shapeshifter/api/v3/message"

    async def scenario() -> None:
        directory = Directory()
        dso = ShapeshifterDsoService(DSO, DSO_KEY, directory.key, directory.endpoint, port=0)
        release = asyncio.Event()

        async def on_offer(payload: dict[str, Any]) -> None:
            await asyncio.wait_for(release.wait(), WAIT)  # answer only once the AGR died
        dso.add_handler("FlexOffer", on_offer)
        directory.add(AGR, "AGR", AGR_PUBLIC, agr_url)
        async with dso:
            directory.add(DSO, "DSO", DSO_PUBLIC, dso.url)
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                [str(HERE), str(HERE.parent.parent), os.environ.get("PYTHONPATH", "")]))
            child = subprocess.Popen(
                [sys.executable, str(HERE / "agr_party.py"), store, str(port), dso.url,
                 DSO_PUBLIC, AGR_KEY], env=env, stdout=subprocess.PIPE,
                stderr=(tmp_path / "agr.log").open("w"), text=True)
            try:
                line = await asyncio.to_thread(read_line, child, time.monotonic() + WAIT)
                assert line.split()[0] == "sent", line
                offer_id = line.split()[1]
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=10)
            finally:
                child.kill()
            agr = ShapeshifterAgrService(AGR, AGR_KEY, directory.key, directory.endpoint,
                                         port=port, store=store)
            answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

            async def on_response(response: dict[str, Any]) -> None:
                await answers.put(response)
            agr.add_handler("FlexOfferResponse", on_response)
            async with agr:
                release.set()
                response = await asyncio.wait_for(answers.get(), WAIT)
        assert response["flex_offer_message_id"] == offer_id
        assert response["result"] == "Accepted"
    run(scenario(), timeout=90)
