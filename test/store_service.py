"""A DSO service on a SQLite store, in a process of its own, for test_store_file.py: it
prints its port once listening, then serves TestMessages (answered through the outbox to the
AGR at AGR_URL) until it is killed or SECONDS pass.

    python store_service.py STORE DSO_PRIVATE_KEY AGR_PUBLIC_KEY AGR_URL MAX_BACKLOG SECONDS

Logs go to stderr at INFO; a store that cannot be opened ends it with the StoreError's
traceback on stderr and no port printed.
"""
from __future__ import annotations

import asyncio
import logging
import sys

from pyuftp.discovery import Directory
from pyuftp.rules import DEFAULT_RULES
from pyuftp.server.service import ShapeshifterDsoService


async def main(store: str, dso_key: str, agr_public: str, agr_url: str, max_backlog: int,
               seconds: float) -> None:
    directory = Directory()
    directory.add("agr.example.com", "AGR", agr_public, agr_url)
    dso = ShapeshifterDsoService("dso.example.com", dso_key, directory.key, directory.endpoint,
                                 port=0, store=store, max_backlog=max_backlog,
                                 rules=DEFAULT_RULES.stateless())
    dso.add_handler("TestMessage", lambda payload: None)
    async with dso:
        print(dso.port, flush=True)
        await asyncio.sleep(seconds)  # bounded: a forgotten service ends by itself


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    store, dso_key, agr_public, agr_url, max_backlog, seconds = sys.argv[1:7]
    asyncio.run(main(store, dso_key, agr_public, agr_url, int(max_backlog), float(seconds)))
