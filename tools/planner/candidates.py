"""The schedules `currimix schedule` ranks, each with the LR a law should see and the recipe sections it stands for.

Decaying schedules are built by `tools.train.schedules` (the same code a recipe runs), so what is
predicted is exactly what a recipe taking the emitted section would train with. "Constant LR + merging"
candidates take WSM weights (`tools.average.weights`, emulating a linear decay to 0 over the merge
window); a law sees them through the decay the merge is equivalent to: averaging checkpoints
theta_{s_1..s_K} with weights c_i applies each gradient step j in [s_m, s_m+1) with the LR scaled by
the weight of the checkpoints after it, sum_{i>m} c_i (WSM, arXiv 2507.17634, Thm. 1; exact for
SGD-like updates that do not depend on the merge, an approximation for Adam).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tools.average.weights import WSMWeights, resolve_weights
from tools.planner.config import CandidateGrid
from tools.train.schedules import build_schedule

MERGE_SNAPSHOTS = 8  # checkpoints a merging candidate averages (WSM: a handful is enough, duration matters most)


@dataclass
class Candidate:
    """A schedule to rank: a label, the recipe sections it stands for, and the LR a law should see."""

    label: str
    schedule: dict[str, Any]
    averaging: dict[str, Any] | None
    lr: np.ndarray

    def sections(self) -> dict[str, Any]:
        """The recipe sections, as a recipe takes them (`schedule:` and, for merging, `averaging:`)."""
        out: dict[str, Any] = {"schedule": self.schedule}
        if self.averaging is not None:
            out["averaging"] = self.averaging
        return out


def merge_equivalent_lr(lr: np.ndarray, snapshot_steps: list[int], weights: list[float]) -> np.ndarray:
    """The LR per step whose run ends where a merge of snapshots (taken after ``snapshot_steps`` steps,
    weighted ``weights``, oldest first) of a run with LR ``lr`` lands (see the module docstring)."""
    out = np.asarray(lr, dtype=np.float64).copy()
    tail = np.cumsum(np.asarray(weights, dtype=np.float64)[::-1])[::-1]  # tail[m] = sum_{i>=m} c_i
    for m in range(len(snapshot_steps) - 1):
        out[snapshot_steps[m] : snapshot_steps[m + 1]] *= tail[m + 1]
    return out[: snapshot_steps[-1]]


def merging_candidate(steps: int, fraction: float, base: dict[str, Any]) -> Candidate | None:
    """Constant LR, then WSM merging of up to 8 snapshots spread over the last ``fraction`` of the run."""
    duration = int(round(fraction * steps))
    k = min(MERGE_SNAPSHOTS, duration + 1)
    if k < 2:
        return None
    spacing = max(1, int(round(duration / (k - 1))))  # the merge spans ~the asked fraction
    snapshots = [steps - (k - 1 - i) * spacing for i in range(k)]
    if snapshots[0] < 1:
        return None
    weights_spec = WSMWeights(decay_shape="linear", final_lr_ratio=0.0)
    weights = resolve_weights(weights_spec, k)
    schedule = {"name": "constant", **base}
    lr = build_schedule(schedule, steps).lr(np.arange(steps))
    averaging = {"snapshots": k, "every_steps": spacing, "weights": weights_spec.model_dump()}
    label = f"constant + WSM merge of last {fraction:.0%} ({k} x {spacing} steps)"
    return Candidate(label, schedule, averaging, merge_equivalent_lr(lr, snapshots, weights))


def candidates(grid: CandidateGrid, steps: int, peak_lr: float, warmup_steps: int) -> list[Candidate]:
    """Every candidate of ``grid`` for a run of ``steps`` steps at ``peak_lr`` with ``warmup_steps``."""
    base = {"peak_lr": peak_lr, "warmup_steps": warmup_steps}
    specs: list[tuple[str, dict[str, Any]]] = []
    if grid.constant:
        specs.append(("constant", {"name": "constant"}))
    for final in grid.final_lr_ratios:
        if grid.cosine:
            specs.append((f"cosine to {final:g}", {"name": "cosine", "final_lr_ratio": final}))
        for fraction in grid.wsd_decay_fractions:
            for shape in grid.wsd_shapes:
                spec = {"name": "wsd", "decay_fraction": fraction, "decay_shape": shape, "final_lr_ratio": final}
                specs.append((f"wsd {fraction:.0%} {shape} to {final:g}", spec))
    out = []
    for label, spec in specs:
        schedule = {**spec, **base}
        decay_start = steps - int(round(spec.get("decay_fraction", 1.0) * steps))
        if spec["name"] == "wsd" and decay_start < warmup_steps:
            continue  # a decay longer than the stable phase: not a WSD schedule of this run
        lr = build_schedule(schedule, steps).lr(np.arange(steps))
        out.append(Candidate(label, schedule, None, lr))
    for fraction in grid.averaging_fractions:
        candidate = merging_candidate(steps, fraction, base)
        if candidate is not None:
            out.append(candidate)
    return out
