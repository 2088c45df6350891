"""A DSO service for test_crash.py whose FlexOffer handler never finishes: it prints the id
of the message it started handling, so that the test can SIGKILL it right then.

    python crash_service.py STORE PORT DSO_PRIVATE_KEY AGR_PUBLIC_KEY AGR_URL
"""
from __future__ import annotations

import asyncio
import sys

from pyuftp.discovery import Directory
from pyuftp.rules import DEFAULT_RULES
from pyuftp.server.service import ShapeshifterDsoService


async def main(store: str, port: int, dso_key: str, agr_public: str, agr_url: str) -> None:
    directory = Directory()
    directory.add("agr.example.com", "AGR", agr_public, agr_url)
    dso = ShapeshifterDsoService("dso.example.com", dso_key, directory.key, directory.endpoint,
                                 port=port, store=store,
                                 rules=DEFAULT_RULES.stateless())  # transport, not business

    async def stuck(offer):
        print("handling", offer["message_id"], flush=True)
        await asyncio.sleep(120)  # killed long before this ends
    dso.add_handler("FlexOffer", stuck)
    async with dso:
        print("listening", flush=True)
        await asyncio.sleep(120)


if __name__ == "__main__":
    store, port, dso_key, agr_public, agr_url = sys.argv[1:6]
    asyncio.run(main(store, int(port), dso_key, agr_public, agr_url))
