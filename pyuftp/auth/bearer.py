"""The bearer-token check of incoming requests, with no I/O (sans-I/O).

    bearer = BearerCheck("https://idp.example.com", "dso.example.com",
                         "https://idp.example.com/.well-known/jwks.json")
    decision = bearer.check(request_headers.get("Authorization"), now)
    if decision.fetch_keys:            # a key id it does not know: fetch the JWKS, then again
        bearer.fetch_started(now); bearer.load_keys(jwks_bytes, now)
        decision = bearer.check(header, now, may_fetch=False)
    decision.accepted, decision.reason, decision.claims

A service given a :class:`BearerCheck` refuses with 401, before reading the body, a request
without a valid token: a JWT (RS256 or ES256 by default, never ``none`` or a shared-secret
HMAC) signed by a key in the issuer's JWKS, with the configured ``iss`` and ``aud``, not
expired (``exp`` is required) and already valid (``nbf``), within ``leeway`` seconds of clock
skew. The JWKS is fetched by the service (:mod:`pyuftp.auth.jwks`) and kept; a token naming an
unknown key id asks for a refetch at most once per ``refetch_interval`` seconds, so a flood of
made-up key ids costs the issuer one request per interval. Every input is bounded: the header
length, the JWKS size and key count.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

from ..exceptions import excerpt

#: The longest Authorization header looked at (a JWT with many claims is a few KB).
MAX_HEADER = 8192
#: The most bytes of a JWKS document taken, and the most keys used from it.
MAX_JWKS = 64 * 1024
MAX_KEYS = 32
#: The largest RSA key taken: verifying with a huge modulus costs time.
MAX_RSA_BITS = 8192
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", re.ASCII)


@dataclass(frozen=True)
class BearerDecision:
    """The outcome of one check: ``claims`` when the token is good, else the ``reason``
    (answered with 401); ``fetch_keys`` asks the caller to fetch the JWKS and check again."""

    claims: Mapping[str, Any] | None = field(default=None, repr=False)
    reason: str = ""
    fetch_keys: bool = False

    @property
    def accepted(self) -> bool:
        return self.claims is not None


class BearerCheck:
    """What a service demands of the bearer tokens of incoming requests.

    :param issuer: the ``iss`` a token must carry.
    :param audience: the ``aud`` it must carry (a string, or several accepted ones).
    :param jwks_url: where the issuer publishes its keys (fetched by the service).
    :param algorithms: the signature algorithms accepted (asymmetric ones only).
    :param leeway: seconds of clock skew allowed on ``exp`` and ``nbf``.
    :param refetch_interval: the fewest seconds between two JWKS fetches.
    :param max_key_age: seconds after which known keys are refetched on the next request
        (a failed refetch keeps the old ones).
    """

    def __init__(self, issuer: str, audience: str | Sequence[str], jwks_url: str, *,
                 algorithms: Sequence[str] = ("RS256", "ES256"), leeway: float = 60.0,
                 refetch_interval: float = 60.0, max_key_age: float = 3600.0,
                 max_header: int = MAX_HEADER, max_jwks: int = MAX_JWKS,
                 max_keys: int = MAX_KEYS) -> None:
        weak = [a for a in algorithms if a.lower() == "none" or a.upper().startswith("HS")]
        if weak or not algorithms:
            raise ValueError(f"algorithms must be asymmetric signature algorithms, not {weak}")
        self.issuer = issuer
        self.audience = [audience] if isinstance(audience, str) else list(audience)
        self.jwks_url = jwks_url
        self.algorithms = tuple(algorithms)
        self.leeway = leeway
        self.refetch_interval = refetch_interval
        self.max_key_age = max_key_age
        self.max_header = max_header
        self.max_jwks = max_jwks
        self.max_keys = max_keys
        self.keys: dict[str | None, jwt.PyJWK] = {}
        self.loaded_at: float | None = None
        self.last_fetch: float | None = None

    def __repr__(self) -> str:
        return (f"BearerCheck(issuer={self.issuer!r}, audience={self.audience!r}, "
                f"jwks_url={self.jwks_url!r}, keys={len(self.keys)})")

    # --- the keys -------------------------------------------------------------------------

    def may_fetch(self, now: float) -> bool:
        """Whether a JWKS fetch is allowed now (the first, or ``refetch_interval`` after the
        last attempt)."""
        return self.last_fetch is None or now - self.last_fetch >= self.refetch_interval

    def fetch_started(self, now: float) -> None:
        """Note a fetch attempt (successful or not): the next waits ``refetch_interval``."""
        self.last_fetch = now

    def load_keys(self, document: bytes, now: float) -> int:
        """Take the signature keys of a JWKS document; return how many. ValueError (the
        keys kept as they were) when it is too big, not JSON or has no usable key."""
        if len(document) > self.max_jwks:
            raise ValueError(f"the JWKS is longer than {self.max_jwks} bytes")
        try:
            value = json.loads(document)
        except (ValueError, RecursionError):
            raise ValueError("the JWKS is not JSON") from None
        entries = value.get("keys") if isinstance(value, dict) else None
        if not isinstance(entries, list):
            raise ValueError("the JWKS has no list of keys")
        keys: dict[str | None, jwt.PyJWK] = {}
        for entry in entries[: self.max_keys]:
            key = self._usable(entry)
            if key is not None:
                keys[key.key_id] = key
        if not keys:
            raise ValueError(f"the JWKS has no usable {'/'.join(self.algorithms)} key")
        self.keys, self.loaded_at = keys, now
        return len(keys)

    def _usable(self, entry: Any) -> jwt.PyJWK | None:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            return None
        kid = entry.get("kid")
        if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
            return None
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            return None
        if key.algorithm_name not in self.algorithms:
            return None
        if getattr(key.key, "key_size", 0) > MAX_RSA_BITS:
            return None
        return key

    # --- a request ------------------------------------------------------------------------

    def check(self, authorization: str | None, now: float,
              may_fetch: bool = True) -> BearerDecision:
        """The decision on a request's Authorization header at unix time ``now``; with
        ``may_fetch`` it may ask for the JWKS first (unknown key id, stale keys)."""
        if not authorization:
            return _refuse("a bearer token is required (Authorization: Bearer <JWT>)")
        if len(authorization) > self.max_header:
            return _refuse(f"the Authorization header is longer than {self.max_header} characters")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return _refuse(f"the Authorization scheme must be Bearer, not {excerpt(scheme, 20)!r}")
        token = token.strip(" ")
        if not _TOKEN.fullmatch(token):
            return _refuse("the bearer token is not a JWT")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            return _refuse("the bearer token is not a JWT")
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.algorithms:
            return _refuse(f"the token's algorithm {excerpt(alg, 20)!r} is not accepted")
        stale = self.loaded_at is None or now - self.loaded_at > self.max_key_age
        key = self._key(kid)
        if (key is None or stale) and may_fetch and self.may_fetch(now):
            return BearerDecision(fetch_keys=True)
        if key is None and kid is None:
            return _refuse("the token names no key id (kid) and the issuer has several keys")
        if key is None:
            return _refuse(f"the token's key id {excerpt(kid, 60)!r} is not the issuer's")
        return self._verify(token, key, now)

    def _key(self, kid: Any) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self.keys.values())) if len(self.keys) == 1 else None
        return self.keys.get(kid) if isinstance(kid, str) else None

    def _verify(self, token: str, key: jwt.PyJWK, now: float) -> BearerDecision:
        try:
            claims = jwt.decode(
                token, key, algorithms=list(self.algorithms), audience=self.audience,
                issuer=self.issuer,
                # the times are checked below, against the caller's clock
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                         "require": ["exp", "iss", "aud"]})
        except jwt.InvalidSignatureError:
            return _refuse("the token's signature does not verify")
        except jwt.InvalidAudienceError:
            return _refuse("the token is not for this service (aud)")
        except jwt.InvalidIssuerError:
            return _refuse("the token is not from the trusted issuer (iss)")
        except jwt.MissingRequiredClaimError as exc:
            return _refuse(f"the token has no {excerpt(exc.claim, 20)} claim")
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError) as exc:
            return _refuse(f"the token is not valid: {type(exc).__name__}")
        expires: Any = claims.get("exp")
        not_before: Any = claims.get("nbf", now)
        if not _number(expires) or not _number(not_before):
            return _refuse("the token's exp or nbf is not a number")
        if now > expires + self.leeway:
            return _refuse("the token has expired")
        if now < not_before - self.leeway:
            return _refuse("the token is not valid yet (nbf)")
        return BearerDecision(claims=claims)


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _refuse(reason: str) -> BearerDecision:
    return BearerDecision(reason=reason)


__all__ = ["BearerCheck", "BearerDecision", "MAX_HEADER", "MAX_JWKS"]
