"""The package layout is the architecture: imports go one way, down the layers, with no circles."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "builder"
# Each layer may import the ones after it, never one before it (README, Architecture).
LAYERS = [
    ["cli"],
    ["runs"],
    ["targets"],
    ["images"],
    ["decide", "container"],
    ["project"],
    ["repositories"],
    ["code"],
    ["state"],
    ["errors"],
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Every import of a builder module, at any depth (lazy and TYPE_CHECKING ones too)."""

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                target = owner(name) if name.startswith("builder") else None
                if target and target != module and not module.startswith(target + "."):
                    edges.add(target)
    return graph


def _layer(module: str) -> int | None:
    part = module.split(".")[1] if "." in module else ""
    return next((index for index, names in enumerate(LAYERS) if part in names), None)


def test_no_module_imports_a_layer_above_its_own():
    graph = _imports(_modules())
    upward = []
    for module, targets in graph.items():
        for target in targets:
            mine, theirs = _layer(module), _layer(target)
            if mine is not None and theirs is not None and theirs < mine:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_two_modules_import_each_other_even_through_others():
    graph = _imports(_modules())
    circles = []

    def visit(start: str, node: str, path: list[str], seen: set[str]) -> None:
        for target in graph[node]:
            if target == start:
                circles.append(" -> ".join([*path, start]))
            elif target not in seen and target > start:
                seen.add(target)
                visit(start, target, [*path, target], seen)

    for module in sorted(graph):
        visit(module, module, [module], {module})
    assert circles == []


def test_every_package_has_a_layer_and_the_top_level_holds_at_most_three_modules():
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}
    assert packages == {name for names in LAYERS for name in names} - {"errors"}
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "errors.py"]


def test_the_seed_api_keeps_its_import_paths():
    from builder.cli import main
    from builder.repositories import BaseCodeRepository, LocalRepositoryContext

    assert BaseCodeRepository.__module__ == "builder.repositories.base"
    assert LocalRepositoryContext.__module__ == "builder.repositories.base"
    assert callable(main)
