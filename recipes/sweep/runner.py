"""Running a grid: fit its scorers, prepare its store(s), train each variant in turn, average, evaluate, record.

Every variant's result is one JSON file in its run folder (``sweep-result.json``), written last
and atomically, and keyed by the variant's recipe fingerprint: a rerun skips variants whose
result matches, resumes a half-trained one from its newest checkpoint, and only evaluates a run
trained elsewhere (e.g. by the commands of `commands`). Averaging variants come from the run's
own snapshots, so they never retrain.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from curriculum.errors import UserError
from curriculum.files import write_atomic
from curriculum.store.reader import store_marker
from recipes.config import Recipe
from recipes.loading import apply_overrides, read_recipe_yaml, recipe_from_dict
from recipes.sweep.fitting import fit_keys_of, fit_scorers, truth_spearman
from recipes.sweep.grid import Grid, Variant
from tools.train.checkpoint import step_folder

RESULT_FILE = "sweep-result.json"
PACKAGES = ("curriculum", "mixers", "recipes", "tools")


def data_key(recipe: Recipe) -> str:
    """The data and tokenizer sections less the store folder: variants with equal keys can share a store."""
    dumped = recipe.model_dump(mode="json")
    dumped["data"].pop("store")
    return json.dumps([dumped["data"], dumped["tokenizer"]], sort_keys=True)


def check_shared_store(grid: Grid, recipes: list[Recipe]) -> None:
    """Every variant must read the same documents with the same tokenizer: they share one store."""
    first = data_key(recipes[0])
    for variant, recipe in zip(grid.variants, recipes):
        if data_key(recipe) != first:
            raise UserError(
                f"grid {grid.config.name!r}: variant {variant.cell} changes the data or tokenizer sections; "
                "a grid's variants share one token store, so put data changes in separate grids, or set "
                "`stores: per-data` in the grid (one store per data section, same tokenizer)"
            )


def per_data_stores(grid: Grid, raws: list[dict[str, Any]], recipes: list[Recipe]) -> list[tuple[dict, Recipe]]:
    """`stores: per-data`: each variant's recipe pointed at ``<out>/stores/<key>``, the key a hash of its
    data and tokenizer sections and of the fits of the scorers it reads (a refit scorer makes another store)."""
    out = []
    for variant, raw, recipe in zip(grid.variants, raws, recipes):
        dumped = recipe.model_dump(mode="json")["data"]
        key = json.dumps([data_key(recipe), fit_keys_of(grid.config.fit, dumped)], sort_keys=True)
        store = grid.out_dir / "stores" / hashlib.sha256(key.encode()).hexdigest()[:12]
        raw = apply_overrides(raw, [f"data.store={store}"])
        out.append((raw, recipe_from_dict(raw, source=f"grid {grid.config.name!r} variant {variant.slug}")))
    return out


def check_same_tokenizer(stores: list[Path]) -> None:
    """The stores of one grid must hold byte-identical tokenizers: losses in nats per token are only
    comparable under one tokenizer (prepare trains it on the same documents, so this holds unless the
    data sections differ in what the tokenizer reads)."""
    digests = {}
    for store in stores:
        files = sorted((store / "tokenizer").glob("*.json"))
        digests[store] = hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in files)).hexdigest()
    first = stores[0]
    for store in stores[1:]:
        if digests[store] != digests[first]:
            raise UserError(
                f"the grid's token stores {str(first)!r} and {str(store)!r} trained different tokenizers, so their "
                "losses are not comparable; train one (`currimix prepare RECIPE --tokenizer-only`) and set "
                "`tokenizer.path` to it in the grid's base recipe"
            )


def check_snapshots(grid: Grid, recipe: Recipe) -> None:
    """Each averaging variant needs that many snapshots from the run."""
    have = recipe.averaging.snapshots or 0
    for label, spec in grid.config.averaging.items():
        if spec is not None and spec.last > have:
            raise UserError(
                f"grid averaging.{label} averages the last {spec.last} snapshots, but the recipe takes "
                f"{have} (averaging.snapshots); raise averaging.snapshots in the base recipe or the size"
            )


def build_corpus(grid: Grid) -> None:
    """The grid's `corpus`, if any (deterministic; a build of the same config is kept)."""
    if grid.config.corpus is not None:
        from tools.testbed import build_quality_dial

        build_quality_dial(grid.config.corpus)


