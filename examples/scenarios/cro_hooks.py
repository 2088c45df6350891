"""Hooks of cro-register.toml: a congestion point register kept in memory.

A DSOPortfolioUpdate registers its congestion points (with their connections); an
AGRPortfolioQuery is answered with the congestion points that hold the AGR's connections
(a real CRO would filter by the AGR's portfolio; this one shows every point registered).
"""
from __future__ import annotations

from typing import Any

REGISTER: dict[str, dict[str, Any]] = {}  # congestion point -> (DSO domain, its entry)


async def on_message(simulator: Any, message_type: str, payload: dict[str, Any]) -> Any:
    if message_type == "DSOPortfolioUpdate":
        for point in payload["congestion_points"]:
            REGISTER[point["entity_address"]] = {"dso": payload["sender_domain"], **point}
        return None
    if message_type == "AGRPortfolioQuery":
        points = [{"entity_address": address,
                   "mutex_offers_supported": entry.get("mutex_offers_supported", False),
                   "connections": [{"entity_address": c["entity_address"]}
                                   for c in entry.get("connections", [])]}
                  for address, entry in REGISTER.items()]
        views = [{"dso_portfolios": [{"dso_domain": entry["dso"], "congestion_points": [p]}]}
                 for p, entry in zip(points, REGISTER.values())]
        return {"period": payload["period"], "dso_views": views} if views else None
    return None
