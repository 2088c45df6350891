"""An AGR that sends a FlexOffer with a client made from its service, then waits to be killed.

    python agr_party.py STORE PORT DSO_URL DSO_PUBLIC AGR_KEY

Prints ``sent <message_id>`` once the offer is delivered (HTTP 200 from the DSO), then
sleeps until the test kills it, so the DSO's answer finds this process gone.
"""
from __future__ import annotations

import asyncio
import sys

from pyuftp import Directory, ShapeshifterAgrService

from readme_offer import offer


async def main(store: str, port: int, dso_url: str, dso_public: str, agr_key: str) -> None:
    directory = Directory()
    directory.add("dso.example.com", "DSO", dso_public, dso_url)
    agr = ShapeshifterAgrService("agr.example.com", agr_key, directory.key,
                                 directory.endpoint, port=port, store=store)
    async with agr:
        client = agr.client("dso.example.com")
        sent = await client.send_flex_offer(offer())
        assert await agr.courier.drain(20), "the offer was not delivered"
        print("sent", sent["message_id"], flush=True)
        await asyncio.sleep(120)  # bounded: the test kills this process long before


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]))
