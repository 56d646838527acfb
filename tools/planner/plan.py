"""Ranking candidate schedules by the final loss the fitted laws predict, with an uncertainty.

Both laws are fitted to all curves; with three or more curves each is refitted once more per curve
left out. A candidate's predicted loss is the mean of the two full fits; its uncertainty is half the
range of every prediction made for it (both laws, every leave-one-curve-out refit): how much the
answer moves when the model or the data changes. A refit that is refused (say, leaving out the only
run that decays) is skipped and named in the notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from curriculum.errors import UserError
from tools.planner.candidates import Candidate, candidates
from tools.planner.config import FitConfig, PlannerConfig
from tools.planner.curves import Curve
from tools.planner.fit import Fit, fit_law

LAW_NAMES = ("multi_power", "annealing_area")


@dataclass
class Row:
    candidate: Candidate
    by_law: dict[str, float]  # the full fits' predictions
    spread: list[float]  # every prediction (full fits and refits)

    @property
    def predicted(self) -> float:
        return float(np.mean(list(self.by_law.values())))

    @property
    def uncertainty(self) -> float:
        return float((max(self.spread) - min(self.spread)) / 2)


@dataclass
class Ranking:
    fits: dict[str, Fit]
    refits: dict[str, list[Fit]]
    rows: list[Row]
    target_steps: int
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> Row:
        return self.rows[0]


def fit_all(curves: list[Curve], config: PlannerConfig) -> tuple[dict[str, Fit], dict[str, list[Fit]], list[str]]:
    """Both laws on every curve, and (with >= 3 curves) each refitted without each curve in turn."""
    fits = {name: fit_law({"name": name}, curves, config.fit) for name in LAW_NAMES}
    refits: dict[str, list[Fit]] = {name: [] for name in LAW_NAMES}
    notes: list[str] = []
    if config.leave_one_out and len(curves) >= 3:
        loose = FitConfig(**{**config.fit.model_dump(), "min_curves": len(curves) - 1})
        for left in curves:
            rest = [c for c in curves if c is not left]
            for name in LAW_NAMES:
                try:
                    refits[name].append(fit_law({"name": name}, rest, loose))
                except UserError as exc:
                    notes.append(f"{name} without {left.name!r} not refitted: {exc}")
    elif config.leave_one_out:
        notes.append("leave-one-curve-out needs 3 or more curves; the uncertainty is the spread between the laws")
    return fits, refits, notes


def rank(
    curves: list[Curve], config: PlannerConfig, peak_lr: float, warmup_steps: int, target_steps: int | None = None
) -> Ranking:
    """Fit both laws to ``curves`` and rank the candidates of ``config`` for ``target_steps``."""
    steps = target_steps or config.target_steps or max(c.total_steps for c in curves)
    if steps <= warmup_steps:
        raise UserError(f"target steps {steps} must exceed the warmup ({warmup_steps} steps)")
    fits, refits, notes = fit_all(curves, config)
    rows = []
    for candidate in candidates(config.candidates, steps, peak_lr, warmup_steps):
        by_law = {name: fit.final_loss(candidate.lr) for name, fit in fits.items()}
        spread = list(by_law.values()) + [f.final_loss(candidate.lr) for fs in refits.values() for f in fs]
        rows.append(Row(candidate, by_law, spread))
    if not rows:
        raise UserError("the candidate grid is empty: enable constant or cosine, or give WSD decay fractions")
    rows.sort(key=lambda r: r.predicted)
    longest = max(c.total_steps for c in curves)
    if steps > 3 * longest:
        notes.append(f"{steps} target steps is over 3x the longest fitted run ({longest}): the paper checks up to 3x")
    return Ranking(fits, refits, rows, steps, notes)
