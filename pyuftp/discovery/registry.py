"""A market platform's participant registry as one more source in the look-up chain.

GOPACS publishes the UFTP participants it knows through a JSON API (version 3; version 2 is
being removed)::

    GET {base}/uftp-participants/v3/participants/{uftpDomainName}
    GET {base}/uftp-participants/v3/contracts/{contractId}/roles/{uftpRole}
    Authorization: Bearer <JWT>

It answers domain, role and public key, never an endpoint. ASSUMED SHAPE (no recording was
available when this was written; adjust :func:`read_entry` if the platform differs): the body
is a JSON object or a list of objects, each with the domain under ``domain`` or
``uftpDomainName``, the role under ``role`` or ``uftpRole``, the key(s) under ``publicKey``,
``signingKey`` or ``publicKeys`` (a list), and optionally ``requiresOAuth2`` (bool) and
``endpoint``; unknown fields are ignored, so is an entry without a usable key. A 404 means
"not a participant". The request is bounded: ``timeout`` seconds in all, ``max_bytes`` of
body, ``MAX_ENTRIES`` entries read.

    registry = ParticipantRegistry("https://gopacs.example", token=my_token_provider)
    chain = LookupChain(directory, dns, registry.lookup)
"""
from __future__ import annotations

import asyncio
import inspect
import ipaddress
import json
import logging
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from ..exceptions import excerpt
from .records import (
    DiscoveryError,
    Participant,
    normal_domain,
    normal_role,
    parse_keys,
)

logger = logging.getLogger(__name__)

#: A bearer token provider (sync or async): the current token, refreshed as it sees fit.
TokenProvider = Callable[[], "str | Awaitable[str]"]
#: At most this many entries of one answer are read.
MAX_ENTRIES = 1000
PATH = "/uftp-participants/v3"


