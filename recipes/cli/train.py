"""`currimix train`, `currimix run` and `currimix quickstart`: training, alone or end to end."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from recipes.cli.app import ProgressOpt, RecipeArg, SetOpt, command, console, load, print_losses, quiet_transformers


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
    from recipes.pretrain import train as run_training

    quiet_transformers()
    r = load(recipe, set_)
    summary = run_training(
        r,
        resume=resume,
        overwrite=overwrite,
        ignore_plan_mismatch=ignore_plan_mismatch,
        stop_after_steps=stop_after,
        show_progress=progress,
    )
    if summary.get("val_loss") and int(os.environ.get("RANK", "0")) == 0:
        print_losses({"final": summary["val_loss"]}, title=f"validation loss per domain ({summary['run_dir']})")


@command("run")
def run_(recipe: RecipeArg, set_: SetOpt = None, progress: ProgressOpt = True) -> None:
    """Everything in one process: prepare (if needed), train (resuming), average the plan's snapshots,
    and compare the final and averaged models per domain."""
    from recipes.pipeline import run_recipe

    quiet_transformers()
    _report(run_recipe(load(recipe, set_), progress=progress))


@command()
def quickstart(
    out: Annotated[Path, typer.Option(help="Folder for the corpus, store and run.")] = Path("runs/quickstart"),
    set_: SetOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Build a small corpus from this Python installation (code, prose, noisy web text) and run the
    `quickstart` preset on it: prepare -> train -> average -> evaluate, in minutes on a laptop CPU."""
    from recipes.loading import preset_path
    from recipes.pipeline import run_recipe
    from tools.corpus import build_corpus

    quiet_transformers()
    paths = build_corpus(out / "corpus")
    overrides = [f"run_dir={out}", f"data.store={out / 'store'}"]
    overrides += [f"data.domains.{name}.sources.0.path={path}" for name, path in paths.items()]
    _report(run_recipe(load(str(preset_path("quickstart")), overrides + list(set_ or [])), progress=progress))


def _report(result) -> None:
    print_losses(result.val_loss, title=f"validation loss per domain ({result.run_dir})")
    console.print(f"final model:    {result.final_model}")
    if result.averaged_model:
        console.print(f"averaged model: {result.averaged_model}  (loads with AutoModelForCausalLM.from_pretrained)")
