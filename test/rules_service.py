"""A DSO service with every business rule on and a SQLite store, in a process of its own, for
test_rules_hostile.py (and bench/attack.py): what a rule costs is measured in its process.

    python rules_service.py STORE PORT DSO_PRIVATE_KEY AGR_PUBLIC_KEY AGR_URL

It starts, sends the AGR one FlexRequest (``dso.request``: it waits for the AGR's
FlexRequestResponse), then prints one JSON line ``{"port": ..., "request": {...}}`` with the
request's ids, period and congestion point, so that offers can name a request that was really
exchanged. FlexOffers and D-Prognoses are accepted by their handlers; what the rules find
rejects them. Serves until killed; logs go to stderr at INFO.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sys

from pyuftp.discovery import Directory
from pyuftp.message.examples import example
from pyuftp.rules import DEFAULT_RULES
from pyuftp.server.service import ShapeshifterDsoService

_METADATA = ("version", "message_id", "conversation_id", "time_stamp", "sender_domain",
             "recipient_domain")


async def main(store: str, port: str, dso_key: str, agr_public: str, agr_url: str) -> None:
    directory = Directory()
    directory.add("agr.example.com", "AGR", agr_public, agr_url)
    dso = ShapeshifterDsoService("dso.example.com", dso_key, directory.key, directory.endpoint,
                                 port=int(port), store=store, rules=DEFAULT_RULES)
    dso.add_handler("FlexOffer", lambda payload: None)
    dso.add_handler("D-Prognosis", lambda payload: None)
    dso.add_handler("TestMessage", lambda payload: None)
    async with dso:
        now = dt.datetime.now(dt.timezone.utc)
        request = {k: v for k, v in example("FlexRequest", now=now).items()
                   if k not in _METADATA}
        sent, response = await dso.request("agr.example.com", "AGR", "FlexRequest", request, 30)
        print(json.dumps({"port": dso.port, "response": response["result"], "request": {
            "message_id": sent["message_id"], "conversation_id": sent["conversation_id"],
            "period": sent["period"].isoformat(), "congestion_point": sent["congestion_point"],
            "expiration_date_time": sent["expiration_date_time"].isoformat()}}), flush=True)
        await asyncio.sleep(600)  # killed long before this ends


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(main(*sys.argv[1:6]))
