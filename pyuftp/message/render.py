"""Rendering a complete, checked payload dict as XML with its Jinja2 template.

One template per message type (``pyuftp/templates/FlexOffer.xml`` ...), found in the
folders that the version's :class:`~pyuftp.message.catalog.Spec` names (``template_dirs``),
rendered with autoescaping and the filters of :mod:`pyuftp.message.fields`. The one rule beyond
plain Jinja2: a key absent from a payload dict reads as ``None``, so that
``{% if m.x is not none %}`` leaves an optional attribute out. Jinja2 is imported on first use,
not with pyuftp.

When :data:`pyuftp.message.speed.ENABLED`, the same templates are compiled and called the faster
way of :mod:`pyuftp.message.speed`, with the same output.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from . import speed
from .catalog import spec
from .fields import FILTERS

if TYPE_CHECKING:
    import jinja2

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _environment_class() -> type[jinja2.Environment]:
    import jinja2  # here, not at import time: it is a third of `import pyuftp`

    class Environment(jinja2.Environment):
        def getattr(self, obj: Any, attribute: str) -> Any:
            # Payloads are dicts: an absent optional field is None, not Undefined.
            if isinstance(obj, Mapping):
                return obj.get(attribute)
            return super().getattr(obj, attribute)

    return Environment


@lru_cache(maxsize=None)
def environment(template_dirs: tuple[str, ...], fast: bool) -> jinja2.Environment:
    """The Jinja2 environment for templates in ``template_dirs`` (folders of the pyuftp
    package, searched in order), the plain one or (``fast``) :mod:`pyuftp.message.speed`'s."""
    import jinja2

    loader: jinja2.BaseLoader = jinja2.ChoiceLoader(
        [jinja2.PackageLoader("pyuftp", folder) for folder in template_dirs])
    environment_class = _environment_class()
    if fast:
        environment_class = speed.fast_environment(environment_class)
        loader = speed.inlining_loader(loader)
    env = environment_class(
        loader=loader,
        autoescape=True,  # a value can never break out of its attribute
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters.update(FILTERS)
    logger.debug("Jinja2 environment for %s (%s)", ", ".join(template_dirs),
                 "fast" if fast else "plain")
    return env


@lru_cache(maxsize=None)
def template(message_type: str, template_dirs: tuple[str, ...], fast: bool) -> jinja2.Template:
    return environment(template_dirs, fast).get_template(f"{message_type}.xml")


def render(message_type: str, payload: Mapping[str, Any], version: str | None = None) -> str:
    """Render a complete, checked payload with its template (no defaults, no checks), the
    template of ``version`` (default: the default version's)."""
    fast = speed.ENABLED
    found = template(message_type, spec(version).template_dirs, fast)
    if fast:
        return speed.render(found, payload)
    return found.render(m=payload)
