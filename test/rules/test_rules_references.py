"""The references a careful counterparty follows (#18), between real services over sockets.

A DSO, an AGR and a CRO service run on 127.0.0.1, each with a SQLite store. The messages a
message names are really exchanged first (a FlexRequest, its FlexOffer, the FlexOrder, a
D-Prognosis, a portfolio query), through the services' ``request(...)``; then the message
under test is sent, signed, and the judging party's answer says what its rules found. The
party that sends what breaks a rule runs with ``rules=False`` (it would refuse to send it);
the judging party has every rule on (``RULES = "all"``).
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pyuftp.discovery import Directory
from pyuftp.message.examples import example
from pyuftp.rules import DEFAULT_RULES
from pyuftp.server.service import (ShapeshifterAgrService, ShapeshifterCroService,
                                   ShapeshifterDsoService)
from pyuftp.signing.crypto import generate_keypair

from conftest import fresh, run

RULES = "all"  # every business rule on (see conftest.business_rules)

AGR, DSO, CRO = "agr.example.com", "dso.example.com", "cro.example.com"
WAIT = 15.0
SHORT = 2.0  # how long a response that the rules reject is waited for


def rejected_by(response: dict[str, Any], rule_id: str) -> bool:
    return response["result"] == "Rejected" and f"[{rule_id}]" in response["rejection_reason"]


class Market:
    """The three services, the directory that names them, and what their handlers saw."""

    def __init__(self, tmp_path: Path, lax: tuple[str, ...]) -> None:
        self.tmp_path, self.lax = tmp_path, lax
        self.prognosis_answer: dict[str, Any] = {}
        self.portfolio_answer: dict[str, Any] = {}
        self.handled: list[tuple[str, dict[str, Any]]] = []
        self.agr: Any = None
        self.dso: Any = None
        self.cro: Any = None

    def _seen(self, message_type: str, answer: Any = None) -> Any:
        async def handler(payload: dict[str, Any]) -> Any:
            self.handled.append((message_type, payload))
            return answer(payload) if callable(answer) else answer
        return handler

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Market]:
        directory = Directory()
        keys = {role: generate_keypair() for role in ("AGR", "DSO", "CRO")}
        made = {}
        for role, domain, kind in (("AGR", AGR, ShapeshifterAgrService),
                                   ("DSO", DSO, ShapeshifterDsoService),
                                   ("CRO", CRO, ShapeshifterCroService)):
            made[role] = kind(domain, keys[role][0], directory.key, directory.endpoint, port=0,
                              store=self.tmp_path / f"{role}.sqlite",
                              rules=False if role in self.lax else None)
        self.agr, self.dso, self.cro = made["AGR"], made["DSO"], made["CRO"]
        for message_type in ("FlexRequest", "FlexOrder", "D-PrognosisResponse",
                             "AGRPortfolioQueryResponse"):
            self.agr.add_handler(message_type, self._seen(message_type))
        self.agr.add_handler("FlexSettlement", self._seen("FlexSettlement", lambda p: {
            "flex_order_settlement_statuses": [
                {"order_reference": s["order_reference"], "disposition": "Accepted"}
                for s in p["flex_order_settlements"]]}))
        for message_type in ("FlexOffer", "DSOPortfolioQueryResponse"):
            self.dso.add_handler(message_type, self._seen(message_type))
        self.dso.add_handler("D-Prognosis", self._seen("D-Prognosis",
                                                       lambda _: self.prognosis_answer))
        self.cro.add_handler("AGRPortfolioQuery", self._seen("AGRPortfolioQuery",
                                                             lambda _: self.portfolio_answer))
        self.cro.add_handler("DSOPortfolioQuery", self._seen("DSOPortfolioQuery",
                                                             lambda _: self.portfolio_answer))
        async with self.agr, self.dso, self.cro:
            for role, domain, service in (("AGR", AGR, self.agr), ("DSO", DSO, self.dso),
                                          ("CRO", CRO, self.cro)):
                directory.add(domain, role, keys[role][1], service.url)
            yield self

    # --- the exchanges -------------------------------------------------------------------------

    async def flex_request(self) -> dict[str, Any]:
        sent, response = await self.dso.request(AGR, "AGR", "FlexRequest", fresh("FlexRequest"),
                                                WAIT)
        assert response["result"] == "Accepted", response
        return sent

    async def offer(self, request: dict[str, Any], **fields: Any) -> tuple[dict, dict]:
        payload = fresh("FlexOffer", flex_request_message_id=request["message_id"],
                        conversation_id=request["conversation_id"])
        payload.pop("d_prognosis_message_id")  # no D-Prognosis named: the offer's baseline
        payload.update(baseline_reference="BL-1")
        payload.update(fields)
        return await self.agr.request(DSO, "DSO", "FlexOffer", payload, WAIT)

    async def order(self, offer: dict[str, Any], **fields: Any) -> tuple[dict, dict]:
        payload = fresh("FlexOrder", flex_offer_message_id=offer["message_id"],
                        conversation_id=offer["conversation_id"], baseline_reference="BL-1")
        payload.pop("d_prognosis_message_id")
        payload.update(fields)
        return await self.dso.request(AGR, "AGR", "FlexOrder", payload, WAIT)

    async def ordered(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """A FlexRequest, its FlexOffer and a FlexOrder of it, each accepted: (offer, order)."""
        offer, answer = await self.offer(await self.flex_request())
        assert answer["result"] == "Accepted", answer
        order, answer = await self.order(offer)
        assert answer["result"] == "Accepted", answer
        return offer, order


def market_run(tmp_path: Path, lax: tuple[str, ...], steps: Any) -> None:
    async def scenario() -> None:
        async with Market(tmp_path, lax).running() as market:
            await steps(market)
    run(scenario(), timeout=120)


# --- reference.same_conversation ---------------------------------------------------------------


@pytest.mark.parametrize("judge", ["DSO", "AGR"], ids=["offer-at-dso", "order-at-agr"])
def test_a_reply_in_another_conversation(tmp_path, judge):
    async def steps(market: Market) -> None:
        request = await market.flex_request()
        if judge == "DSO":  # an offer naming the real request, in a conversation of its own
            _, answer = await market.offer(request, conversation_id=str(uuid.uuid4()))
            assert rejected_by(answer, "reference.same_conversation"), answer
            assert request["conversation_id"] in answer["rejection_reason"]
            # left out, the conversation is the request's: the sender fills it in
            sent, answer = await market.offer(request, conversation_id=None)
            assert answer["result"] == "Accepted", answer
            assert sent["conversation_id"] == request["conversation_id"]
        else:
            offer, answer = await market.offer(request)
            assert answer["result"] == "Accepted", answer
            _, answer = await market.order(offer, conversation_id=str(uuid.uuid4()))
            assert rejected_by(answer, "reference.same_conversation"), answer
            sent, answer = await market.order(offer, conversation_id=None)
            assert answer["result"] == "Accepted", answer
            assert sent["conversation_id"] == offer["conversation_id"]
    market_run(tmp_path, ("AGR",) if judge == "DSO" else ("DSO",), steps)


# --- offer.covers_request ----------------------------------------------------------------------


def test_an_offer_prices_every_requested_isp(tmp_path):
    # The example request marks ISPs 69-72 Requested (as 69-70 and 71-72); option A prices
    # them as 69, 70-71, 72, option B as 69-72.
    async def steps(market: Market) -> None:
        request = await market.flex_request()
        options = example("FlexOffer")["offer_options"]
        partial = [dict(options[1], isps=[{"start": 69, "duration": 2, "power": -150_000}])]
        _, answer = await market.offer(request, offer_options=partial)
        assert rejected_by(answer, "offer.covers_request"), answer
        assert "requested ISPs 71-72" in answer["rejection_reason"]
        _, answer = await market.offer(request)  # both options price 69-72
        assert answer["result"] == "Accepted", answer
        DEFAULT_RULES.settings.partial_offers = True  # several offers for one request
        try:
            _, answer = await market.offer(request, offer_options=partial)
            assert answer["result"] == "Accepted", answer
        finally:
            DEFAULT_RULES.settings.partial_offers = False
    market_run(tmp_path, ("AGR",), steps)


# --- order.offer_exists: the receiver's clock ---------------------------------------------------


def test_an_order_stamped_before_the_offer_expired_but_received_after(tmp_path):
    async def steps(market: Market) -> None:
        request = await market.flex_request()
        expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)
        offer, answer = await market.offer(request, expiration_date_time=expires)
        assert answer["result"] == "Accepted", answer
        await asyncio.sleep(max(0.0, (expires - dt.datetime.now(dt.timezone.utc))
                                .total_seconds()) + 0.5)
        # stamped two seconds before the offer expired, sent after it
        _, answer = await market.order(offer, time_stamp=expires - dt.timedelta(seconds=2))
        assert rejected_by(answer, "order.offer_exists"), answer
        assert "expired" in answer["rejection_reason"]
    market_run(tmp_path, ("DSO",), steps)


# --- settlement.references_known ---------------------------------------------------------------


def test_a_settlement_names_what_was_exchanged(tmp_path):
    async def steps(market: Market) -> None:
        prognosis = fresh("D-Prognosis", revision=1)
        sent_prognosis, answer = await market.agr.request(DSO, "DSO", "D-Prognosis", prognosis,
                                                          WAIT)
        assert answer["result"] == "Accepted", answer
        _, order = await market.ordered()

        async def settle(**fields: Any) -> dict[str, Any]:
            payload = fresh("FlexSettlement")
            settled = dict(payload["flex_order_settlements"][0],
                           order_reference=order["order_reference"], period=order["period"],
                           d_prognosis_message_id=sent_prognosis["message_id"])
            settled.update(fields)
            payload.update(flex_order_settlements=[settled],
                           period_start=order["period"] - dt.timedelta(days=3),
                           period_end=order["period"] + dt.timedelta(days=3))
            market.handled.clear()
            _, answer = await market.dso.request(AGR, "AGR", "FlexSettlement", payload, WAIT)
            return answer

        fine = await settle()
        assert fine["result"] == "Accepted", fine
        never = await settle(period=order["period"] + dt.timedelta(days=1))
        assert rejected_by(never, "settlement.references_known"), never
        assert "was never ordered" in never["rejection_reason"]
        assert not [t for t, _ in market.handled if t == "FlexSettlement"]
        unknown = await settle(d_prognosis_message_id=str(uuid.uuid4()))
        assert rejected_by(unknown, "settlement.references_known"), unknown
        assert "names no D-Prognosis" in unknown["rejection_reason"]
        settings = DEFAULT_RULES.settings
        settings.congestion_points = {order["congestion_point"]}
        settings.contracts, settings.baseline_references = {order["contract_id"]}, {"BL-1"}
        try:
            assert (await settle())["result"] == "Accepted"
            wrong = await settle(congestion_point="ea1.2019-04.com.example.dso:cp-x",
                                 contract_id="BC-X", baseline_reference="BL-X")
            assert rejected_by(wrong, "settlement.references_known"), wrong
            for words in ("congestion_point ea1.2019-04.com.example.dso:cp-x",
                          "contract_id 'BC-X'", "baseline_reference 'BL-X'"):
                assert words in wrong["rejection_reason"], wrong
        finally:
            settings.congestion_points = settings.contracts = None
            settings.baseline_references = None
    market_run(tmp_path, ("DSO",), steps)


# --- prognosis_response.orders_exist -----------------------------------------------------------


def test_a_prognosis_response_names_orders_that_went_between_us(tmp_path, caplog):
    async def steps(market: Market) -> None:
        _, order = await market.ordered()
        statuses = [{"flex_order_message_id": order["message_id"], "is_validated": True}]
        market.prognosis_answer = {"flex_order_statuses": statuses}
        _, answer = await market.agr.request(DSO, "DSO", "D-Prognosis",
                                             fresh("D-Prognosis", revision=1), WAIT)
        assert answer["result"] == "Accepted" and answer["flex_order_statuses"] == statuses
        made_up = str(uuid.uuid4())
        market.prognosis_answer = {"flex_order_statuses": statuses + [
            {"flex_order_message_id": made_up, "is_validated": False}]}
        market.handled.clear()
        with caplog.at_level(logging.WARNING, logger="pyuftp"):
            with pytest.raises(asyncio.TimeoutError):  # the rejected answer settles nothing
                await market.agr.request(DSO, "DSO", "D-Prognosis",
                                         fresh("D-Prognosis", revision=2), SHORT)
        assert not [t for t, _ in market.handled if t == "D-PrognosisResponse"]
        # the warning names the problem (cut to its first words): the made-up order's status
        assert any("rejecting D-PrognosisResponse" in r.getMessage() and
                   "1 problem: flex_order_statuses[1]: flex_order_message_id " + made_up[:8]
                   in r.getMessage() for r in caplog.records), caplog.text[-2000:]
    market_run(tmp_path, ("DSO",), steps)


# --- portfolio_response.period -----------------------------------------------------------------


def test_a_portfolio_answer_is_for_the_period_asked(tmp_path, caplog):
    async def steps(market: Market) -> None:
        day = fresh("AGRPortfolioQuery")["period"]
        views = {"dso_views": fresh("AGRPortfolioQueryResponse")["dso_views"]}
        market.portfolio_answer = dict(views, period=day)
        _, answer = await market.agr.request(CRO, "CRO", "AGRPortfolioQuery",
                                             fresh("AGRPortfolioQuery"), WAIT)
        assert answer["result"] == "Accepted" and answer["period"] == day
        market.portfolio_answer = dict(views, period=day + dt.timedelta(days=1))
        with caplog.at_level(logging.WARNING, logger="pyuftp"):
            with pytest.raises(asyncio.TimeoutError):
                await market.agr.request(CRO, "CRO", "AGRPortfolioQuery",
                                         fresh("AGRPortfolioQuery"), SHORT)
            point = {"congestion_point": fresh("DSOPortfolioQueryResponse")["congestion_point"]}
            market.portfolio_answer = dict(point, period=day)
            _, answer = await market.dso.request(CRO, "CRO", "DSOPortfolioQuery",
                                                 fresh("DSOPortfolioQuery"), WAIT)
            assert answer["result"] == "Accepted" and answer["period"] == day
            market.portfolio_answer = dict(point, period=day - dt.timedelta(days=1))
            with pytest.raises(asyncio.TimeoutError):
                await market.dso.request(CRO, "CRO", "DSOPortfolioQuery",
                                         fresh("DSOPortfolioQuery"), SHORT)
        found = [r.getMessage() for r in caplog.records if "1 problem: period" in r.getMessage()]
        assert any("rejecting AGRPortfolioQueryResponse" in text for text in found), found
        assert any("rejecting DSOPortfolioQueryResponse" in text for text in found), found
    market_run(tmp_path, ("CRO",), steps)
