"""Sphinx configuration of the pyuftp documentation (``sphinx-build docs docs/_build``)."""
import re
from pathlib import Path

project = "pyuftp"
author = "the pyuftp authors"
# The release, read from the package without importing it (the docs build needs no lxml).
release = re.search(
    r'^__version__ = "([^"]+)"',
    (Path(__file__).resolve().parent.parent / "pyuftp" / "__init__.py").read_text(encoding="utf-8"),
    re.MULTILINE,
).group(1)
version = release

extensions = []
root_doc = "index"
exclude_patterns = ["_build"]
highlight_language = "python3"
html_title = f"pyuftp {release}"
