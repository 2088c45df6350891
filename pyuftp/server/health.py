"""The health endpoint of a service (``health=True``: ``GET /health``), for a load balancer,
an orchestrator's readiness probe or a monitor.

Ready (HTTP 200) only when the store answers and the outbox runs; otherwise HTTP 503. Either
way the body is one JSON object that says why, and reports the outbox: pending and failed
items and the age of the oldest pending one, so a monitor can alarm on stuck deliveries::

    {"status": "ready", "store": "ok", "outbox": "running", "draining": false,
     "outbox_pending": 3, "outbox_failed": 0, "oldest_pending_seconds": 12.5}

A service that is shutting down (SIGTERM, see :mod:`pyuftp.server.drain`) is not ready, so
that a load balancer stops sending to it.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..store import Store
from .metrics import read_summary

#: seconds the store has to answer a health check before it counts as unreachable
STORE_TIMEOUT = 2.0


class Health:
    """Answers ``GET /health`` for a service's ``store`` and ``outbox``; ``draining()``
    says whether the service is shutting down."""

    def __init__(self, store: Store, outbox: Any, draining: Callable[[], bool],
                 timeout: float = STORE_TIMEOUT) -> None:
        self.store, self.outbox, self.draining, self.timeout = store, outbox, draining, timeout

    async def report(self) -> dict[str, Any]:
        """The health report (see the module docstring)."""
        summary = await read_summary(self.store, self.timeout)
        running = self.outbox is not None and bool(self.outbox.running)
        draining = self.draining()
        ready = summary is not None and running and not draining
        report: dict[str, Any] = {
            "status": "ready" if ready else "not ready",
            "store": "ok" if summary is not None else "unreachable",
            "outbox": "running" if running else "stopped",
            "draining": draining,
        }
        if summary is not None:
            report.update(outbox_pending=summary.pending, outbox_failed=summary.failed,
                          oldest_pending_seconds=round(summary.oldest_age(time.time()), 3))
        return report

    async def serve(self, request: web.Request) -> web.Response:
        """The aiohttp handler: 200 when ready, else 503; JSON either way."""
        report = await self.report()
        return web.Response(status=200 if report["status"] == "ready" else 503,
                            text=json.dumps(report), content_type="application/json",
                            headers={"Cache-Control": "no-store"})


def operations_path(option: bool | str, default: str, message_path: str) -> str | None:
    """Where a service serves ``/metrics`` or ``/health`` (``default``) for the option
    given (True: the default, False: nowhere, or a path): never at or under the message
    path, so that these requests are never taken for UFTP requests (ValueError)."""
    where = default if option is True else option
    if where is False:
        return None
    if not isinstance(where, str) or not where.startswith("/") or where == message_path \
            or where.startswith(message_path.rstrip("/") + "/") or where.startswith("//"):
        raise ValueError(f"{default[1:]} must be True or a path beginning with / other than "
                         f"the message path {message_path!r}, not {where!r}")
    return where


__all__ = ["Health", "STORE_TIMEOUT", "operations_path"]
