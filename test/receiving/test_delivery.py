"""Duplicate defence, the time-stamp window, restarts with a store, and conversations."""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery import Directory
from pyuftp.signing.envelope import seal_message
from pyuftp.receiving.loopback import pair as loopback_pair
from pyuftp.server.service import Rejected, ShapeshifterAgrService

from conftest import fresh, run

WAIT = 10.0


class Pair:
    """A DSO and an AGR wired to each other in-process (pyuftp.receiving.loopback: no
    sockets, the same HTTP statuses); the AGR's received messages are queued."""

    def __init__(self, dso_store=None, agr_store=None, keys=None, **dso_options: Any) -> None:
        self.directory = Directory()
        self.keys = keys or {"DSO": generate_keypair(), "AGR": generate_keypair()}
        self.dso_options = dict(dso_options, store=dso_store if dso_store is not None
                                else "memory:")
        self.agr_store = agr_store
        self.handled: list[str] = []  # message ids the DSO's FlexOffer handler saw
        self.at_agr: asyncio.Queue = asyncio.Queue()

    async def __aenter__(self) -> "Pair":
        agr_store = self.agr_store if self.agr_store is not None else "memory:"
        self._pair = loopback_pair(
            {"domain": "dso.example.com", "role": "DSO", "keypair": self.keys["DSO"],
             **self.dso_options},
            {"domain": "agr.example.com", "role": "AGR", "keypair": self.keys["AGR"],
             "store": agr_store})
        self.dso, self.agr = await self._pair.__aenter__()
        self.dso.on("FlexOffer", lambda offer: self.handled.append(offer["message_id"]))

        async def at_agr(payload):
            await self.at_agr.put(payload)
        self.agr.on("FlexOfferResponse", at_agr)
        self.agr.on("TestMessageResponse", at_agr)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._pair.__aexit__(*exc)

    async def post(self, data: bytes) -> None:
        await self.agr.courier.poster.post_once(data, self.dso.url)  # the raw bytes, as sent

    def offer(self, **fields: Any) -> tuple[bytes, dict[str, Any]]:
        payload = fresh("FlexOffer", sender_domain="agr.example.com",
                        recipient_domain="dso.example.com", **fields)
        return seal_message("FlexOffer", payload, self.keys["AGR"][0], "AGR")

    async def response(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.at_agr.get(), WAIT)


def test_identical_resend_is_answered_but_not_handled_again():
    async def scenario():
        async with Pair() as pair:
            data, sent = pair.offer()
            await pair.post(data)
            first = await pair.response()
            await pair.post(data)  # a sender retrying after a lost HTTP 200
            await pair.post(data)
            await pair.dso.drain(WAIT)
            assert pair.handled == [sent["message_id"]]
            assert first["result"] == "Accepted"
            assert pair.at_agr.empty()  # answered once
    run(scenario())


def test_same_id_with_other_content_is_rejected():
    async def scenario():
        async with Pair() as pair:
            data, sent = pair.offer()
            await pair.post(data)
            await pair.response()
            other, _ = pair.offer(message_id=sent["message_id"], currency="USD")
            await pair.post(other)
            response = await pair.response()
            assert response["result"] == "Rejected"
            assert "duplicate message id" in response["rejection_reason"]
            assert response["flex_offer_message_id"] == sent["message_id"]
            assert pair.handled == [sent["message_id"]]
    run(scenario())


@pytest.mark.parametrize("shift,reason", [(dt.timedelta(hours=-25), "older than"),
                                          (dt.timedelta(hours=1), "in the future")])
def test_time_stamp_outside_the_window_is_rejected(shift, reason):
    async def scenario():
        async with Pair() as pair:
            stamp = dt.datetime.now(dt.timezone.utc) + shift
            data, _ = pair.offer(time_stamp=stamp)
            await pair.post(data)
            response = await pair.response()
            assert response["result"] == "Rejected"
            assert reason in response["rejection_reason"]
            assert pair.handled == []
    run(scenario())


def test_the_window_is_configurable():
    async def scenario():
        async with Pair(max_age=60.0) as pair:
            data, _ = pair.offer(time_stamp=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5))
            await pair.post(data)
            assert "older than 60 s" in (await pair.response())["rejection_reason"]
    run(scenario())


