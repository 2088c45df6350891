"""``python -m pyuftp``: the command line, :mod:`pyuftp.cli`.

:func:`format_xml` and :func:`format_payload` stay importable from here (tools/make_docs.py
and the docs tests use them); they live in :mod:`pyuftp.cli._format`.
"""
from __future__ import annotations

import sys

from .cli import build_parser, format_payload, format_xml, main

__all__ = ["main", "build_parser", "format_payload", "format_xml"]

if __name__ == "__main__":
    sys.exit(main())
