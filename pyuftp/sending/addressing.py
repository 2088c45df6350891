"""Where a party's messages go, and whether they can go there: endpoints and keys of others.

:class:`Addresses` answers a courier's two questions about a recipient ``(domain, role)``:
its service URL (a fixed one, else looked up and kept for a few minutes) and, before a
message is queued, whether it can be addressed at all. A missing endpoint, an endpoint that
is no URL, or (given a key lookup) a missing key is the caller's mistake and raises
:class:`~pyuftp.exceptions.AddressingError` at once, naming the domain and role; a lookup
that fails (DNS down) is not, and becomes a retried delivery.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..exceptions import AddressingError, TemporaryDeliveryError, excerpt
from ..auth.tls import check_url
from .._shared import maybe_await

logger = logging.getLogger(__name__)

EndpointLookup = Callable[[str, str], "str | None | Awaitable[str | None]"]
#: ``(domain, role) -> public key`` (sync or async): None when unknown.
KeyLookup = Callable[[str, str], Any]
ENDPOINT_TTL = 300.0  # seconds a looked-up endpoint is reused


class Addresses:
    """The endpoints (fixed, or looked up and kept for :data:`ENDPOINT_TTL`) and keys of the
    parties one courier sends to."""

    def __init__(self, endpoint_lookup: EndpointLookup | None,
                 endpoints: Mapping[tuple[str, str], str] | None,
                 key_lookup: KeyLookup | None) -> None:
        self.endpoint_lookup = endpoint_lookup
        self.key_lookup = key_lookup
        self.fixed = {peer: check_url(url) for peer, url in (endpoints or {}).items()}
        self._looked_up: dict[tuple[str, str], tuple[str, float]] = {}

    async def endpoint(self, domain: str, role: str) -> str:
        """The service URL of ``domain`` in ``role``. AddressingError when none is known or
        it is not an absolute http(s) URL; what the lookup raises goes through."""
        peer = (domain, role)
        if peer in self.fixed:
            return self.fixed[peer]
        known = self._looked_up.get(peer)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        url = None
        if self.endpoint_lookup is not None:
            url = await maybe_await(self.endpoint_lookup(domain, role))
        if not url:
            raise AddressingError(
                f"no endpoint known for {excerpt(domain)} ({role}): add it with its URL, "
                "e.g. directory.add(domain, role, public_key, endpoint), or give a client "
                "its recipient_endpoint", domain, role)
        try:
            checked = check_url(url, f"the endpoint of {excerpt(domain)} ({role})")
        except ValueError as exc:
            raise AddressingError(str(exc), domain, role) from None
        self._looked_up[peer] = (checked, time.monotonic() + ENDPOINT_TTL)
        return checked

    async def delivery_url(self, domain: str, role: str) -> str:
        """:meth:`endpoint` for one delivery attempt from the outbox: every failure is a
        TemporaryDeliveryError in words (the directory may be put right within the hour)."""
        try:
            return await self.endpoint(domain, role)
        except AddressingError as exc:
            raise TemporaryDeliveryError(str(exc)) from None
        except (asyncio.CancelledError, TemporaryDeliveryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a lookup that failed: try again later
            raise TemporaryDeliveryError(
                f"looking up the endpoint of {excerpt(domain)} ({role}) failed: "
                f"{type(exc).__name__}: {excerpt(exc, 200)}") from None

    async def check(self, domain: str, role: str, *, queued: bool) -> None:
        """AddressingError now if ``domain`` in ``role`` has no endpoint (or an invalid one)
        or, with a key lookup, no key. A lookup that fails is not the caller's mistake: a
        message to be ``queued`` goes on (the outbox retries), one to POST now fails with a
        TemporaryDeliveryError."""
        try:
            await self.endpoint(domain, role)
        except (AddressingError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - DNS down, a registry's outage: temporary
            if not queued:
                raise TemporaryDeliveryError(
                    f"looking up the endpoint of {excerpt(domain)} ({role}) failed: "
                    f"{type(exc).__name__}: {excerpt(exc, 200)}") from exc
            logger.warning("looking up the endpoint of %s (%s) failed (%s: %s); the message "
                           "is queued and its delivery retried", excerpt(domain), role,
                           type(exc).__name__, excerpt(exc, 200))
        if self.key_lookup is None:
            return
        try:
            key = await maybe_await(self.key_lookup(domain, role))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a lookup that failed, not a missing key
            logger.warning("looking up the key of %s (%s) failed (%s); sending anyway",
                           excerpt(domain), role, type(exc).__name__)
            return
        if not key:
            raise AddressingError(
                f"no public key known for {excerpt(domain)} ({role}): its answers would be "
                "refused (HTTP 419); add it, e.g. directory.add(domain, role, public_key, "
                "endpoint)", domain, role)


__all__ = ["Addresses", "EndpointLookup", "KeyLookup", "ENDPOINT_TTL"]