def test_no_second_handling_after_a_restart_with_a_store(tmp_path):
    store = tmp_path / "dso.sqlite"
    keys = {"DSO": generate_keypair(), "AGR": generate_keypair()}

    async def scenario():
        async with Pair(dso_store=store, keys=keys) as pair:
            data, sent = pair.offer()
            await pair.post(data)
            await pair.response()
            handled_before = list(pair.handled)
        async with Pair(dso_store=store, keys=keys) as pair:  # the DSO restarted
            await pair.post(data)
            await pair.dso.drain(WAIT)
            assert pair.handled == []  # the new process saw it as already handled
            other, _ = pair.offer(message_id=sent["message_id"], currency="USD")
            await pair.post(other)
            response = await pair.response()
            assert "duplicate message id" in response["rejection_reason"]
        assert handled_before == [sent["message_id"]]
    run(scenario())


def test_request_awaits_the_business_response():
    async def scenario():
        async with Pair() as pair:
            def refuse_usd(offer):
                if offer["currency"] != "EUR":
                    raise Rejected("EUR only")
            pair.dso.on("FlexOffer", refuse_usd)
            sent, response = await pair.agr.request("dso.example.com", "DSO", "FlexOffer",
                                                    fresh("FlexOffer", currency="USD"))
            assert response["flex_offer_message_id"] == sent["message_id"]
            assert response["conversation_id"] == sent["conversation_id"]
            assert (response["result"], response["rejection_reason"]) == ("Rejected", "EUR only")
            # the response also reached the AGR's handler
            assert (await pair.response())["message_id"] == response["message_id"]
            sent, response = await pair.agr.request("dso.example.com", "DSO", "TestMessage",
                                                    fresh("TestMessage"))
            assert response["conversation_id"] == sent["conversation_id"]
    run(scenario())


def test_request_times_out_when_no_answer_comes():
    async def scenario():
        directory = Directory()
        agr_key, agr_public = generate_keypair()
        agr = ShapeshifterAgrService("agr.example.com", agr_key, directory.key, directory.endpoint,
                                     port=0)
        async with agr:
            directory.add("agr.example.com", "AGR", agr_public, agr.url)
            # a DSO that is down: the request stays queued for retry, the wait times out
            directory.add("dso.example.com", "DSO", generate_keypair()[1], "http://127.0.0.1:9/x")
            with pytest.raises(asyncio.TimeoutError):
                await agr.request("dso.example.com", "DSO", "FlexOffer", fresh("FlexOffer"),
                                  timeout=0.5)
            assert agr.outbox.store.outgoing("pending")  # not lost: still to be delivered
    run(scenario())


def test_a_flood_waits_for_room_instead_of_piling_up():
    """With max_pending=2 and a handler that is stuck, the third request gets no 200 until a
    handler finishes: back-pressure on the senders, bounded memory in the service."""
    async def scenario():
        async with Pair(max_pending=2) as pair:
            release = asyncio.Event()
            seen: list[str] = []

            async def slow(offer):
                seen.append(offer["message_id"])
                await release.wait()
            pair.dso.on("FlexOffer", slow)
            offers = [pair.offer() for _ in range(6)]
            posts = [asyncio.ensure_future(pair.post(data)) for data, _ in offers]
            for _ in range(200):  # bounded: until the two slots are taken
                if len(seen) == 2:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            assert len(seen) == 2
            assert sum(post.done() for post in posts) == 2  # the rest wait for their 200
            release.set()
            await asyncio.wait_for(asyncio.gather(*posts), WAIT)
            assert await pair.dso.drain(WAIT)
            assert sorted(seen) == sorted(sent["message_id"] for _, sent in offers)
    run(scenario())


def test_old_received_records_are_forgotten(tmp_path):
    from pyuftp.store import SQLiteStore
    path = tmp_path / "dso.sqlite"
    store = SQLiteStore(path)
    long_ago = dt.datetime.now(dt.timezone.utc).timestamp() - 3 * 86400
    store.record_received("agr.example.com", "old-id", "digest", b"", long_ago)
    store.mark_handled("agr.example.com", "old-id")
    store.record_received("agr.example.com", "recent-id", "digest", b"", long_ago + 2 * 86400)
    store.mark_handled("agr.example.com", "recent-id")
    store.close()

    async def scenario():
        async with Pair(dso_store=path) as pair:  # max_age 24 h: keeps about 25 h
            data, sent = pair.offer()
            await pair.post(data)
            await pair.response()
            kept = pair.dso.store
            assert kept.record_received("agr.example.com", "old-id", "other", b"", 0.0) == "new"
            assert kept.record_received("agr.example.com", "recent-id", "other", b"", 0.0) == "conflict"
            assert kept.record_received("agr.example.com", sent["message_id"], "x", b"", 0.0) == "conflict"
    run(scenario())
