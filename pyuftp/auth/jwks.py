"""Fetching an issuer's JWKS for a :class:`~pyuftp.auth.bearer.BearerCheck`: the I/O half.

    keys = JwksFetcher(bearer)
    decision = await keys.decide(request.headers.get("Authorization"), now)

The check decides; this adapter fetches when the check asks (an unknown key id, stale keys)
and its rate limit allows, one fetch at a time whatever the number of requests waiting, with
a bounded read and a timeout. A failed fetch keeps the keys held before and is logged.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable

import aiohttp

from ..exceptions import excerpt
from .bearer import BearerCheck, BearerDecision

logger = logging.getLogger(__name__)


class JwksFetcher:
    """Fetches the JWKS of ``check.jwks_url`` into ``check`` when asked (see the module).

    :param ssl: an :class:`ssl.SSLContext` for the issuer (a private CA, say).
    :param timeout: seconds one fetch may take.
    :param clock: ``() -> unix time``; the same clock the check is given.
    """

    def __init__(self, check: BearerCheck, *, ssl: ssl.SSLContext | None = None,
                 timeout: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        self.check = check
        self.ssl = ssl
        self.timeout = timeout
        self.clock = clock
        self.fetches = 0  # attempts made: for operators and tests
        self._pending: asyncio.Task[None] | None = None

    async def decide(self, authorization: str | None) -> BearerDecision:
        """The check's decision on a header, fetching the keys first if it asks to."""
        decision = self.check.check(authorization, self.clock())
        if decision.fetch_keys:
            await self.refresh()
            decision = self.check.check(authorization, self.clock(), may_fetch=False)
        return decision

    async def refresh(self) -> None:
        """Fetch the keys unless a fetch is under way (then wait for it) or the rate limit
        says not yet."""
        if self._pending is None:
            if not self.check.may_fetch(self.clock()):
                return
            self.check.fetch_started(self.clock())
            self._pending = asyncio.ensure_future(self._fetch())
            self._pending.add_done_callback(self._done)
        await asyncio.shield(self._pending)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending = None
        if not task.cancelled():
            task.exception()  # logged in _fetch; retrieved here so asyncio does not complain

    async def _fetch(self) -> None:
        self.fetches += 1
        url = self.check.jwks_url
        limit = self.check.max_jwks
        try:
            async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
                async with session.get(url, allow_redirects=False,
                                       ssl=self.ssl if self.ssl is not None else True) as answer:
                    body = await answer.content.read(limit + 1)
                    status = answer.status
            if status != 200:
                raise ValueError(f"HTTP {status}")
            count = self.check.load_keys(body, self.clock())
        except asyncio.TimeoutError:
            logger.warning("cannot fetch the JWKS from %s: no answer within %g s",
                           excerpt(url, 200), self.timeout)
        except (aiohttp.ClientError, ValueError) as exc:
            logger.warning("cannot fetch the JWKS from %s: %s", excerpt(url, 200),
                           excerpt(exc, 200))
        else:
            logger.info("fetched %d signature keys from %s", count, excerpt(url, 200))


__all__ = ["JwksFetcher"]
