"""POSTing signed envelopes over HTTP: the one place pyuftp talks to another party's service.

    poster = Poster(auth=oauth_headers)         # one aiohttp session, reused
    await poster.post_once(data, url)           # raises Temporary/FinalDeliveryError
    await poster.close()

It knows nothing of messages: it takes bytes and a URL, follows redirects as POSTs, reads at
most a few KB of an error answer, and sorts failures into temporary (try again later) and
final ones by the rules of the UFTP transport appendix. The ``auth`` seam supplies extra
headers per request (an OAuth2 bearer token, say); an auth that can also be told its
credentials were refused (:class:`PeerAuth`, e.g. :class:`pyuftp.auth.OAuth2Clients`) gets
one fresh try after an HTTP 401. Plain ``http://`` goes only to loopback addresses unless
``allow_plain_http`` is set (:mod:`pyuftp.auth.tls`).
"""
from __future__ import annotations

import asyncio
import datetime
import email.utils
import logging
import os
import re
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, runtime_checkable
from urllib.parse import urljoin

import aiohttp

from ..auth.tls import client_context, refuse_plain_http
from .._shared import maybe_await
from ..exceptions import FinalDeliveryError, TemporaryDeliveryError, excerpt

logger = logging.getLogger(__name__)

#: ``auth(url) -> headers`` (sync or async): extra headers for one POST to ``url``.
Auth = Callable[[str], "Mapping[str, str] | Awaitable[Mapping[str, str]]"]
#: ``(domain, role)`` of the party a POST goes to, when the sender knows it.
Peer = tuple[str, str]


@runtime_checkable
class PeerAuth(Protocol):
    """An auth that knows whom a POST is for and can be told its credentials were refused.

    :meth:`headers_for` is used instead of ``auth(url)``; after an HTTP 401 the poster calls
    :meth:`refused` with the headers it sent and, when that returns True (e.g. a cached
    token was dropped), tries once more with fresh headers.
    """

    async def headers_for(self, url: str, peer: Peer | None) -> Mapping[str, str]:
        """The extra headers of one POST to ``peer`` (``(domain, role)``, if known) at ``url``."""
        ...

    async def refused(self, url: str, peer: Peer | None, sent: Mapping[str, str]) -> bool:
        """The POST with the headers ``sent`` got 401: True to try once more."""
        ...

CONTENT_TYPE = "text/xml; charset=utf-8"
REDIRECTS = (301, 302, 307, 308)
#: The longest Retry-After that pyuftp honours (seconds); a peer asking for more gets this.
MAX_RETRY_AFTER = 3600.0
#: How much of an error response is read: enough for a reason, never a hostile flood.
ERROR_BODY_BYTES = 4096
_DELTA_SECONDS = re.compile(r"[0-9]{1,10}", re.ASCII)


def is_temporary_status(status: int) -> bool:
    """The spec's sender-side rule: 4xx are final, except the ambiguous 404 and 429, and the
    key-lookup failure 419; everything else that is not a success is temporary."""
    if 400 <= status < 500:
        return status in (404, 419, 429)
    return True


def parse_retry_after(value: str | None, now: datetime.datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (ASCII delta-seconds or an HTTP date), capped at
    :data:`MAX_RETRY_AFTER`; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):  # not str.isdigit: it takes '²' and other digits
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER)


