"""Layering rules that keep the engine ownable: no import cycles (deferred
imports inside functions count too), the Transport interface a leaf, and the
engine never importing a plugin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"spooler": "spooler", "plugins": "spooler_plugins"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, name in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [name, *path.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(module: str) -> set[str]:
    """Every first-party module ``module`` imports, wherever the import is."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            targets |= {target, *(f"{target}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
    return {t for t in targets if t in MODULES and t != module}


GRAPH = {module: _imports(module) for module in MODULES}


def _cycle_from(start: str) -> list[str] | None:
    """A path start → … → start, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in GRAPH[node]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_cycle(module: str) -> None:
    assert _cycle_from(module) is None, " → ".join(_cycle_from(module) or [])


def test_the_checker_sees_deferred_imports() -> None:
    # watcher.py opens transports inside a method: the edge must be seen.
    assert "spooler.registry" in GRAPH["spooler.watcher"]


@pytest.mark.parametrize("module", ["spooler.transport", "spooler.spec", "spooler.errors"])
def test_interface_modules_are_leaves(module: str) -> None:
    assert GRAPH[module] <= {"spooler.errors", "spooler.ids"}


def test_the_engine_never_imports_a_plugin() -> None:
    offenders = {
        module: sorted(t for t in targets if t.startswith("spooler_plugins"))
        for module, targets in GRAPH.items()
        if module.startswith("spooler.")
    }
    assert not {m: t for m, t in offenders.items() if t}
