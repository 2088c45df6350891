"""What the example parties share: their domains, a key exchange through files, and the
bookkeeping of requests and answers.

Each party runs in a process of its own. It makes its own key pair, keeps the private key in
memory and publishes the public key, with the URL of its service, as files in a shared
folder (``<role>.pub``, ``<role>.url``); it then waits until the other parties have done the
same. Real parties exchange these once, out of band (or look them up in DNS).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from pyuftp import generate_keypair
from pyuftp import Directory
from pyuftp import ShapeshifterService
from pyuftp.server.service import SERVICES

DOMAINS = {"DSO": "dso.example.com", "AGR": "agr.example.com", "CRO": "cro.example.com"}
CONGESTION_POINT = "ea1.2026-11.com.example.dso:cp-example-0001"
CONNECTIONS = ("ean.871685900000000011", "ean.871685900000000028")
TIMEOUT = 20.0  # seconds to wait for any one answer


def arguments(role: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"The example {role}.")
    parser.add_argument("folder", type=Path, help="the folder the parties share keys in")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    return parser.parse_args()


def tomorrow() -> dt.date:
    """The day to trade for: tomorrow (in UTC, which is close enough for the example)."""
    return dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)


def say(line: str) -> None:
    """Print one line in one write, so that the lines of three processes sharing a pipe
    never run into each other."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def write_atomically(path: Path, text: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


class Party:
    """One party: its service, its directory of the others, and what it asked and got."""

    def __init__(self, role: str, folder: Path, port: int = 0) -> None:
        logging.basicConfig(level=logging.WARNING,
                            format=f"{role} %(levelname)s %(name)s: %(message)s")
        self.role, self.folder = role, folder
        private_key, self.public_key = generate_keypair()  # the private key stays here
        self.directory = Directory()
        self.service: ShapeshifterService = SERVICES[role](
            DOMAINS[role], private_key, self.directory.key, self.directory.endpoint, port=port)
        self.answers: list[tuple[str, str]] = []  # (request type, result)

    async def start(self) -> None:
        await self.service.start()  # port 0: the real port is known now
        write_atomically(self.folder / f"{self.role.lower()}.pub", self.public_key)
        write_atomically(self.folder / f"{self.role.lower()}.url", self.service.url)
        deadline = time.monotonic() + TIMEOUT
        for role in DOMAINS:
            if role == self.role:
                continue
            pub, url = (self.folder / f"{role.lower()}{ext}" for ext in (".pub", ".url"))
            while not (pub.exists() and url.exists()):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{self.role}: the {role} did not publish its key")
                await asyncio.sleep(0.05)
            self.directory.add(DOMAINS[role], role, pub.read_text().strip(),
                               url.read_text().strip())

    async def ask(self, role: str, message_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a request to ``role``, wait for its answer, note and print the result."""
        sent, answer = await self.service.request(DOMAINS[role], role, message_type, payload,
                                                  timeout=TIMEOUT)
        result = answer.get("result", "Accepted")  # a TestMessageResponse carries none
        reason = f" ({answer['rejection_reason']})" if "rejection_reason" in answer else ""
        say(f"{self.role}: {message_type} -> {role}: {result}{reason}")
        self.answers.append((message_type, result))
        return sent

    def done(self) -> None:
        write_atomically(self.folder / f"{self.role.lower()}.done", "done")

    async def wait_for(self, *roles: str) -> None:
        """Wait until the other parties say they are done."""
        deadline = time.monotonic() + 3 * TIMEOUT
        while not all((self.folder / f"{role.lower()}.done").exists() for role in roles):
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.role}: gave up waiting for {', '.join(roles)}")
            await asyncio.sleep(0.05)

    async def stop(self) -> int:
        """Finish handling and answering, stop; 0 when every request was accepted."""
        await self.service.drain(TIMEOUT)
        await self.service.stop()
        refused = [t for t, result in self.answers if result != "Accepted"]
        if refused:
            say(f"{self.role}: not accepted: {', '.join(refused)}")
        return 1 if refused else 0
