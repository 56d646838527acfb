"""`currimix plan`: the run's timeline as tables (and, when asked, a plot and JSON), before any GPU is touched.

`plan` only reads: without `--png` / `--json` it writes nothing. Every output it is asked for is
checked before the plan is built, and all of them are written under temp names first and renamed
into place together, so a failing output never leaves another one behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from curriculum.errors import UserError
from curriculum.files import temp_name
from recipes.cli.app import RecipeArg, SetOpt, check_output_file, command, console, load

if TYPE_CHECKING:
    from tools.train.plan import Plan


@command()
def plan(
    recipe: RecipeArg,
    set_: SetOpt = None,
    png: Annotated[
        Optional[Path], typer.Option(help="Write the timeline plot (LR, mixture, batch quality, snapshots) here.")
    ] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the summary as JSON here.")] = None,
    show_recipe: Annotated[
        bool, typer.Option("--show-recipe", help="First print the resolved recipe (defaults filled in).")
    ] = False,
) -> None:
    """Print the run's timeline: LR, mixture, curriculum, repeats, averaging window (`--png` plots it)."""
    from recipes.loading import PRESETS_DIR, dump_recipe, resolve_recipe_path
    from tools.train.plan import build_plan
    from tools.train.plan_report import coverage_summary, plan_summary, print_coverage, print_summary

    r = load(recipe, set_)
    inputs = {
        "the recipe": resolve_recipe_path(recipe),
        "the presets folder": PRESETS_DIR,
        "the token store": r.store_path,
    }
    for what, path in {"--png": png, "--json": json_out}.items():
        if path is not None:
            check_output_file(path, what, inputs)
    if png is not None and png.suffix.lower() != ".png":
        raise UserError(f"--png {str(png)!r}: the plot is a PNG file, so its name must end in .png")
    if png is not None and json_out is not None and png.resolve() == json_out.resolve():
        raise UserError(f"--png and --json name the same file {str(png)!r}; give two names")
    if show_recipe:
        typer.echo(dump_recipe(r))
    p = build_plan(r)
    summary = plan_summary(p)
    print_summary(summary, console)
    summary["coverage"] = coverage_summary(p)
    print_coverage(summary["coverage"], console)
    written = _write_together(p, summary, png, json_out)
    for path in written:
        console.print(f"wrote {path}", markup=False, highlight=False)


def _write_together(p: "Plan", summary: dict, png: Path | None, json_out: Path | None) -> list[Path]:
    """Write the asked-for outputs under temp names beside them, then rename them all into place."""
    temps: dict[Path, Path] = {}
    final = None
    done: list[Path] = []
    try:
        if json_out is not None:
            final = json_out
            temps[json_out] = _temp_beside(json_out)
            temps[json_out].write_text(json.dumps(summary, indent=2))
        if png is not None:
            from tools.plotting import plot_plan

            final = png
            temps[png] = _temp_beside(png)
            plot_plan(p, temps[png])
        for final, temp in temps.items():
            os.replace(temp, final)
            done.append(final)
    except OSError as exc:
        why = exc.strerror or str(exc)
        written = f"only {[str(d) for d in done]} was written" if done else "nothing was written"
        raise UserError(f"cannot write {str(final)!r}: {why}; {written} (choose another path)") from None
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
    return list(temps)


def _temp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return temp_name(path)
