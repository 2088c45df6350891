"""A real OAuth2 issuer on 127.0.0.1 for the tests: a client-credentials token endpoint that
signs JWTs with keys made at test time, and the JWKS that publishes those keys.

    async with Issuer(clients={"agr-client": "s3cret"}) as issuer:
        issuer.token_url, issuer.jwks_url, issuer.issuer
        issuer.token_requests, issuer.jwks_requests      # counted
        issuer.rotate(drop_old=True)                     # a new signing key
        issuer.jwt(aud="dso.example.com", exp=...)       # a token signed by hand
"""
from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

HOST = "127.0.0.1"


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds (AssertionError after ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "not in time"
        await asyncio.sleep(0.02)


def make_key(algorithm: str = "ES256") -> Any:
    """A fresh private key for ``algorithm`` (ES256: P-256; RS256: RSA 2048)."""
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: Any, kid: str, algorithm: str) -> dict[str, Any]:
    """The JWK of ``key``'s public half, as an issuer publishes it."""
    algo = jwt.algorithms.RSAAlgorithm if algorithm == "RS256" else jwt.algorithms.ECAlgorithm
    jwk = algo.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig", alg=algorithm)
    return jwk


class Issuer:
    """Token endpoint (POST /token) and JWKS (GET /jwks) on a free loopback port.

    :param clients: client id -> secret accepted (HTTP Basic or form fields).
    :param expires_in: what the token answers say (None: left out).
    :param delay: seconds the token endpoint takes (to make concurrent requests overlap).
    """

    def __init__(self, clients: dict[str, str] | None = None, *, algorithm: str = "ES256",
                 expires_in: Any = 300, delay: float = 0.0, audience: str = "dso.example.com"):
        self.clients = clients or {"agr-client": "s3cret-Value"}
        self.algorithm = algorithm
        self.expires_in = expires_in
        self.delay = delay
        self.audience = audience
        self.token_requests = 0
        self.jwks_requests = 0
        self.forms: list[dict[str, str]] = []
        self.fail_with: tuple[int, str] | None = None  # (status, body) for /token
        self.keys: dict[str, Any] = {}
        self.kid = ""
        self.rotate()
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def issuer(self) -> str:
        return f"https://issuer.example.com/{id(self)}"

    @property
    def token_url(self) -> str:
        return f"http://{HOST}:{self.port}/token"

    @property
    def jwks_url(self) -> str:
        return f"http://{HOST}:{self.port}/jwks"

    def rotate(self, drop_old: bool = False) -> str:
        """Sign with a new key from now on (and stop publishing the old ones)."""
        if drop_old:
            self.keys.clear()
        self.kid = uuid.uuid4().hex[:12]
        self.keys[self.kid] = make_key(self.algorithm)
        return self.kid

    def jwt(self, *, kid: str | None = None, key: Any = None, algorithm: str | None = None,
            headers: dict[str, Any] | None = None, **claims: Any) -> str:
        """A token signed with the current key (or ``key``), with default claims."""
        now = int(time.time())
        body = {"iss": self.issuer, "aud": self.audience, "iat": now, "exp": now + 300,
                "sub": "agr-client"}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        kid = kid or self.kid
        return jwt.encode(body, key or self.keys[self.kid], algorithm=algorithm or self.algorithm,
                          headers={"kid": kid, **(headers or {})})

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = dict(await request.post())
        self.forms.append({k: str(v) for k, v in form.items()})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            return web.Response(status=self.fail_with[0], text=self.fail_with[1],
                                content_type="application/json")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials" or \
                self.clients.get(str(client_id)) != secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        answer: dict[str, Any] = {"access_token": self.jwt(aud=form.get("audience") or
                                                           self.audience, sub=client_id),
                                  "token_type": "bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return web.json_response(answer)

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_requests += 1
        return web.json_response({"keys": [public_jwk(k, kid, self.algorithm)
                                           for kid, k in self.keys.items()]})

    async def __aenter__(self) -> Issuer:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_get("/jwks", self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
