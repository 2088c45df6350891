"""A sender process for test_crash.py: queue messages in a durable outbox, or resume one.

    python crash_sender.py send   STORE URL PRIVATE_KEY COUNT   # print each id once committed
    python crash_sender.py resume STORE URL PRIVATE_KEY SECONDS # deliver what is pending, exit

An optional last argument LEASE (seconds) sets the outbox's claim lease: short when a second
sender on the same PostgreSQL store must take over what a killed one had claimed.
"""
from __future__ import annotations

import asyncio
import sys

from pyuftp.clients import ShapeshifterAgrDsoClient

OPTIONS = {"first_backoff": 0.05, "max_backoff": 0.2, "poll_interval": 0.1}


def client(store: str, url: str, key: str) -> ShapeshifterAgrDsoClient:
    return ShapeshifterAgrDsoClient("agr.example.com", key, "dso.example.com", url,
                                    store=store, timeout=2.0, outbox_options=OPTIONS)


if len(sys.argv) > 6:  # the lease (see the docstring)
    OPTIONS = dict(OPTIONS, lease=float(sys.argv[6]))


async def send(store: str, url: str, key: str, count: int) -> int:
    async with client(store, url, key) as agr:
        for _ in range(count):
            sent = await agr.send_test_message({})
            print(sent["message_id"], flush=True)  # only ever after the commit
    return 0


async def resume(store: str, url: str, key: str, seconds: float) -> int:
    async with client(store, url, key) as agr:
        idle = await agr.outbox.wait_idle(seconds)
        left = len(agr.outbox.store.outgoing("pending"))
    print(f"idle={idle} pending={left}", flush=True)
    return 0 if idle and left == 0 else 1


if __name__ == "__main__":
    mode, store, url, key, number = sys.argv[1:6]
    if mode == "send":
        sys.exit(asyncio.run(send(store, url, key, int(number))))
    sys.exit(asyncio.run(resume(store, url, key, float(number))))
