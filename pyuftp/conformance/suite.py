"""The whole suite: every check that applies to a role pair, in the order they run."""
from __future__ import annotations

from collections.abc import Sequence

from ..message.catalog import ROLES
from . import messages, transport
from .checks import Check

__all__ = ["registry"]


def registry(us: str, them: str, versions: Sequence[str]) -> list[Check]:
    """Every check that applies when a party of role ``us`` checks one of role ``them``, in
    the order they run: the transport checks, then the message checks per version."""
    if us not in ROLES or them not in ROLES or us == them:
        raise ValueError(f"the role pair ({us!r}, {them!r}) is not one UFTP parties form: "
                         f"two different roles of {', '.join(ROLES)}")
    found = transport.checks(versions[0]) + messages.checks(us, them, versions)
    return [check for check in found if check.applies(us, them)]
