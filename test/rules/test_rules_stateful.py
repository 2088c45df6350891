"""The stateful business rules: the messages a message names, looked up in a real archive.

Every case fills a real store's archive (in memory and SQLite) with the messages referred to,
built with ``pyuftp.create_message`` and read back with ``parse_message``, then checks one
message with all rules (``Rules().check_all``): a passing case must have no problem, a failing
one problems of exactly the rule under test. Then: the reply-spoofing scenario end to end over
real sockets on 127.0.0.1, and an archive that survives a restart.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import re
import uuid
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import pyuftp
from pyuftp.store.archiving import StoreLookups, entry, note_outcome
from pyuftp.signing.crypto import generate_keypair
from pyuftp.discovery import Directory
from pyuftp.signing.envelope import open_envelope, open_message, seal_message
from pyuftp.message.examples import EARLIER_ORDER_REFERENCE, ENVELOPES, MESSAGE_IDS, example
from pyuftp.rules import BUILT_IN, Context, Rules, Settings
from pyuftp.server.service import DEFAULT_PATH, ShapeshifterAgrService
from pyuftp.store import MemoryStore, SQLiteStore

from conftest import METADATA, run

RULES = "all"  # every business rule on (see conftest.business_rules)

UTC = dt.timezone.utc
AGR, AGR2 = "agr.example.com", "agr2.example.com"
DSO, DSO2 = "dso.example.com", "dso2.example.com"
OTHER_POINT = "ea1.2019-04.com.example.dso:cp-amersfoort-0007"
PROGNOSIS_1 = MESSAGE_IDS["D-Prognosis revision 1"]
DROP = object()  # a field to leave out

STATEFUL_IDS = sorted(r.id for r in BUILT_IN if r.stateful)


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    made = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "x.sqlite")
    yield made
    made.close()


def ids(problems: list[str]) -> set[str]:
    found = set()
    for text in problems:
        match = re.search(r"\[([^\[\]]+)\]$", text)
        assert match, text
        found.add(match.group(1))
    return found


def message(message_type: str, **fields: Any) -> tuple[dict[str, Any], bytes]:
    """The example ``message_type`` with ``fields`` changed (``DROP``: left out), as
    ``create_message`` renders it and ``parse_message`` reads it back: (payload, XML)."""
    payload = example(message_type)
    for key, value in fields.items():
        if value is DROP:
            payload.pop(key, None)
        else:
            payload[key] = value
    xml = pyuftp.create_message(message_type, payload).encode("utf-8")
    parsed_type, parsed = pyuftp.parse_message(xml)
    assert parsed_type == message_type
    return parsed, xml


class Party:
    """One party's archive in a real store, and checks of its messages against it."""

    def __init__(self, store, rules: Rules | None = None) -> None:
        self.archive = StoreLookups(store)
        self.rules = rules or Rules()

    async def put(self, direction: str, message_type: str, **fields: Any) -> dict[str, Any]:
        payload, xml = message(message_type, **fields)
        sender_role, recipient_role = ENVELOPES[message_type][:2]
        assert self.archive.store.archive(entry(direction, message_type, payload, xml, sender_role,
                                            recipient_role))
        return payload

    async def check(self, direction: str, message_type: str, now: dt.datetime | None = None,
                    **fields: Any) -> list[str]:
        payload, _ = message(message_type, **fields)
        counterparty = payload["sender_domain"] if direction == "in" else payload["recipient_domain"]
        ctx = Context(message_type, payload, direction, counterparty, now or payload["time_stamp"],
                      lookups=self.archive)
        return self.rules.check_all(ctx)


def scenario(store, steps) -> None:
    run(steps(Party(store)))


# --- response.answers_our_request --------------------------------------------------------------


