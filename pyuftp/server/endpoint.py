"""The message path of a service: a request in, its HTTP answer out, within the limits.

:class:`MessageEndpoint` is the part of :class:`~pyuftp.server.service.ShapeshifterService`
that answers one request to the message path: refused while draining; the head checked by
the exchange core (content type, length, a bearer token before the body is read); the body
read within the body budget and ``read_timeout``; then the inbox decides.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..core.exchange import Exchange
from ..receiving.inbox import Inbox, Reply
from .drain import RETRY_AFTER, Drain
from .limits import BodyBudget
from .metrics import ServiceMetrics

if TYPE_CHECKING:  # the bearer check needs PyJWT, an optional dependency
    from ..auth.bearer import BearerCheck
    from ..auth.jwks import JwksFetcher

logger = logging.getLogger("pyuftp.server.service")  # the service's lines, as before the split

#: Bodies smaller than this are not counted against ``Limits.body_memory``: big hostile bodies
#: must not hold back normal messages (the connection cap bounds what small ones take).
SMALL_BODY = 64 * 1024


class MessageEndpoint:
    """The request handler of the message path (a part of the service; see the module)."""

    exchange: Exchange
    inbox: Inbox
    read_timeout: float
    metrics: ServiceMetrics | None
    _drain: Drain
    _budget: BodyBudget
    _jwks: Any

    async def _receive(self, request: web.Request) -> web.Response:
        """(#21) A request to the message path: refused while draining, else counted for
        the drain (and the metrics) while :meth:`_take` answers it."""
        if self._drain.draining:
            return _refusal(Reply(503, "shutting down; try again", RETRY_AFTER))
        started = time.perf_counter() if self.metrics is not None else 0.0
        self._drain.receiving += 1
        try:
            response = await self._take(request)
        finally:
            self._drain.receiving -= 1
        if self.metrics is not None:
            self.metrics.answered(response.status, started)
        return response

    async def _take(self, request: web.Request) -> web.Response:
        refused = self.exchange.check_head(request.content_type, request.charset,
                                           request.content_length)
        if refused is not None:
            return _refusal(Reply(refused.http_status, str(refused)))
        if self._jwks is not None:  # (#19.2) a bearer token, before the body is read
            unauthorized = await self._bearer_refusal(request)
            if unauthorized is not None:
                return unauthorized
        size = request.content_length or 0
        size = 0 if size < SMALL_BODY else size
        if not self._budget.take(size):
            return _refusal(Reply(503, "too many request bodies at once; try again", 1))
        try:
            if request.content.is_eof():  # the whole body is in already: no timer to set
                data = await request.read()
            else:
                async with asyncio.timeout(self.read_timeout):
                    data = await request.read()
        except TimeoutError:
            return _refusal(Reply(408, f"the body did not arrive within {self.read_timeout} s"))
        else:
            return _response(await self.inbox.receive(data))  # the inbox logs its refusals
        finally:
            self._budget.give(size)

    async def _bearer_refusal(self, request: web.Request) -> web.Response | None:
        """(#19.2) The 401 for a request without a valid bearer token; None to go on."""
        # Two Authorization headers join into one that no check accepts.
        header = ", ".join(request.headers.getall("Authorization", [])) or None
        decision = self.exchange.check_bearer(header)
        if decision is not None and decision.fetch_keys and self._jwks is not None:
            await self._jwks.refresh()
            decision = self.exchange.check_bearer(header, may_fetch=False)
        if decision is None or decision.accepted:
            return None
        logger.warning("refused a request from %s with HTTP 401: %s", request.remote,
                       decision.reason)
        return web.Response(status=401, text=decision.reason,
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def fetcher(bearer: BearerCheck | JwksFetcher, clock: Callable[[], float]) -> JwksFetcher:
    from ..auth.jwks import JwksFetcher  # PyJWT only for services that check tokens
    return bearer if isinstance(bearer, JwksFetcher) else JwksFetcher(bearer, clock=clock)


def _refusal(reply: Reply) -> web.Response:
    logger.warning("refused a request with HTTP %d: %s", reply.status, reply.text)
    return _response(reply)


def _response(reply: Reply) -> web.Response:
    headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after is not None else None
    return web.Response(status=reply.status, text=reply.text, headers=headers)
