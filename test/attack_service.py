"""A DSO service in a process of its own, for test_attacks.py: memory and file descriptors
are measured per process, so the attacked service must not share one with the attacker.

    python attack_service.py OPTIONS_JSON DSO_PRIVATE_KEY AGR_PUBLIC_KEY

OPTIONS_JSON: ``{"limits": {...}, "service": {...}, "nofile": 128, "log_lookups": true}``
(all optional; ``log_lookups`` logs ``key lookup DOMAIN ROLE`` for each call of the key
look-up the service is given, so that a test can count them). Prints the port once
listening, then serves until killed; logs go to stderr at INFO.
"""
from __future__ import annotations

import asyncio
import json
import logging
import resource
import sys

from pyuftp.discovery import Directory
from pyuftp.server.limits import Limits
from pyuftp.rules import DEFAULT_RULES
from pyuftp.server.service import ShapeshifterDsoService


async def main(options: dict, dso_key: str, agr_public: str) -> None:
    if "nofile" in options:
        resource.setrlimit(resource.RLIMIT_NOFILE, (options["nofile"], options["nofile"]))
    directory = Directory()
    directory.add("agr.example.com", "AGR", agr_public, None)  # responses stay queued
    def logged_lookup(domain: str, role: str) -> str | None:
        logging.getLogger("attack_service").info("key lookup %s %s", domain, role)
        return directory.key(domain, role)

    key_lookup = logged_lookup if options.get("log_lookups") else directory.key
    dso = ShapeshifterDsoService("dso.example.com", dso_key, key_lookup, directory.endpoint,
                                 port=0, limits=Limits(**options.get("limits", {})),
                                 rules=DEFAULT_RULES.stateless(), **options.get("service", {}))
    dso.add_handler("TestMessage", lambda payload: None)
    async with dso:
        print(dso.port, flush=True)
        await asyncio.sleep(600)  # killed long before this ends


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(main(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]))