def build_inputs(grid: Grid, log: Callable[[str], None] = print) -> None:
    """What the stores are made from, in order: the corpus, then the scorers fitted on it."""
    build_corpus(grid)
    if grid.config.fit:
        fit_scorers(grid.config.fit, log)


def write_recipes(grid: Grid) -> list[Recipe]:
    """Validate every variant's recipe and write it under ``<out>/recipes/``: the base plus the
    variant's overrides, as given (a fully resolved dump would spell out defaults, which some
    configs refuse to read back, e.g. `over` next to a step tau schedule). A grid's `corpus` is built
    first: the recipes name its files."""
    build_corpus(grid)
    base = read_recipe_yaml(grid.base_path)  # `extends` resolved; read once for every variant
    raws = [apply_overrides(base, list(v.overrides)) for v in grid.variants]
    recipes = [
        recipe_from_dict(raw, source=f"grid {grid.config.name!r} variant {v.slug}")
        for v, raw in zip(grid.variants, raws)
    ]
    if grid.config.stores == "shared":
        check_shared_store(grid, recipes)
    else:
        raws, recipes = map(list, zip(*per_data_stores(grid, raws, recipes)))
    for variant, raw, recipe in zip(grid.variants, raws, recipes):
        check_snapshots(grid, recipe)
        path = grid.recipe_file(variant)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, yaml.safe_dump(raw, sort_keys=False))
    return recipes


def commands(grid: Grid) -> list[list[str]]:
    """The cluster form: one `prepare` then one `accelerate launch ... train` per variant (argument lists).

    Run the prepare commands first (one per token store: one unless `stores: per-data`), the train
    commands anywhere (in any order, on any number of GPUs), then `currimix sweep <grid>` again on a
    machine that sees the run folders: it finds the runs finished, averages, evaluates and writes the
    tables without training anything. A grid with `fit:` scorers needs them fitted before its prepare
    commands: `currimix sweep <grid> --report-only` fits them and prepares the stores, training nothing.
    """
    recipes = write_recipes(grid)
    firsts: dict[Path, Variant] = {}
    for variant, recipe in zip(grid.variants, recipes):
        firsts.setdefault(recipe.store_path, variant)
    out = [["currimix", "prepare", str(grid.recipe_file(v))] for v in firsts.values()]
    for variant in grid.variants:
        out.append(
            [
                "accelerate",
                "launch",
                "-m",
                "recipes.cli",
                "train",
                str(grid.recipe_file(variant)),
                "--resume",
                "--no-progress",
            ]
        )
    return out


def result_key(grid: Grid, recipe: Recipe) -> str:
    """What a recorded result depends on: the recipe, the averaged models and the evaluation size."""
    evaluated = {k: (v.model_dump(mode="json") if v else None) for k, v in grid.config.averaging.items()}
    marker = store_marker(recipe.store_path)
    data = json.loads(marker.read_text()).get("data_fingerprint") if marker is not None else None
    key = [recipe.fingerprint(), data, evaluated, grid.config.eval_sequences_per_domain]
    if grid.config.truth is not None:  # only then: the keys of results recorded before it existed stay valid
        key.append(grid.config.truth.model_dump(mode="json"))
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def read_result(run_dir: Path, key: str) -> dict[str, Any] | None:
    """The recorded result of a run, if it was made by this exact recipe and evaluation."""
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return result if result.get("result_key") == key else None


