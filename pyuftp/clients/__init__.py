"""Clients that sign UFTP messages and send them to another party's service.

:class:`ShapeshifterClient` is what every client shares; the role clients (one per sender and
recipient role) are generated from the catalog into :mod:`pyuftp.clients.roles`.
"""
from __future__ import annotations

from .client import ShapeshifterClient
from .roles import (CLIENTS, ShapeshifterAgrCroClient, ShapeshifterAgrDsoClient,
                    ShapeshifterCroAgrClient, ShapeshifterCroDsoClient,
                    ShapeshifterDsoAgrClient, ShapeshifterDsoCroClient, client_class)

__all__ = ["ShapeshifterClient", "CLIENTS", "client_class", "ShapeshifterAgrCroClient",
           "ShapeshifterAgrDsoClient", "ShapeshifterCroAgrClient", "ShapeshifterCroDsoClient",
           "ShapeshifterDsoAgrClient", "ShapeshifterDsoCroClient"]
