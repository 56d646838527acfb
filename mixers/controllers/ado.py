"""`ado`: Adaptive Data Optimization (Jiang et al., 2024, arXiv 2410.11820), once per window.

Per domain k a power law L_k(n) = E_k + B_k n^-a_k is fitted online to the domain's training loss
(`powerlaw.py`), where n counts the samples the model has trained on (by default all of them, every
domain's: the paper's reference code does this so that transfer between domains shows in each
curve). Its slope -dL_k/dn = a_k (L_k(n) - E_k) / n is how much one more sample still teaches. Then,
as in the paper:

- preference rho_k proportional to mu_k * h_k^s * (-dL_k/dn), with mu the prior (the recipe's mixer)
  and h a credit score: an exponential average of the weights the domain was given (gamma1 per step,
  compounded over the K steps of a window);
- policy pi = gamma2 * rho + (1 - gamma2) * rho_bar, where rho_bar is the running (uniform) average
  of every rho so far, starting from the prior;
- the floor (the paper's delta_min = 0.01 by default) and the change limit come from the bounds
  every controller shares (`config.py`, `bounds.py`).

Per window, not per step: losses are the window's mean (the per-window average is the smoothing
that the reference code's Savitzky-Golay filter gives); a history of the last `history` points per
domain is fitted, so the state stays a few small arrays. Until a domain has 3 points its slope is
unknown and the prior stands.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from mixers.base import DomainInfo
from mixers.controllers.base import Controller, Observation
from mixers.controllers.config import ControllerConfig
from mixers.controllers.powerlaw import PowerLaw, fit_power_law
from mixers.controllers.registry import CONTROLLERS


class AdoConfig(ControllerConfig):
    name: Literal["ado"] = "ado"
    floor: float = Field(0.01, ge=0.0, lt=1.0, description="Least weight of any domain (the paper's delta_min).")
    gamma1: float = Field(0.1, gt=0.0, le=1.0, description="Per-step smoothing of the credit score h.")
    gamma2: float = Field(
        0.1, ge=0.0, le=1.0, description="Weight of the current preference against its running average."
    )
    s: float = Field(0.5, ge=0.0, le=4.0, description="Exponent of the credit score in the preference.")
    shared_count: bool = Field(
        True,
        description="n = samples of all domains (the reference code's choice, so transfer shows in each "
        "curve); false = the domain's own samples.",
    )
    history: int = Field(256, ge=3, le=100_000, description="Points (one per update) kept per domain for the fit.")
    max_exponent: float = Field(0.8, gt=0.0, le=4.0, description="Upper bound of a fitted exponent a_k.")


@CONTROLLERS.register("ado", AdoConfig)
class AdoController(Controller):
    config: AdoConfig

    def __init__(self, config: AdoConfig, domains: DomainInfo, where: str = "mixture.controller"):
        super().__init__(config, domains, where)
        d = len(domains.names)
        self.updates = 0
        self.points = 0  # how many history rows are filled (the newest last)
        self.n_history = np.zeros((config.history, d), dtype=np.float64)
        self.loss_history = np.full((config.history, d), np.nan, dtype=np.float64)
        self.credit: np.ndarray | None = None  # h, starts at the prior
        self.average: np.ndarray | None = None  # rho_bar, starts at the prior
        self.fits: list[PowerLaw | None] = [None] * d

    def _record(self, n: np.ndarray, losses: np.ndarray) -> None:
        if self.points == self.config.history:  # drop the oldest point
            self.n_history[:-1] = self.n_history[1:]
            self.loss_history[:-1] = self.loss_history[1:]
            self.points -= 1
        self.n_history[self.points] = n
        self.loss_history[self.points] = losses
        self.points += 1

    def _fit(self) -> None:
        bounds = (1e-3, self.config.max_exponent)
        rows = slice(0, self.points)
        self.fits = [
            fit_power_law(self.n_history[rows, k], self.loss_history[rows, k], bounds) for k in range(len(self.fits))
        ]

    def propose(self, obs: Observation) -> np.ndarray:
        c = self.config
        if self.credit is None or self.average is None:
            self.credit, self.average = obs.prior.copy(), obs.prior.copy()
        seen = obs.consumed > 0
        n = np.where(seen, obs.consumed.sum(), 0) if c.shared_count else obs.consumed
        self._record(n.astype(np.float64), np.where(obs.samples > 0, obs.losses, np.nan))
        self._fit()
        slope = np.array([f.slope(max(n[k], 1)) if f is not None else np.nan for k, f in enumerate(self.fits)])
        if np.isfinite(slope).all():
            rho = np.maximum(obs.prior * self.credit**c.s * slope, 0.0)
            rho = rho / rho.sum() if rho.sum() > 0 else obs.prior.copy()
        else:
            rho = obs.prior.copy()  # some domain has no curve yet: the prior stands
        policy = c.gamma2 * rho + (1 - c.gamma2) * self.average
        policy /= policy.sum()
        self.updates += 1
        self.average = self.average + (rho - self.average) / (self.updates + 1)
        decay = (1 - c.gamma1) ** c.every_steps  # gamma1 per step, over the window's K steps
        self.credit = (1 - decay) * policy + decay * self.credit
        return policy

    def diagnostics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, fit in zip(self.domains.names, self.fits):
            if fit is not None:
                out |= {f"ado/{name}/E": fit.floor_loss, f"ado/{name}/B": fit.scale, f"ado/{name}/a": fit.exponent}
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "updates": self.updates,
            "points": self.points,
            "n_history": self.n_history[: self.points].tolist(),
            "loss_history": self.loss_history[: self.points].tolist(),
            "credit": None if self.credit is None else self.credit.tolist(),
            "average": None if self.average is None else self.average.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates, self.points = int(state["updates"]), int(state["points"])
        self.n_history[:] = 0.0
        self.loss_history[:] = np.nan
        if self.points:
            self.n_history[: self.points] = np.array(state["n_history"], dtype=np.float64)
            self.loss_history[: self.points] = np.array(state["loss_history"], dtype=np.float64)
        self.credit = None if state["credit"] is None else np.array(state["credit"], dtype=np.float64)
        self.average = None if state["average"] is None else np.array(state["average"], dtype=np.float64)
        if self.points:
            self._fit()
