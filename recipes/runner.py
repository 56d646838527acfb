"""The one runner of a recipe's stages: prepare (if needed) -> train (resuming) -> average -> evaluate.

`currimix run` and `currimix quickstart` call `run_recipe` with the defaults (the plan's averaging
window, the recipe's `evaluation` sets and probes on every sequence); the sweep calls it per variant with its grid's averaged
models and its own metrics. Each stage is also its own command for clusters (prepare once,
`accelerate launch ... train` on many GPUs, average). A finished stage is skipped: the store
present, the run's final model written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from recipes.config import Recipe
from tools.train.checkpoint import step_folder
from tools.train.plan import build_plan

if TYPE_CHECKING:
    from tools.train.plan import Plan


@dataclass(frozen=True)
class ModelChoice:
    """A model to evaluate: a folder, averaged first from ``snapshots`` with ``weights`` when given."""

    folder: Path
    snapshots: tuple[Path, ...] = ()
    weights: tuple[float, ...] | None = None


@dataclass
class PipelineResult:
    run_dir: Path
    final_model: Path
    averaged_model: Path | None
    val_loss: dict[str, dict[str, Any]] = field(default_factory=dict)  # model label -> metric -> value
    plan_fingerprint: str = ""
    train_seconds: float = 0.0


def plan_models(recipe: Recipe, plan: Plan) -> dict[str, ModelChoice]:
    """`currimix run`'s models: the final one, and the average of the plan's whole snapshot window
    (with the plan's weights) in ``averaged/`` when the recipe has one."""
    run_dir = recipe.run_path
    models = {"final": ModelChoice(run_dir / "final")}
    window = plan.averaging
    if window is not None:
        snapshots = tuple(step_folder(run_dir / "snapshots", s) for s in window.steps)
        label = f"averaged ({window.method} of {len(window.steps)})"
        models[label] = ModelChoice(run_dir / "averaged", snapshots, tuple(window.weights))
    return models


def run_recipe(
    recipe: Recipe,
    *,
    progress: bool = True,
    eval_per_domain: int | None = None,
    models: Callable[[Recipe, Plan], dict[str, ModelChoice]] = plan_models,
    evaluate: Callable[[Path], dict[str, Any]] | None = None,
) -> PipelineResult:
    """Run every stage of ``recipe``; ``models`` picks what to average and evaluate (default:
    `plan_models`), ``evaluate`` how (default: the recipe's `evaluation` section, sets and probes, on every
    sequence or ``eval_per_domain`` per domain)."""
    from curriculum.store.prepare import prepare_store
    from curriculum.store.reader import is_complete_store
    from tools.average import average_checkpoints
    from tools.evaluate.folders import evaluate_folders
    from tools.train.pretrain import train

    if not is_complete_store(recipe.store_path):
        prepare_store(recipe, show_progress=progress)
    run_dir = recipe.run_path
    started = time.perf_counter()
    if not (run_dir / "final" / "currimix.json").is_file():
        train(recipe, resume=True, show_progress=progress)
    train_seconds = time.perf_counter() - started
    plan = build_plan(recipe)
    if evaluate is None:
        micro = recipe.evaluation.micro_batch_size or (recipe.training.micro_batch_size if recipe.training else 8)

        def evaluate(folder: Path) -> dict[str, Any]:
            measured = evaluate_folders(
                [folder],
                recipe.evaluation,
                training_store=recipe.store_path,
                per_domain=eval_per_domain,
                micro_batch_size=micro,
            )
            return measured[str(folder)]

    chosen = models(recipe, plan)
    averaged = [c.folder for c in chosen.values() if c.snapshots]
    result = PipelineResult(
        run_dir,
        run_dir / "final",
        averaged[0] if averaged else None,
        plan_fingerprint=plan.fingerprint,
        train_seconds=train_seconds,
    )
    for label, choice in chosen.items():
        if choice.snapshots:
            average_checkpoints(list(choice.snapshots), choice.folder, list(choice.weights or ()), overwrite=True)
        result.val_loss[label] = evaluate(choice.folder)
    return result
