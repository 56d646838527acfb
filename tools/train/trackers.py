"""Metric trackers for the Accelerate loop: a local JSONL file (always) and TensorBoard."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker, TensorBoardTracker


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


def make_trackers(names: list[str], run_dir: Path) -> list[GeneralTracker]:
    trackers: list[GeneralTracker] = []
    for name in names:
        if name == "jsonl":
            trackers.append(JSONLTracker(run_dir))
        elif name == "tensorboard":
            trackers.append(TensorBoardTracker("tensorboard", run_dir))
    return trackers


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The step records of a run's metrics.jsonl, last record per step (resumes may repeat steps)."""
    path = Path(run_dir) / "metrics.jsonl"
    by_step: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("step") is not None:
            by_step.setdefault(record["step"], {}).update(record)  # a resumed run's record wins
    return [by_step[k] for k in sorted(by_step)]
