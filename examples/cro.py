"""The example CRO (common reference operator): keeps the register of congestion points and
of the connections that aggregators represent, and answers portfolio queries from it.

    python examples/cro.py FOLDER [--port PORT]

It runs until the DSO and the AGR are done (see run_all.py).
"""
from __future__ import annotations

import asyncio
from typing import Any

from party import Party, arguments, say


def main() -> int:
    args = arguments("CRO")
    return asyncio.run(run(Party("CRO", args.folder, args.port)))


async def run(cro: Party) -> int:
    congestion_points: dict[str, dict[str, Any]] = {}  # entity address -> DSO's registration
    represented: dict[str, str] = {}  # connection -> AGR domain

    @cro.service.handler("DSOPortfolioUpdate")
    def on_dso_update(update: dict[str, Any]) -> None:
        for point in update["congestion_points"]:
            congestion_points[point["entity_address"]] = {**point, "dso": update["sender_domain"]}

    @cro.service.handler("AGRPortfolioUpdate")
    def on_agr_update(update: dict[str, Any]) -> None:
        for connection in update["connections"]:
            represented[connection["entity_address"]] = update["sender_domain"]

    @cro.service.handler("DSOPortfolioQuery")
    def on_dso_query(query: dict[str, Any]) -> dict[str, Any]:
        point = congestion_points.get(query["entity_address"])
        if point is None:
            from pyuftp import Rejected

            raise Rejected("unknown congestion point", time_zone=query["time_zone"],
                           period=query["period"])
        connections = []
        for connection in point["connections"]:
            item = {"entity_address": connection["entity_address"]}
            if connection["entity_address"] in represented:
                item["agr_domain"] = represented[connection["entity_address"]]
            connections.append(item)
        return {"time_zone": query["time_zone"], "period": query["period"],
                "congestion_point": {"entity_address": query["entity_address"],
                                     "connections": connections}}

    @cro.service.handler("AGRPortfolioQuery")
    def on_agr_query(query: dict[str, Any]) -> dict[str, Any]:
        mine = {c for c, agr in represented.items() if agr == query["sender_domain"]}
        portfolios = []
        for address, point in congestion_points.items():
            ours = [c["entity_address"] for c in point["connections"]
                    if c["entity_address"] in mine]
            if ours:
                portfolios.append({"dso_domain": point["dso"], "congestion_points": [{
                    "entity_address": address,
                    "mutex_offers_supported": point["mutex_offers_supported"],
                    "day_ahead_redispatch_by": point["day_ahead_redispatch_by"],
                    "connections": [{"entity_address": c} for c in ours]}]})
        return {"time_zone": query["time_zone"], "period": query["period"],
                "dso_views": [{"dso_portfolios": portfolios}]}

    await cro.start()
    say(f"CRO: listening on {cro.service.url}")
    await cro.wait_for("DSO", "AGR")
    return await cro.stop()


if __name__ == "__main__":
    raise SystemExit(main())