def test_response_names_a_request_that_went_to_the_responder(store):
    async def steps(agr: Party) -> None:
        rule = {"response.answers_our_request"}
        assert ids(await agr.check("in", "FlexOfferResponse")) == rule  # no offer yet
        await agr.put("out", "FlexOffer")
        assert await agr.check("in", "FlexOfferResponse") == []
        assert await agr.check("in", "FlexOfferResponse", result="Rejected",
                               rejection_reason="too expensive") == []
        # the same id in another conversation
        other = await agr.check("in", "FlexOfferResponse", conversation_id=str(uuid.uuid4()))
        assert ids(other) == rule and "another conversation" in other[0]
        # a response naming a request that was never sent
        assert ids(await agr.check("in", "FlexOfferResponse",
                                   flex_offer_message_id=str(uuid.uuid4()))) == rule
    scenario(store, steps)


def test_response_from_a_party_that_was_not_asked(store):
    async def steps(agr: Party) -> None:
        await agr.put("out", "FlexOffer", recipient_domain=DSO2)  # the offer went to DSO 2
        problems = await agr.check("in", "FlexOfferResponse")     # DSO 1 answers it
        assert ids(problems) == {"response.answers_our_request"}
        assert DSO in problems[0]
        assert await agr.check("in", "FlexOfferResponse", sender_domain=DSO2) == []
    scenario(store, steps)


def test_test_message_response_is_found_by_its_conversation(store):
    async def steps(agr: Party) -> None:
        assert ids(await agr.check("in", "TestMessageResponse")) == {"response.answers_our_request"}
        await agr.put("out", "TestMessage")
        assert await agr.check("in", "TestMessageResponse") == []
        assert ids(await agr.check("in", "TestMessageResponse",
                                   conversation_id=str(uuid.uuid4()))) == {
            "response.answers_our_request"}
    scenario(store, steps)


def test_a_response_we_send_names_a_request_we_received(store):
    async def steps(dso: Party) -> None:
        # the DSO answers the AGR's D-Prognosis: it must have received it from that AGR
        assert ids(await dso.check("out", "D-PrognosisResponse", flex_order_statuses=DROP)) == {
            "response.answers_our_request"}
        await dso.put("in", "D-Prognosis")
        assert await dso.check("out", "D-PrognosisResponse", flex_order_statuses=DROP) == []
    scenario(store, steps)


# --- offer.request_exists ----------------------------------------------------------------------


async def _dso_with_prognosis(dso: Party) -> None:
    """The baseline D-Prognosis the example offer names, as the DSO received it."""
    await dso.put("in", "D-Prognosis", message_id=PROGNOSIS_1, revision=1,
                  time_stamp=dt.datetime(2026, 11, 23, 8, 0, tzinfo=UTC))


def test_offer_names_a_request_the_dso_sent(store):
    async def steps(dso: Party) -> None:
        await _dso_with_prognosis(dso)
        problems = await dso.check("in", "FlexOffer")  # the DSO never sent that request
        assert ids(problems) == {"offer.request_exists"}
        assert "names no FlexRequest" in problems[0]
        await dso.put("out", "FlexRequest")
        assert await dso.check("in", "FlexOffer") == []
        # unsolicited: nothing to look up
        assert await dso.check("in", "FlexOffer", unsolicited=True, flex_request_message_id=DROP) == []
    scenario(store, steps)


def test_offer_names_a_request_the_dso_sent_to_another_agr(store):
    async def steps(dso: Party) -> None:
        await _dso_with_prognosis(dso)
        await dso.put("out", "FlexRequest", recipient_domain=AGR2)
        assert ids(await dso.check("in", "FlexOffer")) == {"offer.request_exists"}
    scenario(store, steps)


def test_offer_to_one_dso_names_a_request_of_another_dso(store):
    async def steps(agr: Party) -> None:
        # the AGR's view: the request came from DSO 2, the offer goes to DSO 1
        await agr.put("out", "D-Prognosis", message_id=PROGNOSIS_1, revision=1)
        await agr.put("in", "FlexRequest", sender_domain=DSO2)
        problems = await agr.check("out", "FlexOffer")
        assert ids(problems) == {"offer.request_exists"}
        assert DSO in problems[0]
        await agr.put("in", "FlexRequest", sender_domain=DSO)
        assert await agr.check("out", "FlexOffer") == []
    scenario(store, steps)


