"""`currimix schedule`: fit loss-curve laws to 2-3 finished runs and rank candidate schedules for a target length.

The runs' own `metrics.jsonl` and `recipe.yaml` are all it reads (`tools.planner`): both laws are
fitted, the candidates (WSD decay length, shape and final LR, cosine, constant, constant + WSM
merging) are predicted at the target steps and printed best first with an uncertainty, and on request
the fitted-vs-observed plot (`--png`) and the best candidate's recipe sections (`--emit`, YAML a
recipe takes as is) are written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curriculum.errors import UserError
from recipes.cli.app import check_output_file, command, console

RunsArg = Annotated[
    list[Path], typer.Argument(help="Folders of 2-3 finished runs of one recipe (different schedules).")
]


@command("schedule")
def schedule_command(
    runs: RunsArg,
    steps: Annotated[
        Optional[int], typer.Option("--steps", min=2, help="Steps of the planned run (default: the longest run's).")
    ] = None,
    metric: Annotated[
        Optional[str], typer.Option("--metric", help="Metric to fit: `loss` (training, default) or e.g. `val/dial`.")
    ] = None,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", help="YAML of planner settings (tools/planner/config.py: fit, candidates, metric)."),
    ] = None,
    png: Annotated[Optional[Path], typer.Option("--png", help="Write the fitted-vs-observed plot here (.png).")] = None,
    emit: Annotated[
        Optional[Path],
        typer.Option("--emit", help="Write the best candidate's `schedule:` (and `averaging:`) sections here as YAML."),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows of the ranked table to print.")] = 15,
    leave_one_out: Annotated[
        bool, typer.Option("--leave-one-out/--no-leave-one-out", help="Refit without each run (the uncertainty).")
    ] = True,
) -> None:
    """Fit the multi-power and annealing-area laws to finished runs and rank candidate LR schedules."""
    import yaml
    from pydantic import ValidationError

    from curriculum.files import write_atomic
    from curriculum.registry import validation_problems
    from recipes.yaml_reader import read_yaml_mapping
    from tools.planner.config import PlannerConfig
    from tools.planner.curves import read_run_curve
    from tools.planner.plan import rank
    from tools.train.schedules import SCHEDULES

    raw = read_yaml_mapping(config, "--config") if config is not None else {}
    try:
        settings = PlannerConfig.model_validate(raw)
        if metric is not None:
            settings.metric = metric
        settings.leave_one_out = leave_one_out
    except ValidationError as exc:
        raise UserError(f"planner settings {str(config or '')!r}", validation_problems(exc, raw)) from None
    if not 1 <= len(runs) <= 8:
        raise UserError(f"{len(runs)} run folders given; give 2-3 (at most 8) finished runs of one recipe")
    if len({r.resolve() for r in runs}) != len(runs):
        raise UserError("the same run folder is given twice; give runs with different schedules")
    inputs = {f"run {r}": r for r in runs}
    if png is not None:
        check_output_file(png, "--png", inputs)
        if png.suffix.lower() != ".png":
            raise UserError(f"--png {str(png)!r}: the plot is a PNG file, so its name must end in .png")
    if emit is not None:
        check_output_file(emit, "--emit", inputs)
    if png is not None and emit is not None and png.resolve() == emit.resolve():
        raise UserError(f"--png and --emit name the same file {str(png)!r}; give two names")

    curves = [read_run_curve(r, settings.metric, name=_label(r, runs)) for r in runs]
    longest = max(curves, key=lambda c: c.total_steps)
    base = SCHEDULES.parse(longest.schedule or {})
    ranking = rank(curves, settings, base.peak_lr, base.warmup_steps, steps)  # type: ignore[attr-defined]

    _print_fits(ranking)
    _print_table(ranking, top)
    for note in ranking.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    text = yaml.safe_dump(ranking.best.candidate.sections(), sort_keys=False)
    console.print(f"\nrecommended (take as is into a recipe):\n{text}", markup=False, highlight=False)
    if png is not None:
        from tools.planner.plot import plot_fit

        console.print(f"wrote {plot_fit(curves, ranking, png)}", markup=False, highlight=False)
    if emit is not None:
        write_atomic(emit, text)
        console.print(f"wrote {emit}", markup=False, highlight=False)


def _label(run: Path, runs: list[Path]) -> str:
    """The shortest distinct name of a run: its folder name, or with parents when names repeat (seed-0)."""
    parts = run.resolve().parts
    for depth in range(1, len(parts) + 1):
        names = ["/".join(r.resolve().parts[-depth:]) for r in runs]
        if len(set(names)) == len(names):
            return "/".join(parts[-depth:])
    return str(run)


def _print_fits(ranking) -> None:  # noqa: ANN001 (a tools.planner.plan.Ranking; kept out of import time)
    from rich.table import Table

    table = Table(title="fitted laws (parameters in the papers' units: LR as is)")
    table.add_column("law")
    table.add_column("objective", justify="right")
    table.add_column("parameters")
    for name, fit in ranking.fits.items():
        values = ", ".join(f"{k}={v:.4g}" for k, v in fit.absolute().items())
        table.add_row(name, f"{fit.objective:.4g}", values)
    console.print(table)


def _print_table(ranking, top: int) -> None:  # noqa: ANN001
    """Plain aligned text (never wrapped, so a label stays on one line in logs and narrow terminals)."""
    rows = ranking.rows[:top]
    width = max(len("candidate"), *(len(r.candidate.label) for r in rows))
    lines = [
        f"final loss predicted at step {ranking.target_steps}, best first "
        "(± = half the range over both laws and every leave-one-run-out refit)",
        f"{'#':>3}  {'candidate':<{width}}  {'multi-power':>11}  {'annealing-area':>14}  {'predicted':>9}  {'±':>7}",
    ]
    for i, row in enumerate(rows, 1):
        lines.append(
            f"{i:>3}  {row.candidate.label:<{width}}  {row.by_law['multi_power']:>11.4f}  "
            f"{row.by_law['annealing_area']:>14.4f}  {row.predicted:>9.4f}  {row.uncertainty:>7.4f}"
        )
    if len(ranking.rows) > top:
        lines.append(f"({len(ranking.rows) - top} more; --top to show them)")
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
