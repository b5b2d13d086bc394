"""The shape of tasks/ (issue 14's bar): small modules, no import cycle, check mode only in the
runner. shellcheck on every remote script: tests/unit/test_scripts.py."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.paths import REPO

TASKS = REPO / "tasks"
MAX_LINES = 400
MODULES = sorted(TASKS.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


NAMES = {module_name(p): p for p in MODULES}


def _resolve(importer: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_pkg else importer.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str) -> set[str]:
    """The tasks modules `name` imports (anywhere in it: a lazy import is a dependency too).
    `from pkg import mod` is an edge to the module; `from pkg import name`, to the package."""
    path = NAMES[name]
    out: set[str] = set()
    tree = ast.parse(path.read_text())
    # `if TYPE_CHECKING:` imports exist for annotations only: no runtime edge
    typing_only = {id(n) for blk in ast.walk(tree) if isinstance(blk, ast.If)
                   and getattr(blk.test, "id", "") == "TYPE_CHECKING"
                   for stmt in blk.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, path.name == "__init__.py", node)
            for a in node.names:
                out.add(f"{target}.{a.name}" if f"{target}.{a.name}" in NAMES else target)
    return {m for m in out if m in NAMES and m != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_module_is_small(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(REPO)} has {n} lines (max {MAX_LINES}): split it"


def test_no_import_cycle():
    graph = {n: imports_of(n) for n in NAMES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_check_mode_words_only_in_the_runner():
    runner = TASKS / "engine" / "runner.py"
    found = [f"{p.relative_to(REPO)}:{i}" for p in MODULES if p != runner
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if "would change" in line.lower()]
    assert not found, "check mode is the runner's (engine/plan.py): " + ", ".join(found)
