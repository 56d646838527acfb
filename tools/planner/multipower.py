"""The multi-power law (Luo et al. 2025, "A Multi-Power Law for Loss Curve Prediction Across Learning
Rate Schedules", arXiv 2503.12811; public code thu-yao-01-luo/MultiPowerLaw):

    L(t) = L0 + A * (S1(t) + S_W)^-alpha - B * sum_{k<=t} (eta_{k-1} - eta_k) * G(eta_k^-gamma * S_k(t))
    G(x) = 1 - (C*x + 1)^-beta,   S_k(t) = sum_{tau=k..t} eta_tau

Seven parameters. The sum runs over every step from the first, warmup included (as the paper's code
does: a warmup's LR increases add B * eta_peak * G to the loss, which the published parameters carry;
leaving them out shifts its predictions by ~3%). Each LR decrease lowers the loss by up to B times its size, reached as a power law
in the LR area trained since it (faster at a smaller LR through eta_k^-gamma). As in the paper's code,
the starting points come from a log-log fit of the power-law part; the decay part starts at C = 1,
beta = gamma = 1/2 in the paper's units, converted to ours.
"""

from __future__ import annotations

import itertools

import torch

from tools.planner.config import MultiPowerConfig
from tools.planner.curves import Curve
from tools.planner.laws import LAWS, Law, Param, Terms, power_law_start


@LAWS.register("multi_power", MultiPowerConfig)
class MultiPower(Law):
    params = (
        Param("L0"),
        Param("A"),
        Param("alpha", 0.0, 3.0),
        Param("B"),
        Param("C"),
        Param("beta", 0.0, 3.0),
        Param("gamma", 0.0, 2.0),
    )
    warmup_changes = True

    def per_step(self, p: dict[str, torch.Tensor], terms: Terms) -> torch.Tensor:
        power = p["L0"] + p["A"] * terms.s1 ** (-p["alpha"])
        if not len(terms.delta):
            return power
        x = p["C"] * terms.lr_k ** (-p["gamma"]) * terms.area  # area is 0 where k > t, so G = 0 there
        g = 1.0 - (x + 1.0) ** (-p["beta"])
        return power - p["B"] * (g * terms.delta).sum(dim=1)

    def starts(self, curves: list[Curve], ref_lr: float) -> list[dict[str, float]]:
        low = min(float(c.loss.min()) for c in curves)
        spread = max(max(float(c.loss.max()) for c in curves) - low, 1e-3)
        out = []
        for floor_share, b_share, c_paper in itertools.product((0.5, 0.1, 2.0), (1.0, 0.3), (1.0, 10.0)):
            floor = low - floor_share * spread
            a, alpha = power_law_start(curves, ref_lr, floor)
            # paper units: C_abs * eta^-gamma * S_abs  ->  ours: C = C_abs * ref_lr^(1 - gamma)
            out.append(
                {
                    "L0": max(floor, 1e-3),
                    "A": a,
                    "alpha": alpha,
                    "B": b_share * spread,
                    "C": c_paper * ref_lr**0.5,
                    "beta": 0.5,
                    "gamma": 0.5,
                }
            )
        return out

    def absolute(self, p: dict[str, float], ref_lr: float) -> dict[str, float]:
        return {
            "L0": p["L0"],
            "A": p["A"] * ref_lr ** p["alpha"],
            "alpha": p["alpha"],
            "B": p["B"] / ref_lr,
            "C": p["C"] * ref_lr ** (p["gamma"] - 1.0),
            "beta": p["beta"],
            "gamma": p["gamma"],
        }

    @staticmethod
    def from_absolute(p: dict[str, float], ref_lr: float) -> dict[str, float]:
        """Inverse of `absolute` (to generate curves from published parameters)."""
        return {
            "L0": p["L0"],
            "A": p["A"] * ref_lr ** (-p["alpha"]),
            "alpha": p["alpha"],
            "B": p["B"] * ref_lr,
            "C": p["C"] * ref_lr ** (1.0 - p["gamma"]),
            "beta": p["beta"],
            "gamma": p["gamma"],
        }
