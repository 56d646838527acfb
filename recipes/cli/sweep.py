"""`currimix sweep`: a grid of recipe variants x seeds, run in sequence (or printed for a cluster)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from recipes.cli.app import ProgressOpt, command, console, quiet_transformers


@command()
def sweep(
    grid: Annotated[
        Path,
        typer.Argument(
            help="Grid YAML (base recipe, axes, seeds, sizes), e.g. recipes/presets/grids/temperature-cooldown.yaml."
        ),
    ],
    size: Annotated[str, typer.Option(help="Which of the grid's sizes to run (cpu, gpu, ...).")] = "cpu",
    out: Annotated[Optional[Path], typer.Option(help="Output folder; default runs/sweeps/<grid name>/<size>.")] = None,
    print_commands: Annotated[
        bool,
        typer.Option(
            "--print-commands",
            help="Write the variants' recipes and print one JSON argument list per command (prepare, then one "
            "`accelerate launch ... train` per variant) instead of running; rerun without it to collect.",
        ),
    ] = False,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Train nothing: evaluate finished runs and write the tables.")
    ] = False,
    progress: ProgressOpt = False,
) -> None:
    """Run every variant of a grid not yet recorded, then write results.csv, results.md and plots."""
    from recipes.sweep import commands, load_grid, run_grid, write_report

    g = load_grid(grid, size, out)
    if print_commands:
        for args in commands(g):
            typer.echo(json.dumps(args))
        return
    quiet_transformers()
    results = run_grid(g, progress=progress, log=console.print, train_missing=not report_only)
    files = write_report(g, results)
    console.print(files["markdown"].read_text(), markup=False, highlight=False)
    for kind, path in files.items():
        console.print(f"{kind}: {path}", markup=False, highlight=False)
