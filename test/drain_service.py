"""A DSO service in a process of its own that runs ``service.run()``, for
test/server/test_sigterm_drain.py: its TestMessage handler takes HANDLER_SECONDS, so a SIGTERM
finds handlers in flight.

    python drain_service.py STORE PORT DSO_PRIVATE_KEY AGR_PUBLIC_KEY AGR_URL HANDLER_SECONDS
                            GRACE

Serves ``GET /health`` (ready once listening). Ends on SIGTERM (or by itself after 120 s:
a forgotten process must not live on). Logs go to stderr at INFO.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading

from pyuftp.discovery import Directory
from pyuftp.server.service import ShapeshifterDsoService


def main(store: str, port: str, dso_key: str, agr_public: str, agr_url: str,
         handler_seconds: str, grace: str) -> None:
    directory = Directory()
    directory.add("agr.example.com", "AGR", agr_public, agr_url)
    dso = ShapeshifterDsoService("dso.example.com", dso_key, directory.key, directory.endpoint,
                                 port=int(port), store=store, health=True,
                                 shutdown_grace=float(grace))

    async def slow(payload: dict) -> None:
        logging.getLogger("drain_service").info("handling %s", payload["message_id"])
        await asyncio.sleep(float(handler_seconds))
        logging.getLogger("drain_service").info("handled %s", payload["message_id"])

    dso.add_handler("TestMessage", slow)
    watchdog = threading.Timer(120, os.kill, (os.getpid(), signal.SIGTERM))
    watchdog.daemon = True
    watchdog.start()
    dso.run()
    logging.getLogger("drain_service").info("run() returned")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main(*sys.argv[1:8])
