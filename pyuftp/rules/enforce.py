"""A rule set as the check the message layer runs before it renders a payload."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import Rules

Enforce = Callable[[str, dict[str, Any]], None]


def enforcer(rules: Rules | bool | None) -> Enforce | None:
    """``rules`` as a check that raises one RuleViolation for all the stateless rules a payload
    breaks: None for ``rules=False``, the default rules for None or True, else ``rules``."""
    if rules is False:
        return None
    from . import DEFAULT_RULES

    chosen = DEFAULT_RULES if rules is None or rules is True else rules

    def enforce(message_type: str, payload: dict[str, Any]) -> None:
        chosen.refuse(message_type, chosen.check(message_type, payload))

    return enforce
