"""The code's own shape: ruff clean, small modules, no import cycle between packages."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tinyharden"


def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    cmd = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    out = subprocess.run([*cmd, "check", "tinyharden", "tests"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


# Modules another branch is rewriting right now; each entry names who splits it. Keep this empty otherwise.
_BEING_SPLIT = {"tinyharden/data/speech_commands.py": "issue 13 (keyword spotting) owns its internals"}


def test_no_module_over_400_lines():
    big = {rel: n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 400 and (rel := str(p.relative_to(ROOT))) not in _BEING_SPLIT}
    assert not big, big


def _imports(path: Path) -> set[str]:
    """The tinyharden packages a module imports (at any depth: lazy imports are edges too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tinyharden."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("tinyharden.")}
    return found


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).parts
        unit = rel[0].removesuffix(".py") if len(rel) > 1 or rel[0] != "__init__.py" else "__init__"
        graph.setdefault(unit, set()).update(_imports(path) - {unit})
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_packages():
    assert _cycle(_package_graph()) is None, " -> ".join(_cycle(_package_graph()) or [])


# Layers, top to bottom: cli -> jobs -> domain packages -> recipe / registry / workspace / errors.
@pytest.mark.parametrize("low,high", [("jobs", "cli"), ("attacks", "jobs"), ("export", "jobs"), ("training", "jobs"),
                                      ("quantization", "jobs"), ("recipe", "quantization"), ("registry", "data"),
                                      ("quantization", "models"), ("quantization", "training")])
def test_no_package_imports_one_above_it(low, high):
    assert high not in _package_graph().get(low, set())
