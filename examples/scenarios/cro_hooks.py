"""Hooks of cro-register.toml: a congestion point register kept in memory.

A DSOPortfolioUpdate registers its congestion points (with their connections); an
AGRPortfolioQuery is answered with the congestion points that hold the AGR's connections
(a real CRO would filter by the AGR's portfolio; this one shows every point registered).
"""
from __future__ import annotations

from typing import Any

#: what a register entry and a query's answer share
KEPT = ("entity_address", "mutex_offers_supported", "day_ahead_redispatch_by",
        "intraday_redispatch_by")
REGISTER: dict[str, dict[str, Any]] = {}  # congestion point -> (DSO domain, its entry)


async def on_message(simulator: Any, message_type: str, payload: dict[str, Any]) -> Any:
    if message_type == "DSOPortfolioUpdate":
        for point in payload["congestion_points"]:
            REGISTER[point["entity_address"]] = {"dso": payload["sender_domain"], **point}
        return None
    if message_type == "AGRPortfolioQuery":
        points = [{**{key: entry[key] for key in KEPT if key in entry},
                   "connections": [{"entity_address": c["entity_address"]}
                                   for c in entry.get("connections", [])]}
                  for entry in REGISTER.values()]
        views = [{"dso_portfolios": [{"dso_domain": entry["dso"], "congestion_points": [p]}]}
                 for p, entry in zip(points, REGISTER.values())]
        if not views:
            return None
        return {"time_zone": payload["time_zone"], "period": payload["period"],
                "dso_views": views}
    return None
