"""Metric trackers for the Accelerate loop: a local JSONL file, TensorBoard, and (when installed)
Weights & Biases and MLflow through accelerate's own trackers.

Every tracker gets the same records and the same run configuration (recipe name, recipe and plan
fingerprints, processes, start step). Weights & Biases writes under ``<run_dir>/wandb`` and follows
``WANDB_MODE`` (``offline`` keeps everything local; `wandb sync` uploads later); MLflow logs to
``MLFLOW_TRACKING_URI`` when set, else to a local file store in ``<run_dir>/mlruns`` (`mlflow ui`
reads it). A tracker named in the recipe but not installed is refused before training starts.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker, TensorBoardTracker

from curriculum.errors import UserError

# tracker name -> (the package it needs, the extra that installs it)
OPTIONAL_TRACKERS = {"wandb": ("wandb", "trackers"), "mlflow": ("mlflow", "trackers")}


class JSONLTracker(GeneralTracker):
    """Appends one JSON object per `log` call to ``<run_dir>/metrics.jsonl`` (rank 0 only).

    The file is appended to, so a resumed run continues the same log; readers should keep the last
    record of each step. It is opened for each record (records come every `log_every_steps`), so a
    run that fails leaves no open file behind and every record written is complete on disk.
    """

    name = "jsonl"
    requires_logging_directory = True
    main_process_only = True

    def __init__(self, run_dir: str | Path):
        super().__init__()
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def tracker(self) -> Any:
        return self.path

    def store_init_configuration(self, values: dict) -> None:
        self._write({"event": "config", "time": time.time(), "config": values})

    def log(self, values: dict, step: int | None = None, **kwargs: Any) -> None:
        self._write({"step": step, "time": time.time(), **values})

    def _write(self, record: dict) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.path, "a") as file:
            file.write(json.dumps(clean) + "\n")

    def finish(self) -> None:
        pass  # nothing held open


def check_trackers(names: list[str]) -> None:
    """Refuse trackers whose package is not installed (before any run folder is touched)."""
    import importlib.util

    missing = [n for n in names if n in OPTIONAL_TRACKERS and importlib.util.find_spec(OPTIONAL_TRACKERS[n][0]) is None]
    if missing:
        raise UserError(
            f"training.trackers names {missing}, not installed here: pip install -e '.[trackers]' "
            "(with PIP_CONSTRAINT=constraints.txt), or remove them from training.trackers"
        )


def make_trackers(names: list[str], run_dir: Path, run_name: str = "currimix") -> list[GeneralTracker]:
    """The trackers ``names`` of a run writing into ``run_dir`` (rank 0 only)."""
    check_trackers(names)
    trackers: list[GeneralTracker] = []
    for name in names:
        if name == "jsonl":
            trackers.append(JSONLTracker(run_dir))
        elif name == "tensorboard":
            trackers.append(TensorBoardTracker("tensorboard", run_dir))
        elif name == "wandb":
            trackers.append(wandb_tracker(run_dir, run_name))
        elif name == "mlflow":
            trackers.append(mlflow_tracker(run_dir, run_name))
    return trackers


def wandb_tracker(run_dir: Path, run_name: str) -> GeneralTracker:
    from accelerate.tracking import WandBTracker

    (Path(run_dir) / "wandb").mkdir(parents=True, exist_ok=True)
    return WandBTracker("currimix", name=run_name, dir=str(run_dir))


def mlflow_tracker(run_dir: Path, run_name: str) -> GeneralTracker:
    import os

    from accelerate.tracking import MLflowTracker

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = (Path(run_dir).resolve() / "mlruns").as_uri()
        # MLflow 3 keeps its local file store in maintenance mode behind this switch; a database
        # backend (sqlite) would need SQLAlchemy and alembic, which mlflow-skinny does not install.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

    class DottedMLflowTracker(MLflowTracker):
        """MLflow's file store keeps a metric as a file under its name, so ``loss`` and ``loss/code``
        collide (a file and a folder): metric names go to MLflow with ``.`` for ``/``."""

        def log(self, values: dict, step: int | None = None, **kwargs: Any) -> None:
            super().log({k.replace("/", "."): v for k, v in values.items()}, step=step, **kwargs)

    return DottedMLflowTracker(experiment_name="currimix", run_name=run_name)


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The step records of a run's metrics.jsonl, last record per step (resumes may repeat steps)."""
    path = Path(run_dir) / "metrics.jsonl"
    by_step: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("step") is not None:
            by_step.setdefault(record["step"], {}).update(record)  # a resumed run's record wins
    return [by_step[k] for k in sorted(by_step)]
