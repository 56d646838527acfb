"""`currimix plan`: the run's timeline as a table and a plot, before any GPU is touched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from recipes.cli.app import RecipeArg, SetOpt, check_output_file, command, console, load


@command()
def plan(
    recipe: RecipeArg,
    set_: SetOpt = None,
    png: Annotated[
        Optional[Path], typer.Option(help="Where to write the timeline plot; default `<run_dir>/plan.png`.")
    ] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the summary as JSON.")] = None,
    show_recipe: Annotated[
        bool, typer.Option("--show-recipe", help="First print the resolved recipe (defaults filled in).")
    ] = False,
) -> None:
    """Print and plot the run's timeline: LR, mixture, curriculum, repeats, averaging window."""
    from recipes.loading import dump_recipe
    from recipes.plan import build_plan
    from recipes.plan_report import coverage_summary, plan_summary, print_coverage, print_summary
    from tools.plotting import plot_plan

    r = load(recipe, set_)
    out = png or (r.run_path / "plan.png")
    check_output_file(out, "--png")
    if json_out:
        check_output_file(json_out, "--json")
    if show_recipe:
        typer.echo(dump_recipe(r))
    p = build_plan(r)
    summary = plan_summary(p)
    print_summary(summary, console)
    summary["coverage"] = coverage_summary(p)
    print_coverage(summary["coverage"], console)
    plot_plan(p, out)
    console.print(f"timeline plot: {out}")
    if json_out:
        json_out.write_text(json.dumps(summary, indent=2))