def read_entry(entry: Any) -> Participant | None:
    """One participant object of the registry's JSON (the assumed shape, see the module
    docstring); None when it carries no usable key. DiscoveryError (final) for a wrong
    type of field."""
    if not isinstance(entry, dict):
        return None
    domain = entry.get("domain", entry.get("uftpDomainName"))
    role = entry.get("role", entry.get("uftpRole"))
    keys = entry.get("publicKeys")
    if keys is None:
        key = entry.get("publicKey", entry.get("signingKey"))
        keys = [key] if key is not None else []
    if not isinstance(domain, str) or not isinstance(role, str) or not isinstance(keys, list):
        raise DiscoveryError("registry entry without domain, role or key list: "
                             f"{excerpt(json.dumps(entry, default=str))}", temporary=False)
    if not all(isinstance(key, str) for key in keys) or not keys:
        return None
    endpoint = entry.get("endpoint")
    oauth2 = entry.get("requiresOAuth2", False)
    return Participant(normal_domain(domain), normal_role(role), parse_keys(keys),
                       endpoint if isinstance(endpoint, str) and endpoint else None,
                       requires_oauth2=oauth2 is True, authenticated=True, source="registry")


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class ParticipantRegistry:
    """A participants API v3 client with a bounded TTL cache (found and not found).

    :param base_url: the platform's API root (``https://``; ``http://`` only on loopback).
    :param token: a bearer token provider (sync or async callable), or None.
    :param max_concurrent: at most this many requests at once (a flood of unknown senders
        waits for them rather than flooding the platform).
    """

    def __init__(self, base_url: str, token: TokenProvider | None = None, *,
                 timeout: float = 10.0, max_bytes: int = 1024 * 1024, ttl: float = 300.0,
                 negative_ttl: float = 60.0, max_entries: int = 10_000, max_concurrent: int = 4,
                 session: aiohttp.ClientSession | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not base_url.startswith("https://") and not (
                base_url.startswith("http://") and _is_loopback(base_url)):
            raise ValueError(f"registry URL must be https:// (http:// only on loopback), not "
                             f"{excerpt(base_url)}")
        self.base_url, self.token = base_url.rstrip("/"), token
        self.timeout, self.max_bytes, self.clock = timeout, max_bytes, clock
        self.ttl, self.negative_ttl, self.max_entries = ttl, negative_ttl, max_entries
        self._session, self._own_session = session, session is None
        self._cache: OrderedDict[tuple[str, str], tuple[float, Participant | None]] = \
            OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Task[Participant | None]] = {}
        self._semaphore = asyncio.Semaphore(max_concurrent)
        #: How many HTTP requests were made (a figure for tests and benchmarks).
        self.requests = 0

    async def lookup(self, domain: str, role: str) -> Participant | None:
        """The participant ``domain`` in ``role``, or None if the registry does not list it.
        Look-ups of one party at once share one request."""
        peer = (normal_domain(domain), normal_role(role))
        cached = self._cache.get(peer)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        task = self._pending.get(peer)
        if task is None:
            task = asyncio.ensure_future(self._lookup(peer))
            task.add_done_callback(_retrieve)
            self._pending[peer] = task
        return await asyncio.shield(task)

    async def _lookup(self, peer: tuple[str, str]) -> Participant | None:
        try:  # forgotten in the task itself (see trust.Validator.zone_keys)
            entries = await self._get(f"/participants/{urllib.parse.quote(peer[0], safe='')}")
        finally:
            self._pending.pop(peer, None)
        found = next((p for p in entries if (p.domain, p.role) == peer), None)
        self._cache[peer] = (self.clock() + (self.ttl if found else self.negative_ttl), found)
        self._cache.move_to_end(peer)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return found

    async def contract_participants(self, contract_id: str, role: str) -> list[Participant]:
        """The participants in ``role`` under the contract ``contract_id``."""
        wanted = normal_role(role)
        path = (f"/contracts/{urllib.parse.quote(str(contract_id), safe='')}/roles/"
                f"{urllib.parse.quote(wanted, safe='')}")
        return [p for p in await self._get(path) if p.role == wanted]

    def invalidate(self, domain: str, role: str) -> None:
        """Forget the cached answer for the party (its key may have changed)."""
        try:
            self._cache.pop((normal_domain(domain), normal_role(role)), None)
        except DiscoveryError:
            pass

    async def close(self) -> None:
        """Close the HTTP session if this object made it."""
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    async def _get(self, path: str) -> list[Participant]:
        url = f"{self.base_url}{PATH}{path}"
        headers = {"Accept": "application/json"}
        if self.token is not None:
            try:
                token = self.token()
                if inspect.isawaitable(token):
                    token = await token
            except Exception as exc:  # the type only: a message might carry a secret
                raise DiscoveryError(f"the registry's token provider failed: "
                                     f"{type(exc).__name__}") from None
            headers["Authorization"] = f"Bearer {token}"
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._semaphore:
            return await self._request(self._session, url, path, headers)

    async def _request(self, session: aiohttp.ClientSession, url: str, path: str,
                       headers: dict[str, str]) -> list[Participant]:
        self.requests += 1
        try:
            async with session.get(
                    url, headers=headers, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                if response.status == 404:
                    return []
                if response.status != 200:
                    raise DiscoveryError(f"participant registry answered HTTP {response.status} "
                                         f"for {excerpt(path)}")
                if (response.content_length or 0) > self.max_bytes:
                    raise DiscoveryError(f"participant registry answer of "
                                         f"{response.content_length} bytes is too big")
                body = await _read(response, self.max_bytes + 1)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DiscoveryError(f"participant registry unreachable: {type(exc).__name__}") \
                from None
        if len(body) > self.max_bytes:
            raise DiscoveryError(f"participant registry answer is over {self.max_bytes} bytes")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: [[[[... nested too deep
            raise DiscoveryError("participant registry answer is not JSON") from None
        entries = data if isinstance(data, list) else [data]
        found = []
        for entry in entries[:MAX_ENTRIES]:
            try:
                participant = read_entry(entry)
            except DiscoveryError as exc:
                logger.warning("participant registry: entry skipped: %s", exc)
                continue
            if participant is not None:
                found.append(participant)
        return found


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():  # a failure nobody awaits any more is still seen
        task.exception()


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most ``limit`` bytes of the body (whatever the headers said)."""
    chunks, size = [], 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


__all__ = ["ParticipantRegistry", "TokenProvider", "read_entry"]
