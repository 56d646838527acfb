"""The whole recipe in one call: prepare (if needed) -> train (resuming) -> average -> evaluate.

This is what `currimix run` and `currimix quickstart` do in one process; each stage is also its
own command for clusters (prepare once, `accelerate launch ... train` on many GPUs, average).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recipes.checkpoint import step_folder
from recipes.config import Recipe
from recipes.plan import build_plan


@dataclass
class PipelineResult:
    run_dir: Path
    final_model: Path
    averaged_model: Path | None
    val_loss: dict[str, dict[str, float]] = field(default_factory=dict)  # model label -> domain -> loss


def run_recipe(recipe: Recipe, *, progress: bool = True, eval_per_domain: int = 64) -> PipelineResult:
    """Run every stage of ``recipe``; a finished stage (store present, run complete) is skipped."""
    from curriculum.store import is_complete_store
    from recipes.pretrain import train
    from tools.average import average_checkpoints
    from tools.evaluate import evaluate_folder
    from tools.prepare import prepare_store

    if not is_complete_store(recipe.store_path):
        prepare_store(recipe, show_progress=progress)
    run_dir = recipe.run_path
    if not (run_dir / "final" / "currimix.json").is_file():
        train(recipe, resume=True, show_progress=progress)
    result = PipelineResult(run_dir, run_dir / "final", None)
    plan = build_plan(recipe)
    if plan.averaging is not None:
        snapshots = [step_folder(run_dir / "snapshots", s) for s in plan.averaging.steps]
        result.averaged_model = run_dir / "averaged"
        average_checkpoints(snapshots, result.averaged_model, list(plan.averaging.weights), overwrite=True)
    models = {"final": result.final_model}
    if result.averaged_model is not None:
        models[f"averaged ({plan.averaging.method} of {len(plan.averaging.steps)})"] = result.averaged_model
    for label, folder in models.items():
        result.val_loss[label] = evaluate_folder(
            folder, recipe.store_path, per_domain=eval_per_domain, micro_batch_size=recipe.training.micro_batch_size
        )
    return result
