"""`currimix train`, `currimix run` and `currimix quickstart`: training, alone or end to end."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from recipes.cli.app import ProgressOpt, RecipeArg, SetOpt, command, console, load, quiet_transformers
from recipes.cli.evaluate import print_metrics


@command()
def train(
    recipe: RecipeArg,
    set_: SetOpt = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue from the newest checkpoint in the run folder whose files verify (starts fresh if there "
            "is none; refuses if there are some but none verifies)."
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace the run already in the run folder (its checkpoints, snapshots, final model and metrics; "
            "other files stay). The old run is kept aside until the new one writes its first checkpoint."
        ),
    ] = False,
    ignore_plan_mismatch: Annotated[
        bool,
        typer.Option(help="Resume even if the recipe's plan differs from the checkpoint's (the data order changes)."),
    ] = False,
    stop_after: Annotated[
        Optional[int],
        typer.Option(min=1, help="Stop after this many steps (with a checkpoint); continue later with --resume."),
    ] = None,
    progress: ProgressOpt = True,
) -> None:
    """Train the recipe's model on its token store (one process, or under `accelerate launch`).

    One `train` per run folder at a time (a second one exits naming the first); a folder that already
    holds a run needs --resume or --overwrite."""
    from tools.train import pretrain

    quiet_transformers()
    r = load(recipe, set_)
    summary = pretrain.train(
        r,
        resume=resume,
        overwrite=overwrite,
        ignore_plan_mismatch=ignore_plan_mismatch,
        stop_after_steps=stop_after,
        show_progress=progress,
    )
    if summary.get("eval") and int(os.environ.get("RANK", "0")) == 0:
        print_metrics({"final": summary["eval"]}, title=f"last evaluation ({summary['run_dir']})")


@command("run")
def run_(recipe: RecipeArg, set_: SetOpt = None, progress: ProgressOpt = True) -> None:
    """Everything in one process: prepare (if needed), train (resuming), average the plan's snapshots,
    and compare the final and averaged models per domain."""
    from recipes.runner import run_recipe

    quiet_transformers()
    _report(run_recipe(load(recipe, set_), progress=progress))


@command()
def quickstart(
    out: Annotated[Path, typer.Option(help="Folder for the corpus, store and the two runs.")] = Path("runs/quickstart"),
    set_: SetOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """The curriculum finding in minutes on a CPU: a quality-dial corpus from this Python installation's
    code (each training chunk damaged at a known severity), the same model trained twice with the same
    seed, random order vs ascending quality under a constant LR, then both compared on held-out clean
    code and on text like the training pool (final model and EMA of the last snapshots)."""
    from recipes.loading import preset_path
    from recipes.runner import run_recipe
    from tools.corpus import build_corpus
    from tools.testbed import QualityDialConfig, build_quality_dial

    quiet_transformers()
    code = build_corpus(out / "corpus")["code"]
    dial = out / "dial"
    build_quality_dial(QualityDialConfig(source=str(code), out=str(dial), eval_documents=150, reference_documents=0))
    shared = [
        f"data.store={out / 'store'}",
        f"data.domains.dial.sources.0.path={dial / 'dial.jsonl'}",
        f"data.domains.clean.sources.0.path={dial / 'clean.jsonl'}",
    ]
    results = {}
    for order in ("random", "ascending"):
        overrides = [*shared, f"run_dir={out / order}", f"curriculum.order.name={order}", *(set_ or [])]
        results[order] = run_recipe(load(str(preset_path("quickstart")), overrides), progress=progress)
    _compare_orders(results)


def _compare_orders(results: dict) -> None:
    """Clean and training-like loss of each order's final and averaged models, and their difference."""
    from rich.table import Table

    random, ascending = results["random"], results["ascending"]
    table = Table(
        "model",
        "evaluated on",
        "random",
        "ascending",
        "ascending - random",
        title="held-out loss (nats per token), same seed and data, order changed",
    )
    for label in random.val_loss:
        for domain, name in (("clean", "clean code (never trained on)"), ("dial", "like the training pool")):
            a, b = random.val_loss[label][f"val/{domain}"], ascending.val_loss[label][f"val/{domain}"]
            table.add_row(label, name, f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}")
    console.print(table)
    extra = Table("model", "metric", "random", "ascending", "ascending - random", title="bits per byte and probes")
    for label in random.val_loss:
        for key in random.val_loss[label]:
            if key.startswith(("bpb/", "probe/")) and key in ascending.val_loss[label]:
                a, b = random.val_loss[label][key], ascending.val_loss[label][key]
                extra.add_row(label, key, f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}")
    if extra.row_count:
        console.print(extra)
    console.print(
        "README (Quickstart) gives this difference over seeds 0-3 with its 95% interval; docs/results.md has "
        "the full grid (LR decay, averaging) on a larger testbed."
    )
    console.print(f"models: {random.run_dir} and {ascending.run_dir} (final/, averaged/ load with transformers)")


def _report(result) -> None:
    print_metrics(result.val_loss, title=f"evaluation of the final and averaged models ({result.run_dir})")
    console.print(f"final model:    {result.final_model}")
    if result.averaged_model:
        console.print(f"averaged model: {result.averaged_model}  (loads with AutoModelForCausalLM.from_pretrained)")
