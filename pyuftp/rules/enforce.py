"""A rule set as the check the message layer runs before it renders a payload."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import Rules

Enforce = Callable[[str, dict[str, Any]], None]


def enforcer(rules: Rules | bool | None) -> Enforce | None:
    """``rules`` as a check that raises one RuleViolation for all the stateless rules a payload
    breaks: None for ``rules=False``, the default rules for None or True, else ``rules``
    (the one meaning, :func:`pyuftp.rules.chosen`)."""
    from . import chosen

    picked = chosen(rules)
    if picked is None:
        return None
    use: Rules = picked

    def enforce(message_type: str, payload: dict[str, Any]) -> None:
        use.refuse(message_type, use.check(message_type, payload))

    return enforce
