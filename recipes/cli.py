"""The `currimix` command line (Typer): prepare, score, plan, train, average, eval, run, quickstart.

Every command takes a recipe (a YAML path or a preset name) plus ``--set key.path=value``
overrides. User mistakes exit with status 2 and a message naming the problem; nothing heavy
starts before the recipe has validated.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from curriculum.errors import UserError

app = typer.Typer(
    help="Curriculum and data-mixture pretraining: score, order, mix, co-schedule with the LR and "
    "checkpoint averaging.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

RecipeArg = Annotated[
    str, typer.Argument(help="Recipe YAML file, or the name of a shipped preset (see `currimix presets`).")
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a recipe value: key.path=value (value parsed as YAML); repeatable."),
]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]


def _recipe(recipe: str, overrides: list[str] | None):
    from recipes.config import load_recipe, resolve_recipe_path

    return load_recipe(resolve_recipe_path(recipe), overrides or [])


def _offline() -> None:
    # Local paths only: never let a typo turn into a 50-second hub lookup.
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")


@app.command()
def presets() -> None:
    """List the shipped recipe presets."""
    folder = Path(__file__).parent / "presets"
    table = Table("preset", "what it is")
    for path in sorted(folder.glob("*.yaml")):
        first = path.read_text().splitlines()[0] if path.stat().st_size else ""
        table.add_row(path.stem, first.lstrip("# "))
    console.print(table)


@app.command()
def prepare(
    recipe: RecipeArg,
    set_: SetOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Rebuild the token store if it exists.")] = False,
    progress: ProgressOpt = True,
    engine: Annotated[
        str, typer.Option(help="Where units run: local (process pool), datatrove (its local executor).")
    ] = "local",
    unit: Annotated[Optional[int], typer.Option(help="Job arrays: run only units with index % UNITS == UNIT.")] = None,
    units: Annotated[Optional[int], typer.Option(help="Job arrays: the number of array tasks.")] = None,
    tokenizer_only: Annotated[
        bool, typer.Option(help="Only train (or copy) the tokenizer: run once before a job array.")
    ] = False,
) -> None:
    """Documents -> scored, tokenized, score-ordered packed token store (the recipe's `data` section).

    Runs in units of work (one shard each) on all local cores; running it again resumes."""
    from tools.prepare import prepare_store

    r = _recipe(recipe, set_)
    store = prepare_store(
        r,
        overwrite=overwrite,
        show_progress=progress,
        engine=engine,
        unit=unit,
        units=units,
        tokenizer_only=tokenizer_only,
    )
    if store is None:
        console.print("tokenizer ready" if tokenizer_only else f"units {unit} of {units} done; store not complete yet")
        return
    table = Table(
        "domain",
        "docs",
        "train seqs",
        "val seqs",
        "train tokens",
        "score range",
        title=f"token store {store.root} (seq_len {store.seq_len}, vocab {store.vocab_size})",
    )
    for name in store.domain_names:
        tr, va = store.meta["stats"]["train"][name], store.meta["stats"]["val"][name]
        lo, hi = tr["score_min"], tr["score_max"]
        table.add_row(
            name,
            f"{tr['documents'] + va['documents']:,}",
            f"{tr['sequences']:,}",
            f"{va['sequences']:,}",
            f"{tr['tokens']:,}",
            "-" if lo is None else f"{lo:.3g} .. {hi:.3g}",
        )
    console.print(table)


@app.command()
def plan(
    recipe: RecipeArg,
    set_: SetOpt = None,
    png: Annotated[
        Optional[Path], typer.Option(help="Where to write the timeline plot; default `<run_dir>/plan.png`.")
    ] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the summary as JSON.")] = None,
) -> None:
    """Print and plot the run's timeline: LR, mixture, curriculum, repeats, averaging window."""
    from recipes.plan import build_plan
    from recipes.plan_report import plan_summary, print_summary
    from tools.plotting import plot_plan

    r = _recipe(recipe, set_)
    p = build_plan(r)
    summary = plan_summary(p)
    print_summary(summary, console)
    out = png or (r.run_path / "plan.png")
    plot_plan(p, out)
    console.print(f"timeline plot: {out}")
    if json_out:
        json_out.write_text(json.dumps(summary, indent=2))


@app.command()
def train(
    recipe: RecipeArg,
    set_: SetOpt = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue from the newest complete checkpoint in the run folder (starts fresh if there is none)."
        ),
    ] = False,
    ignore_plan_mismatch: Annotated[
        bool,
        typer.Option(help="Resume even if the recipe's plan differs from the checkpoint's (the data order changes)."),
    ] = False,
    stop_after: Annotated[
        Optional[int],
        typer.Option(help="Stop after this many steps (with a checkpoint); continue later with --resume."),
    ] = None,
    progress: ProgressOpt = True,
) -> None:
    """Train the recipe's model on its token store (one process, or under `accelerate launch`)."""
    from recipes.pretrain import train as run_training

    r = _recipe(recipe, set_)
    summary = run_training(
        r, resume=resume, ignore_plan_mismatch=ignore_plan_mismatch, stop_after_steps=stop_after, show_progress=progress
    )
    if summary.get("val_loss") and int(os.environ.get("RANK", "0")) == 0:
        _print_losses({"final": summary["val_loss"]}, title=f"validation loss per domain ({summary['run_dir']})")


