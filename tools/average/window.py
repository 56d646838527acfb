"""Where a run's averaging snapshots fall on the plan's steps, and their weights (the `averaging` section)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curriculum.errors import UserError
from tools.average.config import AveragingConfig
from tools.average.weights import resolve_weights


@dataclass(frozen=True)
class AveragingWindow:
    """Where the averaging snapshots are taken (after that many optimizer steps) and their weights."""

    steps: tuple[int, ...]
    weights: tuple[float, ...]
    method: str


def averaging_window(
    config: AveragingConfig, total_steps: int, phases: dict[str, tuple[int, int]]
) -> AveragingWindow | None:
    """Snapshot steps and weights from the recipe's averaging section (None when averaging is off)."""
    if config.snapshots is None:
        return None
    k = config.snapshots

    def phase_range(name: str, key: str) -> tuple[int, int]:
        if name not in phases:
            raise UserError(f"averaging.{key} names phase {name!r}; phases of this plan: {sorted(phases) or 'none'}")
        return phases[name]

    if config.end_at == "end":
        end = total_steps
    else:
        name, _, edge = config.end_at.rpartition(".")
        if edge not in {"start", "end"} or not name:
            raise UserError(f"averaging.end_at={config.end_at!r}: use `end`, `<phase>.start` or `<phase>.end`")
        first, stop = phase_range(name, "end_at")
        end = first if edge == "start" else stop
    if config.over_phase is not None:
        first, stop = phase_range(config.over_phase, "over_phase")
        steps = np.round(np.linspace(first + (stop - first) / k, stop, k)).astype(int).tolist()
    else:
        spacing = config.every_steps or 0
        steps = [end - (k - 1 - i) * spacing for i in range(k)]
    if steps[0] < 1 or len(set(steps)) != k:
        raise UserError(
            f"averaging window of {k} snapshots (steps {steps[0]}..{steps[-1]}) does not fit in a "
            f"run of {total_steps} steps; use fewer snapshots or a smaller spacing"
        )
    weights = resolve_weights(config.weights, k)
    return AveragingWindow(tuple(int(s) for s in steps), tuple(float(w) for w in weights), config.weights.name)
