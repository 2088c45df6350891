"""``pyuftp demo``: a complete UFTP trading cycle between a DSO, an AGR and a CRO.

Three services start on 127.0.0.1 with freshly generated keys, each knowing the others
through a :class:`~pyuftp.discovery.Directory`. Then every message of the protocol is sent for
real (signed, POSTed, verified, validated, handled) and every one is answered by the
receiving service's automatic ``...Response``. The demo exits 0 only if all of them arrive.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import pprint
import sys
import time
from typing import Any

from ..message.catalog import response_type
from ..signing.crypto import generate_keypair
from ..discovery import Directory
from ..message.examples import example
from ..server.service import SERVICES, ShapeshifterService

DOMAINS = {"DSO": "dso.example.com", "AGR": "agr.example.com", "CRO": "cro.example.com"}
METADATA = ("version", "message_id", "conversation_id", "time_stamp", "sender_domain",
            "recipient_domain")
TIMEOUT = 10.0


class Cycle:
    """The three parties, and the bookkeeping that pairs each request with its response."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.directory = Directory()
        self.services: dict[str, ShapeshifterService] = {}
        self.exchanges = 0

    def show(self, arrow: str, message_type: str, sender: str, recipient: str,
             payload: dict[str, Any]) -> None:
        if self.quiet:
            return
        print(f"{arrow} {message_type}: {DOMAINS[sender]} ({sender}) -> "
              f"{DOMAINS[recipient]} ({recipient})")
        print("  " + pprint.pformat(payload, width=100, sort_dicts=True).replace("\n", "\n  "))
        print()

    async def start(self) -> None:
        for role, cls in SERVICES.items():
            private_key, public_key = generate_keypair()
            service = cls(DOMAINS[role], private_key, self.directory.key, self.directory.endpoint,
                          port=0)
            await service.start()
            self.directory.add(DOMAINS[role], role, public_key, service.url)
            self.services[role] = service
        self._install_handlers()

    async def stop(self) -> None:
        for service in self.services.values():
            await service.stop()

    def _install_handlers(self) -> None:
        for service in self.services.values():
            for message_type in service.accepted_types:
                # Responses are awaited by `request`; requests handled without complaint are
                # answered Accepted.
                service.add_handler(message_type, lambda payload: None)
        # The business side of each party: what it answers beyond "Accepted".
        cro, agr = self.services["CRO"], self.services["AGR"]
        cro.add_handler("AGRPortfolioQuery", self._agr_portfolio)
        cro.add_handler("DSOPortfolioQuery", self._dso_portfolio)
        agr.add_handler("FlexSettlement", self._settle)

    @staticmethod
    def _agr_portfolio(query: dict[str, Any]) -> dict[str, Any]:
        reply = example("AGRPortfolioQueryResponse")
        return {"dso_views": reply["dso_views"]}

    @staticmethod
    def _dso_portfolio(query: dict[str, Any]) -> dict[str, Any]:
        reply = example("DSOPortfolioQueryResponse")
        return {"congestion_point": reply["congestion_point"]}

    @staticmethod
    def _settle(settlement: dict[str, Any]) -> dict[str, Any]:
        statuses = [{"order_reference": order["order_reference"], "disposition": "Accepted"}
                    for order in settlement["flex_order_settlements"]
                    if "order_reference" in order]
        return {"flex_order_settlement_statuses": statuses}

    async def exchange(self, sender: str, recipient: str, message_type: str,
                       **fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send an example ``message_type`` (with ``fields`` changed) and await its response."""
        # The story of the examples, moved to now: its offers have not expired, its days
        # are today or later, as the business rules on both sides demand.
        fresh = example(message_type, now=dt.datetime.now(dt.timezone.utc))
        payload = {k: v for k, v in fresh.items() if k not in METADATA}
        payload.update(fields)
        # the inbox's request: the type is a str here, not one of the typed overloads' literals
        sent, response = await self.services[sender].inbox.request(
            DOMAINS[recipient], recipient, message_type, payload, TIMEOUT)
        self.show("->", message_type, sender, recipient, sent)
        self.show("<-", str(response_type(message_type)), recipient, sender, response)
        self.exchanges += 1
        result = response.get("result", "Accepted")
        if result != "Accepted":
            raise RuntimeError(f"{response_type(message_type)} says {result}: "
                               f"{response.get('rejection_reason')}")
        return sent, response

    async def play(self) -> None:
        """The UFTP phases in order: contract, plan, validate, operate, settle."""
        await self.exchange("AGR", "DSO", "TestMessage")
        await self.exchange("DSO", "CRO", "DSOPortfolioUpdate")
        await self.exchange("AGR", "CRO", "AGRPortfolioUpdate")
        await self.exchange("DSO", "CRO", "DSOPortfolioQuery")
        await self.exchange("AGR", "CRO", "AGRPortfolioQuery")
        prognosis, _ = await self.exchange("AGR", "DSO", "D-Prognosis")
        request, _ = await self.exchange("DSO", "AGR", "FlexRequest")
        offer, _ = await self.exchange(
            "AGR", "DSO", "FlexOffer", flex_request_message_id=request["message_id"],
            d_prognosis_message_id=prognosis["message_id"],
        )
        # 80 % of option A: the example order's ISPs and price are the option's times 0.80
        order, _ = await self.exchange(
            "DSO", "AGR", "FlexOrder", flex_offer_message_id=offer["message_id"],
            d_prognosis_message_id=prognosis["message_id"])
        await self.exchange("DSO", "AGR", "FlexReservationUpdate")
        second, _ = await self.exchange("AGR", "DSO", "FlexOffer",
                                        flex_request_message_id=request["message_id"],
                                        d_prognosis_message_id=prognosis["message_id"])
        await self.exchange("AGR", "DSO", "FlexOfferRevocation",
                            flex_offer_message_id=second["message_id"])
        await self.exchange("AGR", "DSO", "Metering")
        settlement = example("FlexSettlement", now=dt.datetime.now(dt.timezone.utc))
        # the order placed above, with the D-Prognosis really exchanged (#18: followed)
        await self.exchange("DSO", "AGR", "FlexSettlement", flex_order_settlements=[
            dict(s, d_prognosis_message_id=prognosis["message_id"])
            for s in settlement["flex_order_settlements"]
            if s.get("order_reference") == order["order_reference"]])


async def run(quiet: bool = False) -> int:
    cycle = Cycle(quiet)
    started = time.perf_counter()
    try:
        await cycle.start()
        await cycle.play()
        for service in cycle.services.values():
            await service.drain()
    except (asyncio.TimeoutError, RuntimeError, OSError) as exc:
        print(f"FAILED after {cycle.exchanges} exchanges: {type(exc).__name__}: {exc}")
        return 1
    finally:
        await cycle.stop()
    seconds = time.perf_counter() - started
    print(f"OK: {cycle.exchanges} exchanges ({2 * cycle.exchanges} signed messages) between "
          f"DSO, AGR and CRO completed in {seconds:.2f} s; every request was answered.")
    return 0


def main(quiet: bool = False) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(quiet))


if __name__ == "__main__":
    sys.exit(main())