class Poster:
    """POSTs envelopes with one reused aiohttp session (keep-alive to each peer).

    :param timeout: seconds for one POST, redirects included.
    :param auth: ``auth(url) -> headers`` (sync or async), called per POST; its headers are
        added to the request (e.g. ``{"Authorization": "Bearer ..."}``).
    :param session: an ``aiohttp.ClientSession`` to use; it is then left open on
        :meth:`close` (whoever makes a session closes it).
    :param ssl: an :class:`ssl.SSLContext` for https (whom to trust, which client
        certificate to present); or ``ca_file`` (trust only these CAs) and ``client_cert``
        / ``client_key`` (PEM files) to make one. Default: the system's trusted CAs.
    :param allow_plain_http: also POST to ``http://`` URLs that are not on a loopback
        address (refused by default: the spec demands TLS).
    """

    def __init__(self, *, timeout: float = 30.0, auth: Auth | PeerAuth | None = None,
                 session: aiohttp.ClientSession | None = None, max_redirects: int = 5,
                 ssl: ssl_module.SSLContext | None = None,
                 ca_file: str | os.PathLike[str] | None = None,
                 client_cert: str | os.PathLike[str] | None = None,
                 client_key: str | os.PathLike[str] | None = None,
                 allow_plain_http: bool = False) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.auth = auth
        self.max_redirects = max_redirects
        if ssl is not None and (ca_file or client_cert or client_key):
            raise ValueError("give ssl or ca_file/client_cert/client_key, not both")
        if ssl is None and (ca_file or client_cert or client_key):
            ssl = client_context(ca_file, client_cert, client_key)
        self.ssl: ssl_module.SSLContext | bool = True if ssl is None else ssl
        self.allow_plain_http = allow_plain_http
        self._session = session
        self._own_session = session is None
        #: the last (url, allow_plain_http) found allowed: answers go to one URL, again and again
        self._allowed: tuple[str, bool] | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
            self._own_session = True
        return self._session

    async def close(self) -> None:
        """Close the session if this poster made it."""
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def _headers(self, url: str, peer: Peer | None) -> dict[str, str]:
        headers = {"Content-Type": CONTENT_TYPE}
        if isinstance(self.auth, PeerAuth):
            headers.update(await self.auth.headers_for(url, peer) or {})
        elif self.auth is not None:
            extra = await maybe_await(self.auth(url))
            headers.update(extra or {})
        return headers

    async def _retry_after_401(self, url: str, peer: Peer | None,
                               sent: Mapping[str, str]) -> bool:
        """Whether the auth refreshed what the peer refused: then one more try is worth it."""
        return isinstance(self.auth, PeerAuth) and await self.auth.refused(url, peer, sent)

    async def post_once(self, data: bytes, url: str, *, peer: Peer | None = None) -> int:
        """One POST (following redirects as POSTs, and trying once more with fresh
        credentials after a 401 when the auth can refresh them) to ``peer`` (``(domain,
        role)``, for the auth) at ``url``: the HTTP status of a success (2xx); raises
        Temporary/FinalDeliveryError."""
        refreshed = False
        hop = 0
        while hop <= self.max_redirects:
            if self._allowed != (url, self.allow_plain_http):
                try:
                    refuse_plain_http(url, self.allow_plain_http)
                except ValueError as exc:
                    raise FinalDeliveryError(str(exc), url=url) from None
                self._allowed = (url, self.allow_plain_http)
            try:
                headers = ({"Content-Type": CONTENT_TYPE} if self.auth is None
                           else await self._headers(url, peer))
                async with self._http().post(
                    url, data=data, headers=headers, ssl=self.ssl,
                    allow_redirects=False,  # aiohttp would turn a 301/302 POST into a GET
                ) as response:
                    status = response.status
                    if status in REDIRECTS and "Location" in response.headers:
                        url = urljoin(url, response.headers["Location"])
                        hop += 1
                        continue
                    if status == 401 and not refreshed and await self._retry_after_401(
                            url, peer, headers):
                        refreshed = True  # once: a second 401 is the peer's final word
                        continue
                    if 200 <= status < 300:
                        return status
                    # A few KB say why; a hostile peer's 300 MB error page stays unread.
                    head = await response.content.read(ERROR_BODY_BYTES)
                    text = excerpt(head.decode("utf-8", "replace"), 200)
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
            except asyncio.TimeoutError:
                raise TemporaryDeliveryError(f"timed out posting to {url}", url=url) from None
            except aiohttp.ClientError as exc:
                raise TemporaryDeliveryError(f"cannot reach {url}: {excerpt(exc, 200)}",
                                             url=url) from None
            if is_temporary_status(status):
                raise TemporaryDeliveryError(f"{url} answered HTTP {status}: {text}",
                                             status=status, url=url, retry_after=retry_after)
            raise FinalDeliveryError(f"{url} answered HTTP {status}: {text}",
                                     status=status, url=url)
        raise TemporaryDeliveryError(f"more than {self.max_redirects} redirects from {url}",
                                     url=url)