def test_offer_for_an_expired_request(store):
    async def steps(dso: Party) -> None:
        await _dso_with_prognosis(dso)
        # the offer is sent at 09:40 UTC; the request expired at 09:30
        await dso.put("out", "FlexRequest",
                      expiration_date_time=dt.datetime(2026, 11, 23, 9, 30, tzinfo=UTC))
        problems = await dso.check("in", "FlexOffer")
        assert ids(problems) == {"offer.request_exists"} and "expired" in problems[0]
        assert await dso.check("in", "FlexOffer",
                               time_stamp=dt.datetime(2026, 11, 23, 9, 29, tzinfo=UTC)) == []
    scenario(store, steps)


def test_offer_for_another_day_or_no_requested_isp(store):
    async def steps(dso: Party) -> None:
        await _dso_with_prognosis(dso)
        request_isps = example("FlexRequest")["isps"]
        request_isps[1:3] = [{"disposition": "Requested", "min_power": -400_000,
                              "max_power": -150_000, "start": 69, "duration": 4}]
        await dso.put("out", "FlexRequest", isps=request_isps)
        assert await dso.check("in", "FlexOffer") == []
        wrong_day = await dso.check("in", "FlexOffer", period=dt.date(2026, 11, 25),
                                    expiration_date_time=dt.datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
        assert ids(wrong_day) == {"offer.request_exists"} and "period" in wrong_day[0]
        options = example("FlexOffer")["offer_options"][1:]
        options[0]["isps"] = [{"start": 80, "power": -150_000}]
        elsewhere = await dso.check("in", "FlexOffer", offer_options=options)
        assert ids(elsewhere) == {"offer.request_exists"}
        assert "covers none of the ISPs" in elsewhere[0]
    scenario(store, steps)


# --- prognosis.exists --------------------------------------------------------------------------


def test_offer_names_a_prognosis_the_agr_sent(store):
    async def steps(agr: Party) -> None:
        unsolicited = {"unsolicited": True, "flex_request_message_id": DROP}
        assert ids(await agr.check("out", "FlexOffer", **unsolicited)) == {"prognosis.exists"}
        await agr.put("out", "D-Prognosis", message_id=PROGNOSIS_1, revision=1, recipient_domain=DSO2)
        assert ids(await agr.check("out", "FlexOffer", **unsolicited)) == {"prognosis.exists"}
        await agr.put("out", "D-Prognosis", message_id=PROGNOSIS_1, revision=1)
        assert await agr.check("out", "FlexOffer", **unsolicited) == []
        # a baseline reference instead of a D-Prognosis: nothing to look up
        assert await agr.check("out", "FlexOffer", d_prognosis_message_id=DROP,
                               baseline_reference="BL-1", **unsolicited) == []
    scenario(store, steps)


def test_order_names_a_prognosis_the_dso_received(store):
    async def steps(dso: Party) -> None:
        await dso.put("in", "FlexOffer")
        assert ids(await dso.check("out", "FlexOrder")) == {"prognosis.exists"}
        await _dso_with_prognosis(dso)
        assert await dso.check("out", "FlexOrder") == []
    scenario(store, steps)


# --- order.offer_exists ------------------------------------------------------------------------


async def _agr_with_offer(agr: Party, **offer: Any) -> dict[str, Any]:
    """The AGR's archive: its baseline D-Prognosis and its offer, both sent to the DSO."""
    await agr.put("out", "D-Prognosis", message_id=PROGNOSIS_1, revision=1,
                  time_stamp=dt.datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    return await agr.put("out", "FlexOffer", **offer)


def test_order_names_an_offer_the_agr_sent(store):
    async def steps(agr: Party) -> None:
        await agr.put("out", "D-Prognosis", message_id=PROGNOSIS_1, revision=1)
        problems = await agr.check("in", "FlexOrder")
        assert ids(problems) == {"order.offer_exists"} and "names no FlexOffer" in problems[0]
        await agr.put("out", "FlexOffer")
        assert await agr.check("in", "FlexOrder") == []
    scenario(store, steps)


def test_order_names_an_offer_of_another_agr(store):
    async def steps(dso: Party) -> None:
        await _dso_with_prognosis(dso)
        await dso.put("in", "FlexOffer", sender_domain=AGR2)
        assert ids(await dso.check("out", "FlexOrder")) == {"order.offer_exists"}
    scenario(store, steps)


def test_order_names_a_revoked_offer(store):
    async def steps(agr: Party) -> None:
        await _agr_with_offer(agr)
        revocation = await agr.put("out", "FlexOfferRevocation",
                                   time_stamp=dt.datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
        problems = await agr.check("in", "FlexOrder")  # the revocation is not answered yet
        assert ids(problems) == {"order.offer_exists"} and "revoked" in problems[0]
        note_outcome(agr.archive.store, "out", DSO, revocation["message_id"], "Accepted")
        assert ids(await agr.check("in", "FlexOrder")) == {"order.offer_exists"}
        note_outcome(agr.archive.store, "out", DSO, revocation["message_id"], "Rejected")
        assert await agr.check("in", "FlexOrder") == []  # the revocation was refused
    scenario(store, steps)


def test_order_names_an_expired_offer(store):
    async def steps(agr: Party) -> None:
        await _agr_with_offer(agr, expiration_date_time=dt.datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
        problems = await agr.check("in", "FlexOrder")  # ordered at 10:05 UTC
        assert ids(problems) == {"order.offer_exists"} and "expired" in problems[0]
        assert await agr.check("in", "FlexOrder",
                               time_stamp=dt.datetime(2026, 11, 23, 9, 59, tzinfo=UTC)) == []
    scenario(store, steps)


# --- order.matches_offer -----------------------------------------------------------------------


def _order_isps(*powers: int) -> list[dict[str, Any]]:
    spans = [(69, None), (70, 2), (72, None)]
    return [{k: v for k, v in (("start", s), ("duration", d), ("power", p)) if v is not None}
            for (s, d), p in zip(spans, powers)]


@pytest.mark.parametrize("fields,words", [
    ({"price": Decimal("150.00")}, "price 150.00 is not the option's"),
    ({"isps": _order_isps(-160_000, -200_000)}, "ISPs are not the offer option's"),
    ({"isps": _order_isps(-160_000, -210_000, -160_000)}, "power of ISPs 70-71"),
    # 40 % of option A, ISPs and price scaled alike, but A may be called at 50 % at least
    ({"activation_factor": Decimal("0.40"), "price": Decimal("72.00"),
      "isps": _order_isps(-80_000, -100_000, -80_000)}, "below the option's min_activation_factor"),
    ({"option_reference": "C"}, "names no single option"),
    ({"currency": "USD"}, "currency USD is not the offer's"),
], ids=["price", "isps", "power", "activation-factor", "option", "currency"])
def test_order_does_not_match_the_offer(store, fields, words):
    async def steps(agr: Party) -> None:
        await _agr_with_offer(agr)
        assert await agr.check("in", "FlexOrder") == []  # 80 % of option A
        problems = await agr.check("in", "FlexOrder", **fields)
        assert ids(problems) == {"order.matches_offer"}, problems
        assert any(words in p for p in problems), problems
    scenario(store, steps)


def test_order_of_an_option_without_a_minimum_activation_factor(store):
    async def steps(agr: Party) -> None:
        await _agr_with_offer(agr)
        whole = {"option_reference": "B", "isps": [{"start": 69, "duration": 4, "power": -150_000}],
                 "price": Decimal("100.00"),
                 "activation_factor": Decimal("1.00")}
        assert await agr.check("in", "FlexOrder", **whole) == []
        half = dict(whole, activation_factor=Decimal("0.50"),
                    price=Decimal("50.00"),
                    isps=[{"start": 69, "duration": 4, "power": -75_000}])
        problems = await agr.check("in", "FlexOrder", **half)  # B's minimum is 1 (the default)
        assert ids(problems) == {"order.matches_offer"}
        assert "min_activation_factor" in problems[0]
    scenario(store, steps)


# --- revocation.offer_open ---------------------------------------------------------------------


def test_revocation_of_an_offer_that_has_an_order(store):
    async def steps(agr: Party) -> None:
        assert ids(await agr.check("out", "FlexOfferRevocation")) == {"revocation.offer_open"}
        await agr.put("out", "FlexOffer")
        assert await agr.check("out", "FlexOfferRevocation") == []
        order = await agr.put("in", "FlexOrder")
        problems = await agr.check("out", "FlexOfferRevocation")
        assert ids(problems) == {"revocation.offer_open"}
        assert "has an order already" in problems[0]
        note_outcome(agr.archive.store, "in", DSO, order["message_id"], "Rejected")  # we refused it
        assert await agr.check("out", "FlexOfferRevocation") == []
    scenario(store, steps)


def test_revocation_by_another_agr(store):
    async def steps(dso: Party) -> None:
        await dso.put("in", "FlexOffer")
        assert await dso.check("in", "FlexOfferRevocation") == []
        problems = await dso.check("in", "FlexOfferRevocation", sender_domain=AGR2)
        assert ids(problems) == {"revocation.offer_open"} and AGR2 in problems[0]
    scenario(store, steps)


# --- settlement.orders_exist, settlement.statuses_known ----------------------------------------


async def _dso_with_orders(dso: Party, recipient: str = AGR, first: bool = True,
                           second: bool = True) -> None:
    # the baseline D-Prognosis the settled orders name, received from the AGR the example
    # settlement goes to (#18: a settlement's references are followed too)
    if not dso.archive.find(AGR, PROGNOSIS_1, "in"):
        await dso.put("in", "D-Prognosis", message_id=PROGNOSIS_1, revision=1)
    if first:
        await dso.put("out", "FlexOrder", recipient_domain=recipient)
    if second:
        await dso.put("out", "FlexOrder", recipient_domain=recipient, message_id=str(uuid.uuid4()),
                      order_reference=EARLIER_ORDER_REFERENCE, period=dt.date(2026, 11, 12),
                      time_stamp=dt.datetime(2026, 11, 11, 15, 0, tzinfo=UTC))


def test_settlement_names_orders_sent_to_that_agr(store):
    async def steps(dso: Party) -> None:
        await _dso_with_orders(dso, second=False)
        problems = await dso.check("out", "FlexSettlement")
        assert ids(problems) == {"settlement.orders_exist"} and len(problems) == 1
        assert problems[0].startswith(f"flex_order_settlements[1]: order_reference "
                                      f"'{EARLIER_ORDER_REFERENCE}'")
        await _dso_with_orders(dso, first=False)
        assert await dso.check("out", "FlexSettlement") == []
    scenario(store, steps)


def test_settlement_names_orders_sent_to_another_agr(store):
    async def steps(dso: Party) -> None:
        await _dso_with_orders(dso, recipient=AGR2)
        problems = await dso.check("out", "FlexSettlement")
        assert ids(problems) == {"settlement.orders_exist"} and len(problems) == 2
    scenario(store, steps)


def test_settlement_response_judges_orders_of_the_settlement(store):
    async def steps(agr: Party) -> None:
        # no settlement received: the response rule says so, this one is silent
        assert ids(await agr.check("out", "FlexSettlementResponse")) == {"response.answers_our_request"}
        await agr.put("in", "FlexSettlement")
        assert await agr.check("out", "FlexSettlementResponse") == []
        statuses = example("FlexSettlementResponse")["flex_order_settlement_statuses"]
        statuses.append({"order_reference": "DSO-2026-11-9999", "disposition": "Accepted"})
        problems = await agr.check("out", "FlexSettlementResponse",
                                   flex_order_settlement_statuses=statuses)
        assert ids(problems) == {"settlement.statuses_known"}
        assert problems[0].startswith("flex_order_settlement_statuses[2]: order_reference "
                                      "'DSO-2026-11-9999' is not in the settlement")
    scenario(store, steps)


# --- revision.increases ------------------------------------------------------------------------


def test_request_revisions_only_increase(store):
    async def steps(dso: Party) -> None:
        await dso.put("out", "FlexRequest", message_id=str(uuid.uuid4()), revision=2,
                      time_stamp=dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
        for revision, fine in ((1, False), (2, False), (3, True)):
            problems = await dso.check("out", "FlexRequest", revision=revision)
            assert ids(problems) == (set() if fine else {"revision.increases"}), (revision, problems)
        # another congestion point, another day, another AGR: revisions of their own
        assert await dso.check("out", "FlexRequest", revision=1, congestion_point=OTHER_POINT) == []
        assert await dso.check("out", "FlexRequest", revision=1, period=dt.date(2026, 11, 25)) == []
        assert await dso.check("out", "FlexRequest", revision=1, recipient_domain=AGR2) == []
    scenario(store, steps)


def test_prognosis_revisions_only_increase(store):
    async def steps(agr: Party) -> None:
        await agr.put("out", "D-Prognosis", message_id=PROGNOSIS_1, revision=1,
                      time_stamp=dt.datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
        assert await agr.check("out", "D-Prognosis") == []  # revision 2
        sent = await agr.put("out", "D-Prognosis")
        # the message itself, checked again (a resend): not compared with itself
        assert await agr.check("out", "D-Prognosis", message_id=sent["message_id"]) == []
        problems = await agr.check("out", "D-Prognosis", message_id=str(uuid.uuid4()), revision=1)
        assert ids(problems) == {"revision.increases"} and "not above the 2" in problems[0]
    scenario(store, steps)


# --- congestion_point.known --------------------------------------------------------------------


def _portfolio_with(point: str) -> list[dict[str, Any]]:
    points = example("DSOPortfolioUpdate")["congestion_points"]
    points[0]["entity_address"] = point
    return points


def test_request_for_a_congestion_point_of_the_latest_portfolio(store):
    async def steps(dso: Party) -> None:
        # no portfolio archived: nothing to judge by
        assert await dso.check("out", "FlexRequest", congestion_point=OTHER_POINT) == []
        await dso.put("out", "DSOPortfolioUpdate")
        assert await dso.check("out", "FlexRequest") == []
        problems = await dso.check("out", "FlexRequest", congestion_point=OTHER_POINT)
        assert ids(problems) == {"congestion_point.known"}
        assert "not in the latest portfolio" in problems[0]
        # a later update replaces the congestion point: the old one is not known any more
        await dso.put("out", "DSOPortfolioUpdate", message_id=str(uuid.uuid4()),
                      congestion_points=_portfolio_with(OTHER_POINT),
                      time_stamp=dt.datetime(2026, 11, 20, 10, 0, tzinfo=UTC))
        assert await dso.check("out", "FlexRequest", congestion_point=OTHER_POINT) == []
        assert ids(await dso.check("out", "FlexRequest")) == {"congestion_point.known"}
    scenario(store, steps)


def test_offer_for_a_congestion_point_the_cro_named(store):
    async def steps(agr: Party) -> None:
        await agr.put("out", "D-Prognosis", message_id=PROGNOSIS_1, revision=1)
        await agr.put("in", "AGRPortfolioQueryResponse")
        unsolicited = {"unsolicited": True, "flex_request_message_id": DROP}
        assert await agr.check("out", "FlexOffer", **unsolicited) == []
        problems = await agr.check("out", "FlexOffer", congestion_point=OTHER_POINT,
                                   d_prognosis_message_id=DROP, **unsolicited)
        assert ids(problems) == {"congestion_point.known"}
    scenario(store, steps)


def test_declared_congestion_points_replace_the_portfolio(store):
    async def steps(dso: Party) -> None:
        dso.rules = Rules(settings=Settings(congestion_points={OTHER_POINT}))
        assert await dso.check("out", "FlexRequest", congestion_point=OTHER_POINT) == []
        problems = await dso.check("out", "FlexRequest")  # no portfolio needed to say no
        assert ids(problems) == {"congestion_point.known"}
        assert "not one declared known" in problems[0]
    scenario(store, steps)


#: Where each stateful rule gets its passing and its failing case.
CASES = {
    "response.answers_our_request": "test_response_names_a_request_that_went_to_the_responder",
    "offer.request_exists": "test_offer_names_a_request_the_dso_sent",
    "prognosis.exists": "test_offer_names_a_prognosis_the_agr_sent",
    "order.offer_exists": "test_order_names_an_offer_the_agr_sent",
    "order.matches_offer": "test_order_does_not_match_the_offer",
    "revocation.offer_open": "test_revocation_of_an_offer_that_has_an_order",
    "settlement.orders_exist": "test_settlement_names_orders_sent_to_that_agr",
    "settlement.statuses_known": "test_settlement_response_judges_orders_of_the_settlement",
    "revision.increases": "test_request_revisions_only_increase",
    "congestion_point.known": "test_request_for_a_congestion_point_of_the_latest_portfolio",
    # the references followed further (#18), over sockets: module.test
    "reference.same_conversation": "test_rules_references.test_a_reply_in_another_conversation",
    "offer.covers_request": "test_rules_references.test_an_offer_prices_every_requested_isp",
    "settlement.references_known":
        "test_rules_references.test_a_settlement_names_what_was_exchanged",
    "prognosis_response.orders_exist":
        "test_rules_references.test_a_prognosis_response_names_orders_that_went_between_us",
    "portfolio_response.period":
        "test_rules_references.test_a_portfolio_answer_is_for_the_period_asked",
}


def _case(name: str) -> Any:
    module, _, function = name.rpartition(".")
    return getattr(importlib.import_module(module), function, None) if module else globals().get(name)


def test_every_stateful_rule_has_cases():
    assert sorted(CASES) == STATEFUL_IDS
    assert all(callable(_case(name)) for name in CASES.values())


# --- the archive survives a restart ------------------------------------------------------------


def test_the_archive_survives_a_restart(tmp_path):
    path = tmp_path / "x.sqlite"

    async def fill() -> dict[str, Any]:
        store = SQLiteStore(path)
        try:
            agr = Party(store)
            await agr.put("out", "D-Prognosis", message_id=PROGNOSIS_1, revision=1)
            return await agr.put("out", "FlexOffer")
        finally:
            store.close()

    async def reopened(offer: dict[str, Any]) -> None:
        store = SQLiteStore(path)
        try:
            agr = Party(store)
            found = agr.archive.find(DSO, offer["message_id"], "out")
            assert found is not None
            assert (found.message_type, found.conversation_id) == ("FlexOffer", offer["conversation_id"])
            assert pyuftp.parse_message(found.payload_xml)[1] == offer
            assert found.references["flex_request_message_id"] == MESSAGE_IDS["FlexRequest"]
            assert agr.archive.find(DSO, PROGNOSIS_1, "out") is not None
            assert agr.archive.find(DSO, offer["message_id"], "in") is None
            assert await agr.check("in", "FlexOrder") == []  # the order's offer is still found
            assert ids(await agr.check("in", "FlexOrder", flex_offer_message_id=str(uuid.uuid4()))) == {
                "order.offer_exists"}
        finally:
            store.close()

    offer = run(fill())
    run(reopened(offer))


# --- reply spoofing, end to end ----------------------------------------------------------------

WAIT = 10.0


def fresh_offer() -> dict[str, Any]:
    """A FlexOffer for now, unsolicited (the AGR's archive has no request and no prognosis)."""
    payload = {k: v for k, v in example("FlexOffer", now=dt.datetime.now(UTC)).items()
               if k not in METADATA}
    payload.update(unsolicited=True)
    del payload["flex_request_message_id"], payload["d_prognosis_message_id"]
    return payload


class SilentDso:
    """An endpoint on 127.0.0.1 that answers 200 to every POST and nothing else."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> "SilentDso":
        app = web.Application()

        async def take(request: web.Request) -> web.Response:
            self.bodies.append(await request.read())
            return web.Response(status=200)
        app.router.add_post(DEFAULT_PATH, take)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://127.0.0.1:{port}{DEFAULT_PATH}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def message(self, number: int, public_key: str) -> dict[str, Any]:
        """The payload of the ``number``-th message received (1-based), once it is here."""
        for _ in range(int(WAIT / 0.02)):
            if len(self.bodies) >= number:
                return open_message(open_envelope(self.bodies[number - 1]), public_key).payload
            await asyncio.sleep(0.02)
        raise AssertionError(f"message {number} never reached the silent DSO")


def answer(offer: dict[str, Any], sender: str, key: str) -> bytes:
    payload = {"sender_domain": sender, "recipient_domain": AGR,
               "conversation_id": offer["conversation_id"],
               "flex_offer_message_id": offer["message_id"], "result": "Accepted"}
    return seal_message("FlexOfferResponse", payload, key, "DSO")[0]


async def post(http: aiohttp.ClientSession, url: str, data: bytes) -> int:
    async with http.post(url, data=data, headers={"Content-Type": "text/xml; charset=utf-8"},
                         timeout=aiohttp.ClientTimeout(total=WAIT)) as response:
        return response.status


@pytest.mark.parametrize("rules", [None, False], ids=["rules", "no-rules"])
def test_a_response_from_another_dso_does_not_settle_the_request(rules):
    async def scenario_() -> None:
        keys = {party: generate_keypair() for party in (AGR, DSO, DSO2)}
        directory = Directory()
        handled: list[dict[str, Any]] = []
        async with SilentDso() as dso:
            agr = ShapeshifterAgrService(AGR, keys[AGR][0], directory.key, directory.endpoint,
                                         port=0, rules=rules)

            async def on_response(payload: dict[str, Any]) -> None:
                handled.append(payload)
            agr.add_handler("FlexOfferResponse", on_response)
            async with agr, aiohttp.ClientSession() as http:
                directory.add(AGR, "AGR", keys[AGR][1], agr.url)
                directory.add(DSO, "DSO", keys[DSO][1], dso.url)
                directory.add(DSO2, "DSO", keys[DSO2][1], dso.url)

                # 1. only DSO 2 answers: the request is not settled, it times out
                waiting = asyncio.ensure_future(
                    agr.request(DSO, "DSO", "FlexOffer", fresh_offer(), timeout=2.0))
                offer = await dso.message(1, keys[AGR][1])
                assert offer["recipient_domain"] == DSO
                assert await post(http, agr.url, answer(offer, DSO2, keys[DSO2][0])) == 200
                assert await agr.drain(WAIT)
                with pytest.raises(asyncio.TimeoutError):
                    await waiting
                if rules is None:
                    assert handled == []  # rejected by response.answers_our_request

                # 2. DSO 2 answers first, then DSO 1: only DSO 1's answer settles it
                handled.clear()
                waiting = asyncio.ensure_future(
                    agr.request(DSO, "DSO", "FlexOffer", fresh_offer(), timeout=WAIT))
                offer = await dso.message(2, keys[AGR][1])
                assert await post(http, agr.url, answer(offer, DSO2, keys[DSO2][0])) == 200
                assert await agr.drain(WAIT)
                await asyncio.sleep(0.1)
                assert not waiting.done()
                if rules is None:
                    assert handled == []
                assert await post(http, agr.url, answer(offer, DSO, keys[DSO][0])) == 200
                sent, response = await asyncio.wait_for(waiting, WAIT)
                assert sent["message_id"] == offer["message_id"]
                assert response["sender_domain"] == DSO
                assert response["flex_offer_message_id"] == offer["message_id"]
                assert await agr.drain(WAIT)
                assert [p["sender_domain"] for p in handled if p["sender_domain"] == DSO] == [DSO]
                if rules is None:
                    assert [p["sender_domain"] for p in handled] == [DSO]
    run(scenario_())
