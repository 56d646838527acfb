"""The annealing-area law (Tissue et al. 2024, "Scaling Law with Learning Rate Annealing", arXiv 2408.11029):

    L(s) = L0 + A * S1(s)^-alpha - C * S2(s)
    S1(s) = sum_{i<=s} eta_i            (forward area)
    S2(s) = sum_{i<=s} m_i,  m_i = lambda * m_{i-1} + (eta_{i-1} - eta_i)   (annealing area)

Five parameters: S2 sums each LR decrease with a momentum that fades by lambda per step, so a decrease
k steps back contributes (eta_{k-1} - eta_k) * (1 - lambda^(t-k+1)) / (1 - lambda). The paper fixes
lambda = 0.999 for its runs; here it is fitted as a timescale of 1 step to 10x the longest run unless
the config fixes it.
"""

from __future__ import annotations

import itertools
import math

import torch

from tools.planner.config import AnnealingAreaConfig
from tools.planner.curves import Curve
from tools.planner.laws import LAWS, Law, Param, Terms, power_law_start


@LAWS.register("annealing_area", AnnealingAreaConfig)
class AnnealingArea(Law):
    def __init__(self, config: AnnealingAreaConfig):
        super().__init__(config)
        self.fixed_lambda = config.decay_factor
        self.longest = 1  # set from the curves before fitting (bounds the timescale)

    @property
    def params(self) -> tuple[Param, ...]:  # type: ignore[override]
        base = (Param("L0"), Param("A"), Param("alpha", 0.0, 3.0), Param("C"))
        if self.fixed_lambda is not None:
            return base
        return base + (Param("tau", 1.0, 10.0 * self.longest),)  # lambda = exp(-1/tau)

    def decay(self, p: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.fixed_lambda is not None:
            return torch.tensor(self.fixed_lambda, dtype=torch.float64)
        return torch.exp(-1.0 / p["tau"])

    def per_step(self, p: dict[str, torch.Tensor], terms: Terms) -> torch.Tensor:
        power = p["L0"] + p["A"] * terms.s1 ** (-p["alpha"])
        if not len(terms.delta):
            return power
        lam = self.decay(p)
        s2 = ((1.0 - lam**terms.lag) / (1.0 - lam) * terms.delta).sum(dim=1)  # lag 0 where k > t: no term
        return power - p["C"] * s2

    def starts(self, curves: list[Curve], ref_lr: float) -> list[dict[str, float]]:
        self.longest = max(c.total_steps for c in curves)
        low = min(float(c.loss.min()) for c in curves)
        spread = max(max(float(c.loss.max()) for c in curves) - low, 1e-3)
        out = []
        for floor_share, tau_share in itertools.product((0.5, 0.1, 2.0), (0.05, 0.3)):
            floor = low - floor_share * spread
            a, alpha = power_law_start(curves, ref_lr, floor)
            tau = max(tau_share * self.longest, 2.0)
            lam = self.fixed_lambda if self.fixed_lambda is not None else math.exp(-1.0 / tau)
            start = {"L0": max(floor, 1e-3), "A": a, "alpha": alpha, "C": 0.3 * spread * (1.0 - lam)}
            if self.fixed_lambda is None:
                start["tau"] = tau
            out.append(start)
        return out

    def absolute(self, p: dict[str, float], ref_lr: float) -> dict[str, float]:
        out = {"L0": p["L0"], "A": p["A"] * ref_lr ** p["alpha"], "alpha": p["alpha"], "C": p["C"] / ref_lr}
        out["lambda"] = self.fixed_lambda if self.fixed_lambda is not None else math.exp(-1.0 / p["tau"])
        return out
