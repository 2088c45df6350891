"""Finding other parties: their public keys and service endpoints, by (domain, role).

A :class:`Directory` holds what was exchanged by hand; further sources (DNS, a market
platform's participant registry) live beside it in this package.
"""
from __future__ import annotations

from .directory import Directory, Party

__all__ = ["Directory", "Party"]
