"""docs/results.md, rebuilt from the grids it names: one command from the sweeps to the page.

The page is a Markdown template (``docs/results.in.md``) whose prose explains the setups and lists
every choice made after seeing numbers; each line ``{{grid PATH}}`` in it is replaced by that grid's
generated section: where and when its runs were made (the commit of the code, the machine, the
compute time), its claims with paired 95% intervals and verdicts, and its tables and plots exactly
as `currimix sweep` writes them. Numbers never live in the prose, so regenerating the page can not
leave a sentence that contradicts a table. The page names the commit it was written at and every
commit its runs were made at; `currimix results` reruns missing variants first (`--report-only`
collects what is recorded).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable

from curriculum.errors import UserError
from curriculum.files import write_atomic
from recipes.sweep import load_grid, run_grid, write_report
from recipes.sweep.runner import code_commit, machine

DIRECTIVE = re.compile(r"^\{\{grid (\S+)\}\}\s*$", re.MULTILINE)


def grid_paths(template: str) -> list[str]:
    """The grid files a template names, in order."""
    return DIRECTIVE.findall(template)


def short_commit(commit: str | None) -> str:
    """``0123456789ab`` or ``0123456789ab-dirty`` (a tree with uncommitted changes), or `not recorded`."""
    if not commit:
        return "not recorded"
    sha, dirty, _ = commit.partition("-dirty")
    return sha[:12] + ("-dirty" if dirty else "")


def provenance(results: list[dict[str, Any]], command: str) -> str:
    """Where the grid's numbers come from: commits, machines, dates, runs, seeds and compute time."""
    commits = sorted({short_commit(r.get("commit")) for r in results})
    machines = sorted({r.get("machine") or "not recorded" for r in results})
    finished = sorted(r["finished"] for r in results if r.get("finished"))
    seconds = sum(float(r.get("total_seconds", 0)) for r in results)
    seeds = sorted({r["seed"] for r in results})
    dates = f"{finished[0][:16]} to {finished[-1][:16]}" if finished else "not recorded"
    return "\n".join(
        [
            f"- **Command**: `{command}`",
            f"- **Runs**: {len(results)} ({len(seeds)} seeds: {', '.join(map(str, seeds))}); code at commit(s) "
            + ", ".join(f"`{c}`" for c in commits),
            f"- **Machine**: {'; '.join(machines)}; finished {dates}",
            f"- **Compute**: {seconds / 60:.1f} min of training + evaluation summed over runs (the runs go one at "
            "a time, so this is the grid's wall time, under whatever else the machine was doing)",
        ]
    )


def grid_section(grid_path: str, size: str, docs: Path, *, train_missing: bool, log: Callable[[str], None]) -> str:
    """Run (or collect) one grid and return its generated Markdown section; copies its CSV and plots
    into ``docs/results/``."""
    grid = load_grid(grid_path, size)
    results = run_grid(grid, progress=False, log=log, train_missing=train_missing)
    if not results:
        raise UserError(f"grid {grid_path!r} has no recorded results; run it (without --report-only) first")
    files = write_report(grid, results)
    assets = docs / "results"
    assets.mkdir(parents=True, exist_ok=True)
    name = grid.config.name
    copied = {}
    for kind, suffix in (("csv", ".csv"), ("curves", "-curves.png"), ("final", "-final.png")):
        if kind in files:
            target = write_atomic(assets / f"{name}{suffix}", files[kind].read_bytes())
            copied[kind] = target.relative_to(docs)
    table = files["markdown"].read_text().rstrip()
    lines = [
        provenance(results, f"currimix sweep {grid_path}" + ("" if size == "cpu" else f" --size {size}")),
        "",
        table,
        "",
        f"All metrics of every run and seed: [{copied['csv']}]({copied['csv']}).",
    ]
    if "curves" in copied:
        lines += ["", f"![{name}: validation loss during training]({copied['curves']})"]
    if "final" in copied:
        lines += ["", f"![{name}: final loss per cell]({copied['final']})"]
    return "\n".join(lines)


def build_page(
    template_path: Path,
    out_path: Path,
    *,
    size: str = "cpu",
    train_missing: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Render ``template_path`` into ``out_path`` (written atomically), running or collecting each grid."""
    if not template_path.is_file():
        raise UserError(f"results template {str(template_path)!r} does not exist")
    template = template_path.read_text()
    paths = grid_paths(template)
    if not paths:
        raise UserError(f"results template {str(template_path)!r} names no grid (a line `{{{{grid PATH}}}}`)")
    started = time.perf_counter()
    sections = {p: grid_section(p, size, out_path.parent, train_missing=train_missing, log=log) for p in paths}
    header = (
        f"<!-- Generated by `currimix results` from {template_path.as_posix()}; edit that file, not this one. -->\n"
        f"_Page written at commit `{short_commit(code_commit())}` on {time.strftime('%Y-%m-%d')} "
        f"({machine()}); collecting and rendering took {time.perf_counter() - started:.0f} s. "
        "Each grid below names the commit its runs were made at._\n\n"
    )
    page = header + DIRECTIVE.sub(lambda m: sections[m.group(1)], template)
    return write_atomic(out_path, page)
