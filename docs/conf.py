"""Sphinx configuration of the pyuftp documentation.

    pip install '.[docs]'
    sphinx-build -W -n -b html docs docs/_build/html

``-W`` turns warnings into errors and ``-n`` (nitpicky) makes every cross-reference resolve;
CI (``.ci/run``) builds it so.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # autodoc imports pyuftp from this checkout

project = "pyuftp"
author = "the pyuftp authors"
copyright = "2026, the pyuftp authors"
release = re.search(
    r'^__version__ = "([^"]+)"',
    (ROOT / "pyuftp" / "__init__.py").read_text(encoding="utf-8"),
    re.MULTILINE,
).group(1)
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx_copybutton",
    "sphinx_design",
]
root_doc = "index"
exclude_patterns = ["_build"]
highlight_language = "python3"
nitpicky = True

html_theme = "furo"
html_title = f"pyuftp {release}"
html_static_path = ["_static"]
html_css_files = ["pyuftp.css"]
html_theme_options = {
    "source_repository": "https://github.com/pyuftp/pyuftp/",
    "source_branch": "main",
    "source_directory": "docs/",
}

# Copy only the code, never a shell prompt or Python's >>> and ... prompts.
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {}

# The docs are built offline (no intersphinx): types of the standard library and of the
# libraries pyuftp uses appear in signatures without a link. pyuftp's own names must resolve.
nitpick_ignore_regex = [
    ("py:.*", r"(aiohttp|ssl|os|asyncio|collections\.abc|typing|datetime|decimal|logging|"
              r"lxml|nacl|sqlite3|enum|dataclasses|argparse)(\..+)?"),
    ("py:class", r"(Awaitable|Callable|Mapping|Sequence|Iterable|Iterator|Collection|Any|"
                 r"PathLike|SSLContext|ClientSession|Path|NoneType|ellipsis)"),
]

# Names in docstrings of modules the docs do not own, that Sphinx cannot resolve; each is
# listed in the report of the change that added it. ":param host, port, path:" in
# ShapeshifterService and Courier reads to Sphinx as a parameter list with types.
nitpick_ignore = [
    ("py:class", "host"), ("py:class", "port"), ("py:class", "retry_for"),
    ("py:class", "max_age"), ("py:class", "max_pending"), ("py:class", "attempts"),
    ("py:class", "backoff"),
    # ShapeshifterService's docstring names its own attributes without the class
    ("py:attr", "url"), ("py:attr", "limits"),
]
# The rules registry (pyuftp/rules) is documented by another page (docs/rules.rst, not here
# yet); docstrings of create_message and Courier point into it.
nitpick_ignore_regex.append(("py:.*", r"pyuftp\.rules(\..+)?"))


# --- the layer map, drawn from pyuftp/_layers.py (its one source) -------------------------
from docutils.parsers.rst import Directive  # noqa: E402
from docutils.statemachine import StringList  # noqa: E402
from docutils import nodes  # noqa: E402


class LayersDirective(Directive):
    """``.. pyuftp-layers::``: a table of pyuftp's layers, highest first, with the folders
    and loose modules of each (from :mod:`pyuftp._layers`, so the page cannot drift)."""

    def run(self) -> list[nodes.Node]:
        from pyuftp._layers import LAYERS

        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 18 30 52", "",
                 "   * - layer", "     - in ``pyuftp/``", "     - what it does"]
        for layer in reversed(LAYERS):
            where = ", ".join(f"``{p}/``" if (ROOT / "pyuftp" / p).is_dir() else f"``{p}.py``"
                              for p in layer.parts)
            lines += [f"   * - {layer.name}", f"     - {where}", f"     - {layer.job}"]
        container = nodes.container()
        self.state.nested_parse(StringList(lines), self.content_offset, container)
        return container.children


def setup(app):  # noqa: ANN001, ANN201
    app.add_directive("pyuftp-layers", LayersDirective)
    return {"parallel_read_safe": True}
