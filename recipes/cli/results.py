"""`currimix results`: rebuild docs/results.md from the grids it names (running what is missing)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recipes.cli.app import command, console, quiet_transformers


@command()
def results(
    template: Annotated[
        Path, typer.Option(help="The page template: prose plus one `{{grid PATH}}` line per grid.")
    ] = Path("docs/results.in.md"),
    out: Annotated[Path, typer.Option(help="The page to write (its plots and CSVs go to <folder>/results/).")] = Path(
        "docs/results.md"
    ),
    size: Annotated[str, typer.Option(help="Which size of every grid (cpu, gpu, ...).")] = "cpu",
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Train nothing: build the page from the recorded runs.")
    ] = False,
) -> None:
    """Run every grid the results page names (skipping recorded variants), then rewrite the page, its
    tables, CSVs and plots; the page names the commit and machine of every number."""
    from recipes.results import build_page

    quiet_transformers()
    page = build_page(template, out, size=size, train_missing=not report_only, log=console.print)
    console.print(f"wrote {page}", markup=False, highlight=False)
