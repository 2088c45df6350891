"""Make every generated file of pyuftp from its one source, or check that they are current.

    python tools/generate.py          # write the files that are out of date
    python tools/generate.py --check  # exit 1 and name them, writing nothing

What is generated, each by a maker beside this file with an ``outputs()`` of its own:

- ``make_schemas``: ``pyuftp/schemas/<version>/uftp.xsd`` and ``uftp-received.xsd``, from the
  field-type table (``pyuftp/message/catalog.py``, ``fields.py``);
- ``make_types``: ``pyuftp/types/enums.py``, ``pyuftp/types/payloads.py`` (TypedDicts and
  StrEnums) and ``pyuftp/clients/roles.py`` (the role clients, typed per message type);
- ``make_api``: ``pyuftp/api.py`` (the public message functions, typed per message type),
  from the catalog;
- ``make_rules_doc``: ``docs/rules.rst``, from the rules registry;
- ``make_docs``: ``docs/representations.rst``, by rendering the examples.

Generated files are whole files: nothing in them is written by hand, and each says so at its
top. After changing the catalog, a template, a rule or a description, run this once.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
COMMAND = "python tools/generate.py"
#: In the order they run: the types first, since the later makers import pyuftp.
MAKERS = ("make_schemas", "make_types", "make_api", "make_rules_doc", "make_docs")


def maker(name: str) -> ModuleType:
    """A maker module, loaded by path (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stale(outputs: dict[Path, str]) -> list[Path]:
    """The files whose text on disk differs from ``outputs`` (or that are missing)."""
    return [path for path, text in outputs.items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text]


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    unknown = [a for a in argv if a != "--check"]
    if unknown:
        print(f"usage: {COMMAND} [--check]", file=sys.stderr)
        return 2
    out_of_date = []
    for name in MAKERS:
        outputs = maker(name).outputs()
        for path in stale(outputs):
            out_of_date.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(outputs[path], encoding="utf-8", newline="\n")
                print(f"wrote {shown(path)}")
    if check and out_of_date:
        print(f"out of date (run {COMMAND}):", *map(shown, out_of_date), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
