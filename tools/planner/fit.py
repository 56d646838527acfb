"""Fitting a loss-curve law to curves, and predicting with the fit.

The objective is the paper's: the Huber loss (threshold ``huber_delta``) of log(observed) -
log(predicted), here averaged per curve so a long curve does not outweigh a short one. Parameters are
optimised unconstrained (positive ones through exp, exponents through a scaled sigmoid) in float64:
Adam from every starting point, then L-BFGS from the best. The fit refuses what cannot identify a
law: fewer curves than ``min_curves``, curves too short or with non-finite losses, and sets where no
LR ever decays (the decay terms would be arbitrary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from pydantic import BaseModel

from curriculum.errors import UserError
from tools.planner.config import FitConfig
from tools.planner.curves import Curve
from tools.planner.laws import LAWS, Law, Terms


@dataclass
class Fit:
    """A fitted law: its parameters (units of ``ref_lr``), the objective reached, and what it was fitted on."""

    law: Law
    name: str
    params: dict[str, float]
    ref_lr: float
    objective: float
    curves: list[str] = field(default_factory=list)

    max_lr_changes: int | None = None

    def predict(self, curve: Curve) -> np.ndarray:
        """Predicted value of each observation of ``curve`` (its steps and windows)."""
        terms = self.law.terms(curve, self.ref_lr, self.max_lr_changes)
        with torch.no_grad():
            values = {k: torch.tensor(v, dtype=torch.float64) for k, v in self.params.items()}
            return terms.observe(self.law.per_step(values, terms)).numpy()

    def final_loss(self, lr: np.ndarray, window: int = 1) -> float:
        """Predicted loss of a run with LR ``lr`` per step, averaged over its last ``window`` steps."""
        n = len(lr)
        curve = Curve("candidate", lr, np.array([n - 1]), np.array([1.0]), np.array([min(window, n)]))
        return float(self.predict(curve)[0])

    def absolute(self) -> dict[str, float]:
        return self.law.absolute(self.params, self.ref_lr)


def huber(r: torch.Tensor, delta: float) -> torch.Tensor:
    a = r.abs()
    return torch.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def check_curves(curves: list[Curve], config: FitConfig) -> list[Curve]:
    """The curves to fit, each cut to its power-law phase; refuses sets that cannot identify a law."""
    if len(curves) < config.min_curves:
        raise UserError(
            f"{len(curves)} loss curve(s) given, a fit needs at least {config.min_curves}: e.g. a constant, "
            "a cosine and a WSD run of the same recipe"
        )
    names = [c.name for c in curves]
    if len(set(names)) != len(names):
        raise UserError(f"curves must have distinct names, got {names}")
    cut = []
    for curve in curves:
        first = max(curve.warmup_end + 1, int(math.ceil(config.skip_fraction * curve.total_steps)))
        trimmed = curve.after(first)
        trimmed.check(config.min_points)
        cut.append(trimmed)
    if not any(c.decays() for c in cut):
        raise UserError(
            f"all {len(cut)} curves ({', '.join(names)}) keep a constant LR after warmup: nothing shows how "
            "the loss answers an LR decay; add a run with a cosine or WSD schedule"
        )
    peaks = {round(float(c.lr.max()), 12) for c in cut}
    if len(peaks) > 1 and max(peaks) / min(peaks) > 100:
        raise UserError(f"the curves' peak LRs {sorted(peaks)} differ by over 100x; fit runs of one recipe")
    return cut


def objective(law: Law, z: torch.Tensor, terms: list[Terms], delta: float) -> torch.Tensor:
    p = law.unpack(z)
    total = torch.zeros((), dtype=torch.float64)
    for t in terms:
        pred = t.observe(law.per_step(p, t)).clamp(min=1e-8)
        total = total + huber(torch.log(t.observed) - torch.log(pred), delta).mean()
    return total / (len(terms) * delta**2)  # 0.5 (r/delta)^2 near the optimum: of order one for L-BFGS's tolerances


def fit_law(law_config: BaseModel | dict, curves: list[Curve], config: FitConfig | None = None) -> Fit:
    """Fit one law (``{name: multi_power}`` or ``{name: annealing_area}``) to ``curves``."""
    config = config or FitConfig()
    parsed = LAWS.parse(law_config if isinstance(law_config, BaseModel) else dict(law_config))
    law = LAWS.build(parsed)
    cut = check_curves(curves, config)
    ref_lr = max(float(c.lr.max()) for c in cut)
    starts = law.starts(cut, ref_lr)[: config.starts]  # also sets law-specific bounds from the curves
    terms = [law.terms(c, ref_lr, config.max_lr_changes) for c in cut]

    def run_adam(z: torch.Tensor, iterations: int) -> tuple[torch.Tensor, float]:
        z = z.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=0.05)
        best, best_z = math.inf, z.detach().clone()
        for _ in range(iterations):
            opt.zero_grad()
            loss = objective(law, z, terms, config.huber_delta)
            if not torch.isfinite(loss):
                break
            if loss.item() < best:
                best, best_z = loss.item(), z.detach().clone()
            loss.backward()
            opt.step()
        if best == math.inf:
            with torch.no_grad():
                best = float(objective(law, z, terms, config.huber_delta))
        return best_z, best

    results = [run_adam(law.pack(s), config.adam_iterations) for s in starts]
    z, best = min(results, key=lambda r: r[1] if math.isfinite(r[1]) else math.inf)
    if config.lbfgs_iterations:
        z = z.clone().requires_grad_(True)
        opt = torch.optim.LBFGS(
            [z],
            lr=1.0,
            max_iter=config.lbfgs_iterations,
            tolerance_grad=1e-10,
            tolerance_change=1e-14,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = objective(law, z, terms, config.huber_delta)
            loss.backward()
            return loss

        before = z.detach().clone()
        try:
            opt.step(closure)
        except RuntimeError:  # a line search into a non-finite region: keep Adam's point
            pass
        with torch.no_grad():
            after = float(objective(law, z, terms, config.huber_delta))
        if math.isfinite(after) and after <= best:
            best = after
        else:
            z = before
    if not math.isfinite(best):
        raise UserError(f"the {parsed.name} law could not be fitted to {[c.name for c in cut]}: the loss is not finite")
    with torch.no_grad():
        params = {k: float(v) for k, v in law.unpack(z.detach()).items()}
    return Fit(law, parsed.name, params, ref_lr, best, [c.name for c in cut], config.max_lr_changes)  # type: ignore[attr-defined]
