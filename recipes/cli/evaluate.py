"""`currimix eval`: model folders measured side by side on evaluation sets, probes and lm-eval tasks.

What is measured: the evaluation sets and probes of a recipe (`--recipe`), a token store
(`--store`, every sequence of a split by default), shipped or jsonl probe sets (`--probe`), and
lm-evaluation-harness tasks (`--tasks`, the `lm-eval` extra; `--include-path` for local task YAML).
One row per metric, one column per model; `--json` and `--markdown` write the same table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from curriculum.errors import UserError
from curriculum.files import write_atomic, write_json_atomic
from recipes.cli.app import check_output_file, command, console, load, quiet_transformers


def print_metrics(results: dict[str, dict[str, float]], title: str) -> None:
    """The metrics of one or more models as a table: a row per metric, a column per model."""
    from rich.table import Table

    from tools.evaluate.tables import format_value, metric_rows

    table = Table("metric", *results, title=title)
    for key in metric_rows(results):
        table.add_row(key, *(format_value(m.get(key)) for m in results.values()))
    console.print(table)


def evaluation_config(recipe: Optional[str], store: Optional[Path], split: Optional[str], probes: list[str]):
    """The evaluation to run: a recipe's section, or a store split, plus any probes named."""
    from tools.evaluate.config import EvalSetConfig, EvaluationConfig, ProbeSetConfig
    from tools.evaluate.probe_sets import BUILDERS
    from tools.evaluate.probes import load_probe_file

    if recipe is not None:
        chosen = load(recipe, None)
        config, training_store = chosen.evaluation, chosen.store_path
        if store is not None:
            raise UserError("give --recipe (its evaluation sets) or --store, not both")
    else:
        config, training_store = EvaluationConfig(sets={}), None
    if store is not None:
        name = split or "val"
        sets = {name: EvalSetConfig(store=str(store), split=name)}
        config = config.model_copy(update={"sets": sets})
    elif split is not None:
        raise UserError("--split needs --store")
    named = dict(config.probes)
    for probe in probes:
        if probe in BUILDERS:
            named[probe] = ProbeSetConfig(builtin=probe)
        else:
            path = Path(probe)
            if path.suffix != ".jsonl":
                raise UserError(f"--probe {probe!r}: name a shipped probe set ({', '.join(BUILDERS)}) or a .jsonl file")
            load_probe_file(path)  # bad rows are named (file:line) before any model loads
            named[path.stem] = ProbeSetConfig(path=str(path))
    return config.model_copy(update={"probes": named}), training_store


@command("eval")
def eval_(
    models: Annotated[
        list[Path], typer.Argument(help="Model folders (final/, averaged/, snapshots, any save_pretrained folder).")
    ],
    store: Annotated[
        Optional[Path], typer.Option(help="A token store to evaluate on (every sequence of --split).")
    ] = None,
    split: Annotated[
        Optional[str], typer.Option(help="Which of the store's sequences: val (default), train or all.")
    ] = None,
    recipe: Annotated[
        Optional[str], typer.Option(help="Evaluate a recipe's `evaluation` section (its sets and probes).")
    ] = None,
    probe: Annotated[
        Optional[list[str]],
        typer.Option(help="A probe set: python-keywords, python-builtins, stdlib-docstrings, or a .jsonl file."),
    ] = None,
    tasks: Annotated[
        Optional[str], typer.Option(help="lm-evaluation-harness tasks, comma-separated (the `lm-eval` extra).")
    ] = None,
    include_path: Annotated[
        Optional[Path], typer.Option(help="A folder of local lm-eval task YAML files (works offline).")
    ] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="lm-eval: examples per task (default all).")] = None,
    per_domain: Annotated[
        Optional[int], typer.Option(min=1, help="At most this many sequences per domain (default: all).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Sequences per forward pass.")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the table as JSON.")] = None,
    markdown_out: Annotated[
        Optional[Path], typer.Option("--markdown", help="Also write the table as Markdown.")
    ] = None,
) -> None:
    """Loss, bits per byte, probes and lm-eval tasks of one or more models, side by side."""
    from tools.evaluate.folders import evaluate_folders

    inputs = {f"the model folder {str(m)!r}": m for m in models}
    if store is not None:
        inputs["the token store"] = store
    for flag, out in (("--json", json_out), ("--markdown", markdown_out)):
        if out is not None:  # before any work, and never over a file of the models or the store it reads
            check_output_file(out, flag, inputs)
    if split is not None and split not in ("val", "train", "all"):
        raise UserError(f"--split must be val, train or all, got {split!r}")
    if include_path is not None and tasks is None:
        raise UserError("--include-path needs --tasks (the task names its YAML files define)")
    config, training_store = evaluation_config(recipe, store, split, probe or [])
    if not (config.sets or config.probes or tasks):
        raise UserError("nothing to evaluate: give --store, --recipe, --probe or --tasks")
    quiet_transformers()
    results: dict[str, dict[str, float]] = {str(m): {} for m in models}
    if config.sets or config.probes:
        measured = evaluate_folders(
            models,
            config,
            training_store=training_store,
            per_domain=per_domain,
            micro_batch_size=batch_size,
            device=device,
        )
        for m, metrics in measured.items():
            results[m].update(metrics)
    if tasks:
        from tools.evaluate.harness import run_tasks

        for m in models:
            results[str(m)].update(
                run_tasks(
                    m, tasks.split(","), include_path=include_path, limit=limit, batch_size=batch_size, device=device
                )
            )
    print_metrics(results, title="evaluation (loss: nats per token; bpb: bits per byte; acc: share correct)")
    diverged = [m for m, r in results.items() if any(isinstance(v, float) and not math.isfinite(v) for v in r.values())]
    for m in diverged:
        typer.echo(f"note: {m}: a loss is NaN or inf (its weights hold non-finite values, or it diverged)", err=True)
    if json_out:
        write_json_atomic(json_out, results)  # atomic: a kill leaves no half file
    if markdown_out:
        from tools.evaluate.tables import markdown_table

        write_atomic(markdown_out, markdown_table(results))
