"""Two parties in one process, without sockets (#17.3): the loopback poster hands bytes
straight to the other party's inbox with the HTTP statuses a service gives, and ``pair``
wires two parties to each other."""
from __future__ import annotations

import pytest

from pyuftp.signing.crypto import generate_keypair
from pyuftp.exceptions import FinalDeliveryError, Rejected, TemporaryDeliveryError
from pyuftp.receiving.loopback import LoopbackPoster, pair
from pyuftp.signing.envelope import seal_message

from conftest import fresh, run

AGR_KEYS, OTHER_KEYS = generate_keypair(), generate_keypair()
DSO = {"domain": "dso.example.com", "role": "DSO"}
AGR = {"domain": "agr.example.com", "role": "AGR", "keypair": AGR_KEYS}


def test_a_request_gets_its_response_through_the_other_partys_inbox():
    async def scenario():
        async with pair(DSO, AGR) as (dso, agr):
            def dear(offer):
                raise Rejected("too dear")
            dso.on("FlexOffer", dear)
            sent, response = await agr.request("dso.example.com", "DSO", "FlexOffer",
                                               fresh("FlexOffer"), timeout=10)
            assert response["flex_offer_message_id"] == sent["message_id"]
            assert (response["result"], response["rejection_reason"]) == ("Rejected",
                                                                          "too dear")
            # both ways went through the poster, each answered 200
            assert [status for _, status in agr.poster.posts] == [200, 200]
            # the request's archived outcome was noted from the response
            entry = agr.store.find("dso.example.com", sent["message_id"], "out")
            assert entry.outcome == "Rejected"
    run(scenario())


def test_the_statuses_of_a_service_become_the_posters_failures():
    async def scenario():
        async with pair(DSO, AGR) as (dso, agr):
            poster = agr.poster
            with pytest.raises(FinalDeliveryError) as bad:
                await poster.post_once(b"<SignedMessage/>", dso.url)
            assert bad.value.status == 400
            payload = fresh("FlexOffer", sender_domain="agr.example.com",
                            recipient_domain="dso.example.com")
            forged = seal_message("FlexOffer", payload, OTHER_KEYS[0], "AGR")[0]
            with pytest.raises(FinalDeliveryError) as unsigned:
                await poster.post_once(forged, dso.url)
            assert unsigned.value.status == 401
            with pytest.raises(FinalDeliveryError) as big:
                await poster.post_once(b"x" * (dso.exchange.max_body + 1), dso.url)
            assert big.value.status == 413
            with pytest.raises(TemporaryDeliveryError):
                await poster.post_once(b"<x/>", "http://nobody.example.com/loopback/DSO")
    run(scenario())


def test_a_store_that_cannot_record_is_a_temporary_503():
    async def scenario():
        async with pair(DSO, AGR) as (dso, agr):
            payload = fresh("FlexOffer", sender_domain="agr.example.com",
                            recipient_domain="dso.example.com")
            data = seal_message("FlexOffer", payload, AGR_KEYS[0], "AGR")[0]
            dso.store.close()  # the store is gone: nothing can be recorded
            with pytest.raises(TemporaryDeliveryError) as caught:
                await agr.poster.post_once(data, dso.url)
            assert caught.value.status == 503 and caught.value.retry_after == 5
    run(scenario())


def test_a_posted_message_is_handled_once_and_a_resend_dropped():
    async def scenario():
        async with pair(DSO, AGR) as (dso, agr):
            seen, answers = [], []
            dso.on("FlexOffer", lambda offer: seen.append(offer["message_id"]))
            agr.on("FlexOfferResponse", lambda response: answers.append(response))
            payload = fresh("FlexOffer", sender_domain="agr.example.com",
                            recipient_domain="dso.example.com")
            data, sent = seal_message("FlexOffer", payload, AGR_KEYS[0], "AGR")
            for _ in range(3):
                await agr.poster.post_once(data, dso.url)
            assert await dso.drain(10) and await agr.drain(10)
            assert seen == [sent["message_id"]]
            assert [a["flex_offer_message_id"] for a in answers] == [sent["message_id"]]
    run(scenario())


def test_a_users_async_rule_is_awaited_on_receipt_after_the_sync_ones():
    from pyuftp.rules import Rules

    rules = Rules(rules=[])
    looked: list[str] = []

    @rules.rule("offer.known_elsewhere", ["FlexOffer"], "asks another system")
    async def known_elsewhere(ctx):
        # the look-ups are the core's sync ones, also for an async rule
        looked.append(type(ctx.lookups).__name__)
        return ["not known elsewhere"]

    async def scenario():
        async with pair(dict(DSO, rules=rules), AGR) as (dso, agr):
            dso.on("FlexOffer", lambda offer: None)
            _, response = await agr.request("dso.example.com", "DSO", "FlexOffer",
                                            fresh("FlexOffer"), timeout=10)
            assert response["result"] == "Rejected"
            assert "not known elsewhere [offer.known_elsewhere]" in response["rejection_reason"]
    run(scenario())
    assert looked == ["StoreLookups"]
