"""Two small things several layers need, kept once, at the bottom.

- :func:`maybe_await`: users give sync or async callables (key and endpoint look-ups,
  discovery sources, handlers), and pyuftp takes either.
- :func:`positive_int`: the check of a count option (``max_pending``, ``per_peer`` ...).
"""
from __future__ import annotations

import inspect
from typing import Any


async def maybe_await(value: Any) -> Any:
    """The value, awaited if it is awaitable: user callbacks may be sync or async."""
    return await value if inspect.isawaitable(value) else value


def positive_int(value: Any, name: str) -> int:
    """``value`` if it is an int of 1 or more (not a bool), else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int of 1 or more, not {value!r}")
    return value
