"""OAuth2 client credentials for outgoing messages: a bearer token per counterparty.

    oauth = OAuth2Clients({
        ("dso.example.com", "DSO"): ClientCredentials(
            "https://idp.dso.example.com/oauth2/token", "agr-client", secret,
            scope="uftp", audience="dso.example.com"),
    })
    client = ShapeshifterAgrDsoClient(..., auth=oauth)     # or client_options={"auth": oauth}

Which recipients need a token is said by the keys: ``(domain, role)``, a domain (any role), or
a URL prefix of the endpoint (``"https://uftp.dso.example.com/"``). A token is fetched with
the client credentials grant (RFC 6749 section 4.4), cached until shortly before it expires
(``expires_in``) and sent as ``Authorization: <token_type> <token>``. Concurrent sends share
one token request per credentials; when a service answers 401 the token it refused is dropped
and the POST is tried once more with a fresh one (see :class:`~pyuftp.sending.transport.PeerAuth`).
A token endpoint that cannot be reached, refuses, or answers nonsense makes the delivery fail
temporarily, with the cause in the error. Secrets and tokens appear in no repr, log or error.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import aiohttp

from ..exceptions import TemporaryDeliveryError, excerpt
from .tls import refuse_plain_http

logger = logging.getLogger(__name__)

#: The most bytes of a token endpoint's answer that are read.
MAX_TOKEN_RESPONSE = 64 * 1024
#: The longest access token taken (JWTs with many claims run to a few KB).
MAX_TOKEN = 16 * 1024
#: The longest a token is reused, whatever ``expires_in`` says (seconds).
MAX_LIFETIME = 24 * 3600.0
#: Printable ASCII without spaces: all that a token may contain in a header (RFC 6750 b64token
#: and the like); anything else could split or bend the Authorization header.
_TOKEN_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))


@dataclass(frozen=True)
class ClientCredentials:
    """One OAuth2 client registered at a token endpoint (a client per counterparty).

    :param token_url: the token endpoint (https, or http on a loopback address).
    :param client_id: the client's id, with ``client_secret`` its credentials (the secret
        appears in no repr).
    :param scope: asked for in the token request when given, as is ``audience``.
    :param auth_method: ``"basic"`` (HTTP Basic, RFC 6749's default) or ``"post"`` (the
        credentials as form fields, for endpoints that only take that).
    :param default_lifetime: seconds a token without ``expires_in`` is reused.
    :param refresh_margin: a token is renewed this many seconds before it expires (at most
        half its lifetime), so that none expires on its way.
    """

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    audience: str | None = None
    auth_method: str = "basic"
    default_lifetime: float = 300.0
    refresh_margin: float = 30.0
    allow_plain_http: bool = False
    timeout: float = 10.0

    def __post_init__(self) -> None:
        refuse_plain_http(self.token_url, self.allow_plain_http, "token_url")
        if self.auth_method not in ("basic", "post"):
            raise ValueError(f"auth_method must be 'basic' or 'post', not {self.auth_method!r}")
        if not self.client_id or not self.client_secret:
            raise ValueError("client_id and client_secret are required")

    def form(self) -> dict[str, str]:
        """The token request's form fields (the credentials only with ``auth_method="post"``)."""
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        if self.audience:
            data["audience"] = self.audience
        if self.auth_method == "post":
            data.update(client_id=self.client_id, client_secret=self.client_secret)
        return data


@dataclass(frozen=True)
class Token:
    """An access token and when to stop using it (``time.monotonic()`` seconds)."""

    header: str = field(repr=False)  # "Bearer eyJ..."
    renew_at: float


