"""A service whose app is mounted in another aiohttp application starts and stops with it:
its outbox, its recovery and its answers run from the application's own hooks."""
from __future__ import annotations


from aiohttp import web

import pyuftp
from pyuftp.discovery import Directory
from pyuftp.server.service import ShapeshifterAgrService, ShapeshifterDsoService

from conftest import run

DSO_KEY, DSO_PUBLIC = pyuftp.generate_keypair()
AGR_KEY, AGR_PUBLIC = pyuftp.generate_keypair()


def test_a_mounted_service_answers_without_being_started_by_hand():
    async def scenario():
        directory = Directory()
        dso = ShapeshifterDsoService("dso.example.com", DSO_KEY, directory.key,
                                     directory.endpoint)
        parent = web.Application()
        parent.add_subapp("/uftp/", dso.app)  # the user's own application and server
        runner = web.AppRunner(parent)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        agr = ShapeshifterAgrService("agr.example.com", AGR_KEY, directory.key,
                                     directory.endpoint, port=0)
        await agr.start()
        directory.add("dso.example.com", "DSO",
                      DSO_PUBLIC, f"http://127.0.0.1:{port}/uftp/shapeshifter/api/v3/message")
        directory.add("agr.example.com", "AGR", AGR_PUBLIC, agr.url)
        try:
            # Before, responses sat pending until outbox.start() was called by hand.
            sent, response = await agr.request("dso.example.com", "DSO", "TestMessage", {},
                                               timeout=10)
            assert response["conversation_id"] == sent["conversation_id"]
            assert dso.outbox.running
        finally:
            await agr.stop()
            await runner.cleanup()  # the application's cleanup stops the service's sending
        assert not dso.outbox.running
    run(scenario())