def run_grid(
    grid: Grid,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    train_missing: bool = True,
) -> list[dict[str, Any]]:
    """Fit the grid's scorers and prepare its stores where needed, run every variant not yet recorded (in
    order) and return all variants' results."""
    build_inputs(grid, log)  # before write_recipes: the per-data store keys hash the fitted scorers' inputs
    recipes = write_recipes(grid)
    stores: dict[Path, Recipe] = {}
    for recipe in recipes:
        stores.setdefault(recipe.store_path, recipe)
    for store, recipe in stores.items():
        prepare_if_needed(store, recipe, progress, log)
    if len(stores) > 1:
        check_same_tokenizer(list(stores))
    truths: dict[str, float | None] = {}
    commit = code_commit()  # once: the code this process loaded, whatever happens to the tree meanwhile
    results = []
    for i, (variant, recipe) in enumerate(zip(grid.variants, recipes), 1):
        run_dir = recipe.run_path
        key = result_key(grid, recipe)
        done = read_result(run_dir, key)
        if done is not None:
            log(f"[{i}/{len(recipes)}] {variant.cell} seed {variant.seed}: recorded, skipped")
            results.append(done)
            continue
        trained = run_state(run_dir, recipe, log) == "trained"
        if not trained and not train_missing:
            log(f"[{i}/{len(recipes)}] {variant.cell} seed {variant.seed}: not trained yet, left out")
            continue
        log(f"[{i}/{len(recipes)}] {variant.cell} seed {variant.seed}: {'evaluating' if trained else 'training'}")
        result = run_variant(grid, variant, recipe, key, progress=progress, trained=trained, commit=commit)
        if grid.config.truth is not None and scores_pick_data(recipe, grid.config.truth.domain):
            scorer = data_key(recipe)
            if scorer not in truths:
                truths[scorer] = truth_spearman(recipe, grid.config.truth)
            for metrics in result["models"].values():
                metrics["truth/spearman"] = truths[scorer]
        write_atomic(run_dir / RESULT_FILE, json.dumps(result, indent=1))
        results.append(result)
    return results


def prepare_if_needed(store: Path, recipe: Recipe, progress: bool, log: Callable[[str], None]) -> None:
    """Prepare a grid's store unless it is finished for this data; a stale one is rebuilt."""
    from curriculum.store.prepare import prepare_store

    marker = store_marker(store)
    stale = marker is not None and json.loads(marker.read_text()).get("data_fingerprint") != recipe.data_fingerprint()
    if stale or marker is None:
        # The store belongs to this sweep folder: a grid whose data changed rebuilds it (and its runs
        # then no longer match their recorded results, whose keys include the plan's data fingerprint).
        log(f"{'rebuilding the stale' if stale else 'preparing the'} grid token store in {store}")
        prepare_store(recipe, overwrite=stale, show_progress=progress)


def scores_pick_data(recipe: Recipe, domain: str) -> bool:
    """Whether the domain's scores decide what a run sees or when: not for a random subset in random order."""
    order = recipe.curriculum.per_domain.get(domain, recipe.curriculum.order)
    return recipe.curriculum.subset != "random" or order.name != "random"


def run_state(run_dir: Path, recipe: Recipe, log: Callable[[str], None]) -> str:
    """`trained`, `partial` (resumable) or `new`. A run folder written under another plan (the grid or
    its data changed) belongs to this sweep and is cleared, so the variant trains afresh."""
    from tools.train.checkpoint import latest_checkpoint, read_marker
    from tools.train.plan import build_plan

    if not run_dir.exists():
        return "new"
    plan = build_plan(recipe).fingerprint
    final = read_marker(run_dir / "final") if (run_dir / "final").is_dir() else None
    latest = latest_checkpoint(run_dir)
    marks = [m for m in (final, read_marker(latest[1]) if latest else None) if m]
    if any(m.get("plan_fingerprint") != plan for m in marks):
        log(f"{run_dir}: written under another plan; starting it again")
        shutil.rmtree(run_dir)
        return "new"
    return "trained" if final else ("partial" if latest else "new")


