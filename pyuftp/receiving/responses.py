"""Waiting for the response to a request when it may arrive at another instance.

Several service instances behind one load balancer share one store (PostgreSQL): the
response to a request sent by instance A may be POSTed to instance B. B records and archives
it like any message received, so A finds it in the shared archive, as the message received
from the request's recipient that references the request's id. :func:`first` waits for
whichever comes first: the response handed over in this process (a future the inbox sets)
or the one found in the archive, polled every ``interval`` seconds.

Measured choice: polling costs one indexed query per waiting request per interval (the
references index; ~0.2 ms on a local server) and needs no connection of its own; LISTEN/NOTIFY
would answer sooner but hold a connection per process outside the pool and still need the
archive read after the wake-up. A request waits seconds to minutes for its response, so a
0.25 s poll adds at most a quarter of a second.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..exceptions import StoreError
from ..message.codec import parse_message
from ..store.base import Store

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.25


async def archived_response(store: Store, counterparty: str, request_id: str,
                            response_type: str, conversation_id: str | None = None,
                            interval: float = POLL_INTERVAL) -> dict[str, Any]:
    """The payload of the first ``response_type`` received from ``counterparty`` that
    references ``request_id`` (in ``conversation_id``, if given), once it is in the archive
    (polled every ``interval`` s)."""
    while True:
        try:
            found = await store.call(lambda: store.query(
                references=request_id, direction="in", counterparty=counterparty,
                message_type=response_type, conversation_id=conversation_id, limit=1))
        except StoreError as exc:  # the database is away for a moment: keep waiting
            logger.warning("looking for the response to %s: %s", request_id, exc)
            found = []
        if found:
            return parse_message(found[0].payload_xml)[1]
        await asyncio.sleep(interval)


async def first(local: asyncio.Future[dict[str, Any]], store: Store, counterparty: str,
                request_id: str, response_type: str, conversation_id: str | None = None,
                interval: float = POLL_INTERVAL) -> dict[str, Any]:
    """The response's payload: from ``local`` (set by this process's inbox) or, for a store
    that several instances share (its ``shared`` is true), from the archive, whichever comes
    first. Cancel it (e.g. ``asyncio.wait_for``) to stop waiting."""
    if not getattr(store, "shared", False):
        return await local
    polled = asyncio.ensure_future(archived_response(store, counterparty, request_id,
                                                     response_type, conversation_id, interval))
    try:
        done, _ = await asyncio.wait({local, polled}, return_when=asyncio.FIRST_COMPLETED)
        winner = local if local in done and not local.cancelled() else polled
        return winner.result()
    finally:
        polled.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await polled
