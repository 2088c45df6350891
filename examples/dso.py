"""The example DSO (grid operator): registers its congestion point with the CRO, expects
congestion tomorrow evening, asks the AGR for flexibility, buys the AGR's offer and asks the
CRO who represents the connections.

    python examples/dso.py FOLDER [--port PORT]
"""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from party import CONGESTION_POINT, CONNECTIONS, TIMEOUT, Party, arguments, tomorrow

TIME_ZONE = "Europe/Amsterdam"
ISP = dt.timedelta(minutes=15)


def main() -> int:
    args = arguments("DSO")
    return asyncio.run(run(Party("DSO", args.folder, args.port)))


async def run(dso: Party) -> int:
    offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @dso.service.handler("FlexOffer")
    async def on_offer(offer: dict[str, Any]) -> None:
        await offers.put(offer)  # returning normally answers Accepted

    await dso.start()
    day = tomorrow()
    now = dt.datetime.now(dt.timezone.utc)

    await dso.ask("CRO", "DSOPortfolioUpdate", {
        "time_zone": TIME_ZONE,
        "congestion_points": [{
            "entity_address": CONGESTION_POINT, "start_period": day,
            "mutex_offers_supported": True, "day_ahead_redispatch_by": "DSO",
            "connections": [{"entity_address": c, "start_period": day} for c in CONNECTIONS],
        }],
    })
    # Congestion is expected from 17:00 to 18:00 local time: ISPs 69 to 72.
    await dso.ask("AGR", "FlexRequest", {
        "isp_duration": ISP, "time_zone": TIME_ZONE, "period": day,
        "congestion_point": CONGESTION_POINT, "revision": 1,
        "expiration_date_time": now + dt.timedelta(hours=2),
        "isps": [
            {"disposition": "Available", "min_power": 0, "max_power": 500_000,
             "start": 1, "duration": 68},
            {"disposition": "Requested", "min_power": -300_000, "max_power": -100_000,
             "start": 69, "duration": 4},
            {"disposition": "Available", "min_power": 0, "max_power": 500_000,
             "start": 73, "duration": 24},
        ],
    })
    offer = await asyncio.wait_for(offers.get(), TIMEOUT)
    option = offer["offer_options"][0]
    await dso.ask("AGR", "FlexOrder", {
        "isp_duration": ISP, "time_zone": TIME_ZONE, "period": offer["period"],
        "congestion_point": offer["congestion_point"],
        "flex_offer_message_id": offer["message_id"],
        "option_reference": option["option_reference"],
        "price": option["price"], "currency": offer["currency"],
        "order_reference": "DSO-EXAMPLE-0001",
        "isps": option["isps"],
    })
    await dso.ask("CRO", "DSOPortfolioQuery", {
        "time_zone": TIME_ZONE, "period": day, "entity_address": CONGESTION_POINT,
    })
    dso.done()
    await dso.wait_for("AGR")
    return await dso.stop()


if __name__ == "__main__":
    raise SystemExit(main())