def run_variant(
    grid: Grid, variant: Variant, recipe: Recipe, key: str, *, progress: bool, trained: bool, commit: str | None = None
) -> dict[str, Any]:
    """Train (resuming) one variant, build its averaged models, evaluate every model (the shared
    runner, `recipes.runner.run_recipe`, with the grid's models and metrics); the result record,
    filed under ``key`` (its `result_key`). ``trained``: `run_state` found the final model."""
    from recipes.runner import ModelChoice, run_recipe
    from tools.average import resolve_weights
    from tools.evaluate.folders import evaluate_folder_quality, evaluate_folders
    from tools.train.trackers import read_metrics

    run_dir = recipe.run_path
    started = time.perf_counter()

    def grid_models(recipe: Recipe, plan: Any) -> dict[str, ModelChoice]:
        snapshots = [step_folder(run_dir / "snapshots", s) for s in plan.averaging.steps] if plan.averaging else []
        models = {}
        for label, spec in grid.config.averaging.items():
            if spec is None:
                models[label] = ModelChoice(run_dir / "final")
                continue
            chosen = tuple(snapshots[-spec.last :])
            weights = tuple(resolve_weights(spec.weights, len(chosen)))
            models[label] = ModelChoice(run_dir / "averaged" / label, chosen, weights)
        return models

    def grid_metrics(folder: Path) -> dict[str, Any]:
        losses = evaluate_folder_quality(
            folder,
            recipe.store_path,
            splits=("val", "train"),
            per_domain=grid.config.eval_sequences_per_domain,
            micro_batch_size=recipe.training.micro_batch_size,
        )
        metrics = flatten_metrics(losses)
        # the recipe's evaluation section adds bits per byte, probes and other sets (its own `val/<domain>`
        # losses, over every sequence, do not replace the grid's quality-binned ones of the same name)
        measured = evaluate_folders([folder], recipe.evaluation, training_store=recipe.store_path)[str(folder)]
        return metrics | {k: v for k, v in measured.items() if k not in metrics}

    ran = run_recipe(recipe, progress=progress, models=grid_models, evaluate=grid_metrics)
    evaluated = ("val/", "bpb/", "probe/")  # the in-loop evaluations: the checkpoint noise of each metric
    curve = [
        {k: v for k, v in r.items() if k == "step" or k.startswith(evaluated)}
        for r in read_metrics(run_dir)
        if any(k.startswith(evaluated) for k in r)
    ]
    return {
        "grid": grid.config.name,
        "size": grid.size,
        "commit": commit,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "cell": dict(variant.labels),
        "seed": variant.seed,
        "result_key": key,
        "plan_fingerprint": ran.plan_fingerprint,
        "run_dir": str(run_dir),
        "train_seconds": round(0.0 if trained else ran.train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "models": ran.val_loss,
        "val_curve": curve,
    }


def machine() -> str:
    """Where a result was made: CPU model, cores and GPU if any (timings are only comparable on one)."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} cores{gpu}"


def code_commit() -> str | None:
    """The commit of the code that made a result (``<sha>-dirty`` if the package's tree had changes), or
    None outside a git checkout: a results page names it, so a number can be traced to its code."""
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            # only the code's folders: a results page being rewritten does not make its numbers' code dirty
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *PACKAGES, "pyproject.toml"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def flatten_metrics(losses: dict[str, dict[str, dict[str, float]]]) -> dict[str, float]:
    """``{split: evaluate_quality(...)}`` as flat columns: val/<domain>, val/mean, val/q1..q5,
    val/<domain>/q<k>, the same for train, and gap/<domain> = val - train (overfitting shows as a
    growing gap)."""
    out: dict[str, float] = {}
    for split, parts in losses.items():
        domains = parts["domain"]
        for name, value in domains.items():
            out[f"{split}/{name}"] = value
        out[f"{split}/mean"] = sum(domains.values()) / max(len(domains), 1)
        for name, value in parts["quintile"].items():
            out[f"{split}/{name}"] = value
        for name, value in parts["domain_quintile"].items():
            out[f"{split}/{name}"] = value
    for name in losses.get("val", {}).get("domain", {}):
        if f"train/{name}" in out:
            out[f"gap/{name}"] = out[f"val/{name}"] - out[f"train/{name}"]
    return out