class OAuth2Clients:
    """The ``auth`` of a client or courier that fetches and caches OAuth2 tokens per
    counterparty (see the module docstring).

    :param credentials: ``{(domain, role) | domain | URL prefix: ClientCredentials}``.
    :param ssl: an :class:`ssl.SSLContext` for the token endpoints (e.g. a private CA).
    :param clock: ``() -> seconds`` (monotonic), for tests.
    """

    def __init__(self, credentials: Mapping[tuple[str, str] | str, ClientCredentials], *,
                 ssl: ssl.SSLContext | None = None,
                 clock: Any = time.monotonic) -> None:
        for key, value in credentials.items():
            if not isinstance(value, ClientCredentials):
                raise TypeError(f"credentials for {key!r} must be ClientCredentials, "
                                f"not {type(value).__name__}")
        self.credentials = dict(credentials)
        self._prefixes = sorted((k for k in self.credentials if isinstance(k, str)
                                 and k.startswith(("https://", "http://"))), key=len,
                                reverse=True)
        self.ssl = ssl
        self.clock = clock
        self.token_requests = 0  # how many were sent: for operators and tests
        self._tokens: dict[ClientCredentials, Token] = {}
        self._pending: dict[ClientCredentials, asyncio.Future[Token]] = {}

    def __repr__(self) -> str:
        clients = ", ".join(f"{k!r}: {v.client_id!r}" for k, v in self.credentials.items())
        return f"OAuth2Clients({{{clients}}})"

    def credentials_for(self, url: str, peer: tuple[str, str] | None) -> ClientCredentials | None:
        """The credentials that a POST to ``peer`` at ``url`` needs, if any: by (domain,
        role), then domain, then the longest matching URL prefix."""
        if peer is not None:
            found = self.credentials.get(peer) or self.credentials.get(peer[0])
            if found is not None:
                return found
        for prefix in self._prefixes:
            if url.startswith(prefix):
                return self.credentials[prefix]
        return None

    # --- the auth seam (pyuftp.sending.transport.PeerAuth) -------------------------------------

    async def __call__(self, url: str) -> dict[str, str]:
        """Plain ``auth(url)``: only URL-prefix keys can match."""
        return await self.headers_for(url, None)

    async def headers_for(self, url: str, peer: tuple[str, str] | None) -> dict[str, str]:
        """``{"Authorization": "<type> <token>"}`` for a recipient that needs a token, else
        ``{}``; TemporaryDeliveryError when no token can be had."""
        credentials = self.credentials_for(url, peer)
        if credentials is None:
            return {}
        return {"Authorization": (await self.token(credentials, peer)).header}

    async def refused(self, url: str, peer: tuple[str, str] | None,
                      sent: Mapping[str, str]) -> bool:
        """A service answered 401: drop the token sent (unless it was renewed meanwhile)
        and say whether trying again with a fresh one makes sense."""
        credentials = self.credentials_for(url, peer)
        if credentials is None or "Authorization" not in sent:
            return False
        cached = self._tokens.get(credentials)
        if cached is not None and cached.header == sent["Authorization"]:
            del self._tokens[credentials]
        logger.info("%s refused the OAuth2 token of client %s: fetching a fresh one",
                    excerpt(url, 200), excerpt(credentials.client_id, 100))
        return True

    # --- tokens ---------------------------------------------------------------------------

    async def token(self, credentials: ClientCredentials,
                    peer: tuple[str, str] | None = None) -> Token:
        """A cached token that is not about to expire, or a new one; one request at a time
        per credentials, shared by every caller that waits for it."""
        cached = self._tokens.get(credentials)
        if cached is not None and self.clock() < cached.renew_at:
            return cached
        pending = self._pending.get(credentials)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(credentials, peer))
            self._pending[credentials] = pending
            pending.add_done_callback(lambda done: self._settled(credentials, done))
        # shield: one caller giving up (a send timeout) does not cancel the others' request
        return await asyncio.shield(pending)

    def _settled(self, credentials: ClientCredentials, done: asyncio.Future[Token]) -> None:
        self._pending.pop(credentials, None)
        if not done.cancelled():
            done.exception()  # retrieved: its waiters may all have given up meanwhile

    async def _fetch(self, credentials: ClientCredentials, peer: tuple[str, str] | None) -> Token:
        who = f" for {peer[0]} ({peer[1]})" if peer else ""
        where = f"an OAuth2 token{who} from {credentials.token_url}"
        self.token_requests += 1
        try:
            token = await self._request(credentials)
        except _TokenError as exc:
            message = _scrub(f"cannot get {where}: {exc}", credentials)
            logger.warning("%s", message)
            raise TemporaryDeliveryError(message, url=credentials.token_url) from None
        self._tokens[credentials] = token
        return token

    async def _request(self, credentials: ClientCredentials) -> Token:
        headers = {"Accept": "application/json"}
        if credentials.auth_method == "basic":
            headers["Authorization"] = _basic(credentials)
        timeout = aiohttp.ClientTimeout(total=credentials.timeout)
        started = self.clock()
        try:
            # A session per request: tokens are fetched rarely, and nothing is left to close.
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.post(
                        credentials.token_url, data=credentials.form(), headers=headers,
                        allow_redirects=False,
                        ssl=self.ssl if self.ssl is not None else True) as response:
                    body = await response.content.read(MAX_TOKEN_RESPONSE + 1)
                    status = response.status
        except asyncio.TimeoutError:
            raise _TokenError(f"no answer within {credentials.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise _TokenError(f"cannot reach it: {excerpt(exc, 200)}") from None
        if len(body) > MAX_TOKEN_RESPONSE:
            raise _TokenError(f"its answer is longer than {MAX_TOKEN_RESPONSE} bytes")
        answer = _json_object(body)
        if status != 200:
            error = answer.get("error") if answer is not None else None
            said = error if isinstance(error, str) else body.decode("utf-8", "replace")
            raise _TokenError(f"HTTP {status}: {excerpt(_scrub(said, credentials), 200)}")
        if answer is None:
            raise _TokenError("its answer is not a JSON object")
        return _token(answer, credentials, started)


class _TokenError(Exception):
    """Why no token came (turned into a TemporaryDeliveryError naming the endpoint)."""


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _token(answer: Mapping[str, Any], credentials: ClientCredentials, started: float) -> Token:
    """The Token in a token endpoint's JSON answer (RFC 6749 section 5.1)."""
    access = answer.get("access_token")
    if not isinstance(access, str) or not access:
        raise _TokenError("its answer has no access_token")
    if len(access) > MAX_TOKEN or not _TOKEN_CHARS.issuperset(access):
        raise _TokenError(f"its access_token is not a token of at most {MAX_TOKEN} printable "
                          "ASCII characters")
    kind = answer.get("token_type", "Bearer")
    if not isinstance(kind, str) or not kind.isascii() or not kind.isalnum() or len(kind) > 32:
        raise _TokenError("its token_type is not a word")
    kind = "Bearer" if kind.lower() == "bearer" else kind  # RFC 6750: case-insensitive
    lifetime = answer.get("expires_in")
    if isinstance(lifetime, str) and lifetime.isascii() and lifetime.isdigit():
        lifetime = int(lifetime[:12])  # some endpoints send a string
    if lifetime is None:
        seconds = credentials.default_lifetime
    elif isinstance(lifetime, (int, float)) and not isinstance(lifetime, bool) and lifetime > 0:
        seconds = min(float(lifetime), MAX_LIFETIME)
    else:
        raise _TokenError("its expires_in is not a positive number of seconds")
    margin = min(credentials.refresh_margin, seconds / 2)
    return Token(f"{kind} {access}", started + seconds - margin)


def _basic(credentials: ClientCredentials) -> str:
    """HTTP Basic of the client's id and secret, each form-encoded first (RFC 6749 2.3.1)."""
    pair = f"{quote_plus(credentials.client_id)}:{quote_plus(credentials.client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def _scrub(text: str, credentials: ClientCredentials) -> str:
    """``text`` without the client secret (or its Basic form), whatever echoed it."""
    return (text.replace(credentials.client_secret, "***")
            .replace(_basic(credentials)[6:], "***"))


__all__ = ["ClientCredentials", "OAuth2Clients", "Token"]
