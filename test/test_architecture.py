"""The house rules of pyuftp/: no import cycle, no module importing a higher layer, small
rooms. What the layers are: docs/architecture.rst."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pyuftp"

# Lower numbers are lower layers; a module may import its own layer and the ones below.
LAYERS = {
    "exceptions": 0,
    "catalog": 1, "fields": 1, "descriptions": 1,
    "speed": 2, "check": 2, "render": 2, "read": 2, "schema_errors": 2, "messaging": 2,
    "examples": 2, "payloads": 2, "enums": 2,
    "crypto": 3, "store": 3, "envelope": 3, "discovery": 3,
    "rules": 4, "exchange": 4,
    "transport": 5, "attempts": 5, "outbox": 5, "delivery": 5, "client": 5, "handlers": 5,
    "inbox": 6, "limits": 6, "service": 7,
    "demo": 8, "__main__": 8, "__init__": 8,
}


def modules() -> dict[str, Path]:
    return {".".join(path.relative_to(PACKAGE).with_suffix("").parts): path
            for path in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    top = module.split(".")[0]
    assert top in LAYERS, f"pyuftp/{module}: place it in a layer (test_architecture.LAYERS)"
    return LAYERS[top]


def imports(module: str, path: Path) -> set[str]:
    """The pyuftp modules that ``module`` imports (function-level imports count too)."""
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("pyuftp"):
                name = node.module.removeprefix("pyuftp").lstrip(".")
            else:
                continue
            for alias in node.names:
                candidates = [f"{name}.{alias.name}".strip("."), name]
                found.add(next((c for c in candidates if c in modules() or
                                f"{c}.__init__" in modules()), name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pyuftp."):
                    found.add(alias.name.removeprefix("pyuftp."))
    return {f for f in found if f and f != module and not (module.endswith("__init__")
                                                          and f == module.removesuffix(".__init__"))}


GRAPH = {module: imports(module, path) for module, path in modules().items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_a_higher_layer(module):
    if module == "__init__":
        return  # the package's face re-exports from everywhere, lazily
    higher = [m for m in GRAPH[module] if layer(m) > layer(module)]
    assert not higher, f"pyuftp/{module} imports the higher {higher}"


def test_no_import_cycles():
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for target in GRAPH.get(node, ()):
            target = target if target in GRAPH else f"{target}.__init__"
            if target == "__init__" or target not in GRAPH:
                continue
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif not state.get(target):
                visit(target, stack)
        stack.pop()
        state[node] = 2

    for module in GRAPH:
        if module != "__init__" and not state.get(module):
            visit(module, [])
    assert not cycles, cycles


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_rooms_are_small(module):
    lines = len(modules()[module].read_text().splitlines())
    limit = 500 if module in ("examples", "descriptions", "catalog") else 420  # data, not code
    assert lines <= limit, f"pyuftp/{module}.py has {lines} lines"
