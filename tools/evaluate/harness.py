"""lm-evaluation-harness tasks on any model folder, through its Python API (the `lm-eval` extra).

`run_tasks` hands a saved folder (final/, averaged/, a snapshot, anything `from_pretrained` loads) to
lm-eval's Hugging Face model in fp32 and returns its metrics as flat columns,
``lm-eval/<task>/<metric>`` (and ``.../<metric>_stderr``), the names `currimix eval` tables and JSON
use. ``include_path`` is a folder of task YAML files, so tasks over local jsonl files run offline
(``dataset_path: json`` with ``dataset_kwargs.data_files``); standard tasks need their datasets from
the Hugging Face hub, i.e. a machine with network (README, "Evaluation").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from curriculum.errors import UserError

BOOTSTRAP_ITERS = 1000  # lm-eval's bootstrap standard errors (for metrics without a closed form)


def import_lm_eval() -> Any:
    try:
        import lm_eval
    except ImportError:
        raise UserError(
            "--tasks needs lm-evaluation-harness: pip install -e '.[lm-eval]' (with PIP_CONSTRAINT=constraints.txt)"
        ) from None
    return lm_eval


def flatten_results(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """lm-eval's ``results`` (``{task: {"acc,none": v, "acc_stderr,none": s, "alias": ...}}``) as flat
    columns; the filter name is kept only when it is not ``none``."""
    out: dict[str, float] = {}
    for task, metrics in results.items():
        for key, value in metrics.items():
            if "," not in key or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            metric, filter_name = key.split(",", 1)
            name = metric if filter_name == "none" else f"{metric}/{filter_name}"
            out[f"lm-eval/{task}/{name}"] = float(value) if math.isfinite(value) else math.nan
    return out


def run_tasks(
    model_dir: str | Path,
    tasks: list[str],
    *,
    include_path: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    device: str = "auto",
) -> dict[str, float]:
    """lm-eval ``tasks`` on the model folder ``model_dir``; flat metric columns."""
    from tools.evaluate.folders import eval_device

    lm_eval = import_lm_eval()
    from lm_eval.tasks import TaskManager

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{str(model_dir)!r} is not a model folder (no config.json)")
    if include_path is not None and not Path(include_path).is_dir():
        raise UserError(f"--include-path {str(include_path)!r} is not a folder of task YAML files")
    names = [t.strip() for t in tasks if t.strip()]
    manager = None
    if include_path is not None:  # local tasks alone first: indexing lm-eval's thousands of YAML files takes ~15 s
        manager = TaskManager(include_path=str(include_path), include_defaults=False)
    if manager is None or any(t not in manager.all_tasks for t in names):
        manager = TaskManager(include_path=str(include_path) if include_path else None)
    unknown = [t for t in names if t not in manager.all_tasks]
    if unknown:
        where = f" (nor in {include_path})" if include_path else " (give --include-path for local task YAML)"
        raise UserError(f"unknown lm-eval task(s) {unknown}{where}")
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(model_dir), "dtype": "float32"},
        tasks=names,
        task_manager=manager,
        batch_size=batch_size,
        device=str(eval_device(device)),
        limit=limit,
        log_samples=False,
        bootstrap_iters=BOOTSTRAP_ITERS,
    )
    return flatten_results(out["results"] if out else {})
