"""The package layout: one import direction (the import-linter contract in pyproject.toml, with no
exceptions), no import cycle between any two modules, and a light CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("curriculum", "mixers", "recipes", "tools")
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    # lint-imports finds the packages on sys.path, so run it from the tree it checks.
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
    )


def test_import_contracts_hold():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def test_the_contract_has_no_exceptions():
    text = (ROOT / "pyproject.toml").read_text()
    assert "[tool.importlinter]" in text and "ignore_imports" not in text


def test_import_contracts_catch_an_upward_import(tmp_path: Path):
    """The contract is not vacuous: a `recipes` import added to tools/train/plan.py (the trainer
    reaching up for the recipe schema) and a `tools` import added to the store's writer break it."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for path, line in (
        ("tools/train/plan.py", "from recipes.config import Recipe  # noqa"),
        ("curriculum/store/prepare/units.py", "from tools.train.plan import build_plan  # noqa"),
    ):
        module = tmp_path / path
        module.write_text(module.read_text() + f"\n{line}\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "tools.train.plan -> recipes.config" in proc.stdout
    assert "curriculum.store.prepare.units -> tools.train.plan" in proc.stdout


def import_cycles(*packages: str) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others: the strongly connected
    components of the import graph (grimp's, which counts every import statement: module level,
    inside functions and under TYPE_CHECKING)."""
    import grimp

    graph = grimp.build_graph(*packages, cache_dir=None)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(root: str) -> None:  # Tarjan's algorithm, iterative (the graph is deep)
        work = [(root, iter(sorted(edges[root])))]
        order[root] = low[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in order:
                    order[child] = low[child] = len(order)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], order[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == order[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in order:
            visit(module)
    return cycles


def test_no_import_cycle_between_any_two_modules():
    assert import_cycles(*PACKAGES) == []


def test_the_cycle_finder_finds_a_cycle(tmp_path: Path, monkeypatch):
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic import b  # noqa\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cyclic import a  # noqa\n"
    )
    (package / "c.py").write_text("from cyclic import a  # noqa\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("cyclic") == [["cyclic.a", "cyclic.b"]]


def test_help_imports_neither_torch_nor_datasets():
    code = (
        "import sys\n"
        "from recipes.cli import main\n"
        "sys.argv = ['currimix', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'datasets', 'transformers', 'accelerate') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout[-500:]
