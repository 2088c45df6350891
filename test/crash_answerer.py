"""A DSO service for test_crash.py that answers FlexOffers, to be killed mid-work.

    python crash_answerer.py STORE PORT DSO_PRIVATE_KEY AGR_PUBLIC_KEY AGR_URL [LEASE]

LEASE (seconds; optional) is its outbox's claim lease, short when several instances share a
PostgreSQL store and one is killed: a survivor delivers what it claimed once it ends.

Its FlexOffer handler takes a few milliseconds, so that kills land between receiving,
handling and answering. Prints "listening" once it serves.
"""
from __future__ import annotations

import asyncio
import random
import sys

from pyuftp.discovery import Directory
from pyuftp.rules import DEFAULT_RULES
from pyuftp.server.service import ShapeshifterDsoService


async def main(store: str, port: int, dso_key: str, agr_public: str, agr_url: str,
               lease: float | None = None) -> None:
    directory = Directory()
    directory.add("agr.example.com", "AGR", agr_public, agr_url)
    dso = ShapeshifterDsoService("dso.example.com", dso_key, directory.key, directory.endpoint,
                                 port=port, store=store, client_options={"timeout": 2.0},
                                 rules=DEFAULT_RULES.stateless())  # transport, not business

    async def on_offer(offer):
        await asyncio.sleep(random.uniform(0, 0.01))
        return {"result": random.choice(["Accepted", "Rejected"]),
                "rejection_reason": "a coin said so"}  # a re-run may answer otherwise
    dso.add_handler("FlexOffer", on_offer)
    outbox = dso.courier.outbox
    if lease is not None and outbox is not None:  # before it starts: read at each claim
        outbox.lease, outbox.poll_interval = lease, min(outbox.poll_interval, lease / 4)
    async with dso:
        print("listening", flush=True)
        await asyncio.sleep(600)


if __name__ == "__main__":
    store, port, dso_key, agr_public, agr_url = sys.argv[1:6]
    asyncio.run(main(store, int(port), dso_key, agr_public, agr_url,
                     float(sys.argv[6]) if len(sys.argv) > 6 else None))