@app.command("eval")
def eval_(
    models: Annotated[
        list[Path], typer.Argument(help="Model folders (save_pretrained / snapshots / averaged outputs).")
    ],
    store: Annotated[Path, typer.Option(help="Token store folder to evaluate on.")],
    split: Annotated[str, typer.Option(help="Store split: val or train.")] = "val",
    per_domain: Annotated[int, typer.Option(help="Sequences per domain (evenly spaced).")] = 64,
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the table as JSON.")] = None,
) -> None:
    """Per-domain validation loss of one or more models, side by side."""
    from tools.evaluate import evaluate_folder

    results = {
        str(m): evaluate_folder(
            m, store, split=split, per_domain=per_domain, micro_batch_size=batch_size, device=device
        )
        for m in models
    }
    _print_losses(results, title=f"{split} loss per domain ({store})")
    if json_out:
        json_out.write_text(json.dumps(results, indent=2))


@app.command("run")
def run_(recipe: RecipeArg, set_: SetOpt = None, progress: ProgressOpt = True) -> None:
    """Everything in one process: prepare (if needed), train (resuming), average the plan's snapshots,
    and compare the final and averaged models per domain."""
    from recipes.pipeline import run_recipe

    _report(run_recipe(_recipe(recipe, set_), progress=progress))


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="Folder for the corpus, store and run.")] = Path("runs/quickstart"),
    set_: SetOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Build a small corpus from this Python installation (code, prose, noisy web text) and run the
    `quickstart` preset on it: prepare -> train -> average -> evaluate, in minutes on a laptop CPU."""
    from recipes.config import preset_path
    from recipes.pipeline import run_recipe
    from tools.corpus import build_corpus

    paths = build_corpus(out / "corpus")
    overrides = [f"run_dir={out}", f"data.store={out / 'store'}"]
    overrides += [f"data.domains.{name}.sources.0.path={path}" for name, path in paths.items()]
    recipe = _recipe(str(preset_path("quickstart")), overrides + list(set_ or []))
    _report(run_recipe(recipe, progress=progress))


def _report(result) -> None:
    _print_losses(result.val_loss, title=f"validation loss per domain ({result.run_dir})")
    console.print(f"final model:    {result.final_model}")
    if result.averaged_model:
        console.print(f"averaged model: {result.averaged_model}  (loads with AutoModelForCausalLM.from_pretrained)")


def _print_losses(results: dict[str, dict[str, float]], title: str) -> None:
    domains = sorted({d for r in results.values() for d in r})
    table = Table("model", *domains, "mean", title=title)
    for name, losses in results.items():
        values = [losses.get(d) for d in domains]
        present = [v for v in values if v is not None]
        table.add_row(
            name,
            *("-" if v is None else f"{v:.4f}" for v in values),
            f"{sum(present) / len(present):.4f}" if present else "-",
        )
    console.print(table)


def _register_subcommands() -> None:
    """Commands whose code lives with the library they drive."""
    from curriculum.scorers.cli import app as score_app
    from tools.average import average_command

    app.add_typer(score_app, name="score")
    app.command("average")(average_command)


_register_subcommands()


def main() -> None:
    """Console-script entry point: user errors become a message and exit status 2."""
    _offline()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-file save/load bars are noise next to our own progress
    try:
        app()
    except UserError as exc:
        err_console.print(f"error: {exc}", style="bold red", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
