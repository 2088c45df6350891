"""Who may talk to whom: OAuth2 tokens out, bearer tokens checked in, TLS at both ends.

- :class:`OAuth2Clients` / :class:`ClientCredentials`: the ``auth`` of a client or courier
  that fetches, caches and renews OAuth2 client-credentials tokens per counterparty;
- :class:`BearerCheck` (sans-I/O) and :class:`JwksFetcher`: a service's check of the JWTs
  that senders present, against the issuer's published keys;
- :func:`server_context`, :func:`client_context`: SSL contexts from PEM files (mutual TLS
  too); :func:`refuse_plain_http`: the spec's rule against unencrypted exchange.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .oauth2 import ClientCredentials, OAuth2Clients
from .tls import client_context, is_loopback_host, refuse_plain_http, server_context

if TYPE_CHECKING:
    from .bearer import BearerCheck, BearerDecision
    from .jwks import JwksFetcher

# The bearer check needs PyJWT (pip install usef-uftp[oauth2]): imported on first use only,
# so that sending, TLS and OAuth2 tokens out work without it.
_LAZY = {"BearerCheck": "bearer", "BearerDecision": "bearer", "JwksFetcher": "jwks"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["BearerCheck", "BearerDecision", "JwksFetcher", "ClientCredentials",
           "OAuth2Clients", "client_context", "server_context", "is_loopback_host",
           "refuse_plain_http"]
