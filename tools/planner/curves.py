"""Loss curves to fit: the LR of every step and the losses a run logged, read from a finished run folder.

A `Curve` holds the learning rate of *every* step (not only the logged ones: the laws sum over all
steps) and the observed losses. Each observation is the mean of the per-step losses over a window of
steps ending at its step, because the trainer logs the mean over its log interval; the laws are
compared with the same mean of their per-step predictions. A run's LR is rebuilt exactly from its
`recipe.yaml` through `tools.train.schedules` and checked against the `lr` it logged, so a run
resumed under another plan is refused rather than fitted on the wrong schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from curriculum.errors import UserError
from tools.train.config import TrainingConfig
from tools.train.schedules import SCHEDULES, build_schedule
from tools.train.trackers import read_metrics

MAX_RECIPE_BYTES = 1 << 20  # a run's recipe.yaml is written by `train`; anything larger was not
LR_MATCH_RTOL = 1e-6  # the logged LR is a float of the same formula: anything looser is another schedule


@dataclass
class Curve:
    """One training run's loss curve and the LR of each of its steps (step 0 first)."""

    name: str
    lr: np.ndarray  # absolute LR of steps 0..N-1
    steps: np.ndarray  # the step each observation ends at (0-based, increasing)
    loss: np.ndarray  # the observed losses
    window: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # steps each one averages
    schedule: dict | None = None  # the run's `schedule` section, when read from a run folder

    def __post_init__(self) -> None:
        self.lr = np.asarray(self.lr, dtype=np.float64)
        self.steps = np.asarray(self.steps, dtype=np.int64)
        self.loss = np.asarray(self.loss, dtype=np.float64)
        if not len(self.window):
            self.window = np.ones(len(self.steps), dtype=np.int64)
        self.window = np.asarray(self.window, dtype=np.int64)

    @property
    def total_steps(self) -> int:
        return len(self.lr)

    @property
    def warmup_end(self) -> int:
        """Index of the first step at the peak LR (the end of warmup)."""
        return int(np.argmax(self.lr))

    def decays(self) -> bool:
        """Whether the LR falls anywhere after warmup (a constant-LR curve cannot identify the decay terms)."""
        after = self.lr[self.warmup_end :]
        return bool(len(after) and after.min() < after.max() * (1 - 1e-9))

    def check(self, min_points: int) -> None:
        """Refuse a curve the laws cannot be fitted on, naming it and what is wrong."""
        if self.total_steps < 2 or not np.all(np.isfinite(self.lr)) or self.lr.min() < 0 or self.lr.max() <= 0:
            raise UserError(f"curve {self.name!r}: its LR schedule must be finite, >= 0 and positive somewhere")
        bad = np.flatnonzero(~np.isfinite(self.loss) | (self.loss <= 0))
        if len(bad):
            raise UserError(
                f"curve {self.name!r}: loss at step {int(self.steps[bad[0]])} is {self.loss[bad[0]]!r} "
                f"({len(bad)} observation(s) not finite or not positive); a diverged run cannot be fitted"
            )
        if len(self.steps) < min_points:
            raise UserError(
                f"curve {self.name!r} has {len(self.steps)} observations to fit after warmup, at least "
                f"{min_points} are needed; log more often (training.log_every_steps) or train longer"
            )
        if np.any(np.diff(self.steps) <= 0) or self.steps[0] < 0 or self.steps[-1] >= self.total_steps:
            raise UserError(
                f"curve {self.name!r}: observed steps must increase and lie inside 0..{self.total_steps - 1}"
            )

    def after(self, first_step: int) -> "Curve":
        """The same curve with observations ending before ``first_step`` left out."""
        keep = self.steps >= first_step
        return Curve(self.name, self.lr, self.steps[keep], self.loss[keep], self.window[keep], self.schedule)


def lr_of_run(run_dir: Path, raw: dict) -> np.ndarray:
    """The LR of every step of a run, from the `schedule` and `training` sections of its recipe.yaml."""
    try:
        training = TrainingConfig.model_validate(raw.get("training") or {})
        config = SCHEDULES.parse(raw.get("schedule") or {})
    except Exception as exc:  # pydantic's message names the key
        raise UserError(f"{run_dir / 'recipe.yaml'}: cannot read its schedule or training section: {exc}") from None
    if getattr(config, "decay_phase", None) is not None:
        raise UserError(
            f"{run_dir / 'recipe.yaml'}: schedule.decay_phase={config.decay_phase!r} places the decay on a data "
            "phase, which needs the run's token store to rebuild; fit runs whose decay is given by decay_fraction"
        )
    seq_len = int((raw.get("data") or {}).get("seq_len") or 0)
    schedule = build_schedule(config, training.steps, {}, tokens_per_step=training.global_batch_size * seq_len or None)
    return schedule.lr(np.arange(training.steps))


def read_run_curve(run_dir: str | Path, metric: str = "loss", name: str | None = None) -> Curve:
    """The curve of ``metric`` (``loss`` = training loss, or e.g. ``val/dial``) of a run folder."""
    run_dir = Path(run_dir)
    recipe_file, metrics_file = run_dir / "recipe.yaml", run_dir / "metrics.jsonl"
    for path in (recipe_file, metrics_file):
        if not path.is_file():
            raise UserError(f"{path} not found: give folders of runs trained by `currimix train` (or a sweep)")
    if recipe_file.stat().st_size > MAX_RECIPE_BYTES:
        raise UserError(f"{recipe_file} is over {MAX_RECIPE_BYTES} bytes; a run's recipe is far smaller")
    try:
        raw = yaml.safe_load(recipe_file.read_text())
        records = read_metrics(run_dir)
    except (yaml.YAMLError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{run_dir}: recipe.yaml or metrics.jsonl is not readable: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{recipe_file} does not hold a recipe mapping")
    lr = lr_of_run(run_dir, raw)  # recipe.yaml was read as a mapping above
    rows = [r for r in records if metric in r]
    if not rows:
        found = sorted({k for r in records for k in r if k.startswith(("loss", "val/"))})
        raise UserError(f"{metrics_file} has no {metric!r} records; metrics it has: {', '.join(found) or 'none'}")
    steps = np.array([int(r["step"]) for r in rows], dtype=np.int64)
    if steps.max() >= len(lr) or steps.min() < 0:
        raise UserError(f"{metrics_file}: step {int(steps.max())} lies outside the recipe's {len(lr)} steps")
    loss = np.array([math.nan if r[metric] is None else float(r[metric]) for r in rows], dtype=np.float64)
    logged = [(int(r["step"]), r["lr"]) for r in records if isinstance(r.get("lr"), (int, float))]
    for step, value in logged:
        if not math.isclose(value, lr[step], rel_tol=LR_MATCH_RTOL, abs_tol=1e-15):
            raise UserError(
                f"{metrics_file}: step {step} logged LR {value:.6g} but the recipe's schedule gives {lr[step]:.6g}; "
                "the run was trained (or resumed) under another schedule and cannot be fitted"
            )
    # Training loss is the mean over the log interval; validation is measured at the step itself.
    window = np.diff(steps, prepend=-1) if metric == "loss" else np.ones(len(steps), dtype=np.int64)
    return Curve(name or run_dir.name, lr, steps, loss, window, dict(raw.get("schedule") or {}))
