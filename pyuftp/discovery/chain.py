"""The look-up chain: static entries first, then DNS, then any further sources.

    chain = LookupChain(directory, DnsDiscovery(resolver, trust_anchors=anchors),
                        registry.lookup)                 # any async (domain, role) callable
    service = ShapeshifterDsoService(domain, key, chain.key, chain.endpoint, ...)

:meth:`LookupChain.key` and :meth:`LookupChain.endpoint` are the ``key_lookup`` and
``endpoint_lookup`` services and clients take. A key look-up answers a tuple of keys (two
during a key rotation: a message signed with either is accepted). When the answer is cached
it is returned at once, not as a coroutine: the hot path costs a few dict look-ups.

A further source is any callable ``(domain, role)`` answering (or awaiting to) a
:class:`~.records.Participant`, a key string, a tuple of key strings, or None. Sources are
asked in order until one knows the party; a source that fails (``DiscoveryError``) is passed
over, and its error is raised only when no later source knows the party either. A failed
endpoint look-up raises :class:`~pyuftp.exceptions.TemporaryDeliveryError` (the delivery is
retried later), a failed key look-up ``DiscoveryError`` (the service answers 419).
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._shared import maybe_await
from ..exceptions import TemporaryDeliveryError, excerpt
from .directory import Directory
from .records import MISS, DiscoveryError, Participant, normal_domain, normal_role

if TYPE_CHECKING:
    from .dns import DnsDiscovery

logger = logging.getLogger(__name__)

Source = Callable[[str, str], Any]
Keys = tuple[str, ...]
#: How many (domain, role) pairs the refresh limiter remembers.
MAX_REFRESHED = 4096


def as_participant(domain: str, role: str, found: Any, source: str) -> Participant | None:
    """A source's answer as a Participant (None when it knows nothing)."""
    if found is None or isinstance(found, Participant):
        return found
    if isinstance(found, str):
        found = (found,)
    if isinstance(found, tuple) and all(isinstance(key, str) for key in found):
        return Participant(domain, role, found, authenticated=True, source=source) \
            if found else None
    raise TypeError(f"look-up source {source} answered a {type(found).__name__}; expected a "
                    "Participant, a key string, a tuple of them or None")


class LookupChain:
    """Keys and endpoints from ``directory``, then ``dns``, then each of ``sources``.

    :param refresh_interval: :meth:`refresh` asks DNS again for a party at most this often
        (seconds): a flood of badly signed messages cannot turn into a flood of queries.
    """

    def __init__(self, directory: Directory | None = None, dns: DnsDiscovery | None = None,
                 *sources: Source, refresh_interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.directory, self.dns, self.sources = directory, dns, sources
        self.refresh_interval, self.clock = refresh_interval, clock
        self._refreshed: OrderedDict[tuple[str, str], float] = OrderedDict()

    # --- keys -------------------------------------------------------------------------------


    @property
    def changes(self) -> int | None:
        """The directory's count of parties added (a negative cache starts again when it
        moves); None without a directory."""
        return None if self.directory is None else self.directory.changes

    def key(self, domain: str, role: str) -> Keys | str | None | Awaitable[Keys | str | None]:
        """The sender's public key(s): a value when known now, else an awaitable."""
        if self.directory is not None:
            known = self.directory.key(domain, role)
            if known:
                return known
        if self.dns is not None:
            try:
                hit = self.dns.peek("keys", domain, role)
            except DiscoveryError:
                if not self.sources:
                    raise
                return self._key(domain, role, ask_dns=False)
            if hit:
                return hit  # type: ignore[no-any-return]
            if hit is MISS:
                return self._key(domain, role, ask_dns=True)
        if not self.sources:
            return None
        return self._key(domain, role, ask_dns=False)

    async def _key(self, domain: str, role: str, ask_dns: bool) -> Keys | None:
        error: DiscoveryError | None = None
        if ask_dns and self.dns is not None:
            try:
                keys = await self.dns.keys(domain, role)
                if keys:
                    return keys
            except DiscoveryError as exc:
                error = exc
        for found, failure in await self._ask_sources(domain, role, "keys"):
            if found is not None:
                return found.keys
            error = error or failure
        if error is not None:
            raise error
        return None

    async def refresh(self, domain: str, role: str) -> Keys | None:
        """Ask again for the keys after a signature did not verify (the key may have been
        rotated since it was cached); None when asked too recently or nothing is known."""
        peer = (domain, role)
        now = self.clock()
        last = self._refreshed.get(peer)
        if last is not None and now - last < self.refresh_interval:
            return None
        self._refreshed[peer] = now
        self._refreshed.move_to_end(peer)
        while len(self._refreshed) > MAX_REFRESHED:
            self._refreshed.popitem(last=False)
        self.invalidate(domain, role)
        found = await maybe_await(self.key(domain, role))
        return (found,) if isinstance(found, str) else found

    def invalidate(self, domain: str, role: str) -> None:
        """Forget cached answers for the party in every source that caches."""
        if self.dns is not None:
            self.dns.invalidate(domain, role)
        for source in self.sources:
            forget = getattr(getattr(source, "__self__", source), "invalidate", None)
            if callable(forget):
                forget(domain, role)

    # --- endpoints --------------------------------------------------------------------------

    async def endpoint(self, domain: str, role: str) -> str | None:
        """The party's service URL; TemporaryDeliveryError when a source failed and none
        knows it."""
        if self.directory is not None:
            url = self.directory.endpoint(domain, role)
            if url:
                return url
        error: DiscoveryError | None = None
        if self.dns is not None:
            try:
                url = await self.dns.endpoint(domain, role)
                if url:
                    return url
            except DiscoveryError as exc:
                error = exc
        for found, failure in await self._ask_sources(domain, role, "endpoint"):
            if found is not None and found.endpoint:
                return found.endpoint
            error = error or failure
        if error is not None:
            raise TemporaryDeliveryError(f"no endpoint for {excerpt(domain)} ({excerpt(role)}): "
                                         f"{error}") from error
        return None

    # --- everything -------------------------------------------------------------------------

    async def lookup(self, domain: str, role: str) -> Participant | None:
        """What the first source that knows the party says (its keys, endpoint, flags)."""
        domain, role = normal_domain(domain), normal_role(role)
        if self.directory is not None and (domain, role) in self.directory:
            return Participant(domain, role, (self.directory.key(domain, role) or "",),
                               self.directory.endpoint(domain, role), authenticated=True,
                               source="directory")
        error: DiscoveryError | None = None
        if self.dns is not None:
            try:
                found = await self.dns.lookup(domain, role)
                if found.keys:
                    return found
            except DiscoveryError as exc:
                error = exc
        for participant, failure in await self._ask_sources(domain, role, "participant"):
            if participant is not None:
                return participant
            error = error or failure
        if error is not None:
            raise error
        return None

    async def _ask_sources(self, domain: str, role: str, what: str
                           ) -> list[tuple[Participant | None, DiscoveryError | None]]:
        """Each further source in turn until one knows the party (with keys)."""
        answers: list[tuple[Participant | None, DiscoveryError | None]] = []
        for number, source in enumerate(self.sources, 1):
            name = getattr(source, "__qualname__", f"source {number}")
            try:
                found = as_participant(domain, role, await maybe_await(source(domain, role)),
                                       name)
            except DiscoveryError as exc:
                logger.info("%s look-up of %s (%s) in %s failed: %s", what, excerpt(domain),
                            excerpt(role), name, exc)
                answers.append((None, exc))
                continue
            if found is not None and found.keys:
                answers.append((found, None))
                break
        return answers


__all__ = ["LookupChain", "Source", "as_participant"]
