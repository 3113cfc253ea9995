"""The arrows between packages run one way (docs/architecture.md, "Layers").

Reads every import of every module (function-level imports included, since a lazy import is an
arrow too) and fails on a package importing one it may not: a layer below importing a layer above,
or the product importing the simulator.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> the project packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "foundation": set(),
    "connectors": {"foundation"},
    "store": {"foundation"},
    "sync": {"foundation", "connectors", "store"},
    "reconcile": {"foundation", "store"},
    "alerts": {"foundation", "store", "reconcile"},
    "reports": {"foundation", "store", "reconcile"},
    "service": {"foundation", "connectors", "store", "sync", "reconcile", "alerts", "reports"},
    "web": {"foundation", "store", "reconcile", "alerts", "reports"},
    # the application shell composes everything; only its simulator/demo commands start the simulator
    "budgetwatch": {"foundation", "connectors", "store", "sync", "reconcile", "alerts", "reports", "service", "web",
                    "simulator"},
    # the simulator stands apart: it shares the calendar and Persian text, never the product's logic
    "simulator": {"foundation"},
}
PROJECT = set(ALLOWED)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations/versions" not in p.as_posix())


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = []
    for path in _modules(package):
        for line, top in _imports(path):
            if top in PROJECT and top != package and top not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package]) or 'nothing of the project'}:\n" + \
        "\n".join(wrong)


def test_every_top_level_package_has_a_place_in_the_layers() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages <= PROJECT, f"packages without a layer: {sorted(packages - PROJECT)}"


def test_the_check_sees_a_wrong_arrow(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from budgetwatch.config import Config\n", encoding="utf-8")
    assert (2, "budgetwatch") in _imports(module)
