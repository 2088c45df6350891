"""The example AGR (aggregator): registers its connections with the CRO, tests the line to
the DSO, answers the DSO's FlexRequest with a FlexOffer, takes the DSO's FlexOrder and asks
the CRO for its portfolio.

    python examples/agr.py FOLDER [--port PORT]
"""
from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any

from party import CONNECTIONS, TIMEOUT, Party, arguments, say, tomorrow


def main() -> int:
    args = arguments("AGR")
    return asyncio.run(run(Party("AGR", args.folder, args.port)))


async def run(agr: Party) -> int:
    requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    orders: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @agr.service.handler("FlexRequest")
    async def on_request(request: dict[str, Any]) -> None:
        await requests.put(request)  # answered Accepted; the offer follows separately

    @agr.service.handler("FlexOrder")
    async def on_order(order: dict[str, Any]) -> None:
        await orders.put(order)

    await agr.start()
    await agr.ask("CRO", "AGRPortfolioUpdate", {
        "time_zone": "Europe/Amsterdam",
        "connections": [{"entity_address": c, "start_period": tomorrow()} for c in CONNECTIONS],
    })
    await agr.ask("DSO", "TestMessage", {})

    request = await asyncio.wait_for(requests.get(), TIMEOUT)
    wanted = [isp for isp in request["isps"] if isp.get("disposition") == "Requested"]
    now = dt.datetime.now(dt.timezone.utc)
    await agr.ask("DSO", "FlexOffer", {
        "isp_duration": request["isp_duration"], "time_zone": request["time_zone"],
        "period": request["period"], "congestion_point": request["congestion_point"],
        "expiration_date_time": min(now + dt.timedelta(hours=1),
                                    request["expiration_date_time"]),
        "flex_request_message_id": request["message_id"],
        "currency": "EUR",
        "offer_options": [{
            "option_reference": "A", "price": Decimal("42.00"),
            "isps": [{"power": isp["max_power"], "start": isp["start"],
                      "duration": isp.get("duration", 1)} for isp in wanted],
        }],
    })
    order = await asyncio.wait_for(orders.get(), TIMEOUT)
    say(f"AGR: ordered: {order['order_reference']} at {order['price']} {order['currency']}")
    await agr.ask("CRO", "AGRPortfolioQuery", {"time_zone": "Europe/Amsterdam",
                                               "period": tomorrow()})
    agr.done()
    await agr.wait_for("DSO")
    return await agr.stop()


if __name__ == "__main__":
    raise SystemExit(main())
