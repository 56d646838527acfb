"""A network-free testbed for controllers: domains whose loss curves and transfer are known exactly.

Domain k's loss after the model has seen n_j samples of each domain j is

    L_k = E_k + B_k * m_k ** -a,    m_k = (1 - tau) * n_k + tau * N,    N = sum_j n_j,

so a sample of domain j teaches domain k a fraction tau of what a sample of k itself does (tau = 0:
no transfer). For a run of N samples at a fixed mixture w (n = w N), the mixture minimising the sum
of the domains' final losses is analytic: setting the derivatives equal gives
(1 - tau) w_k + tau = c * B_k ** (1 / (1 + a)), with c fixed by sum w = 1 and domains whose w would
be negative held at 0 (water-filling), `optimal_mixture`. `simulate` runs a controller on these
curves with the trainer's own cadence and rounding, and reports the mixture it realised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mixers.controllers.base import Controller, Observation
from mixers.controllers.rounding import round_counts


@dataclass(frozen=True)
class Curves:
    """Known per-domain power laws with a uniform transfer ``tau`` (see the module docstring)."""

    floor_loss: np.ndarray  # E_k
    scale: np.ndarray  # B_k
    exponent: float  # a, shared
    transfer: float = 0.0  # tau in [0, 1)

    def losses(self, seen: np.ndarray) -> np.ndarray:
        seen = np.asarray(seen, dtype=np.float64)
        effective = (1 - self.transfer) * seen + self.transfer * seen.sum()
        return self.floor_loss + self.scale * np.maximum(effective, 1.0) ** -self.exponent

    def total_loss(self, mixture: np.ndarray, samples: float) -> float:
        return float(self.losses(np.asarray(mixture) * samples).sum())


def optimal_mixture(curves: Curves) -> np.ndarray:
    """The fixed mixture minimising the summed final loss (any run length: it does not depend on N)."""
    b = np.asarray(curves.scale, dtype=np.float64) ** (1 / (1 + curves.exponent))
    tau = curves.transfer
    active = np.ones(len(b), dtype=bool)
    while True:  # water-filling: drop domains whose share would be negative, solve again
        c = (1 - tau + tau * active.sum()) / b[active].sum()
        w = np.where(active, (c * b - tau) / (1 - tau), 0.0)
        if (w[active] >= -1e-15).all():
            return np.clip(w, 0, None) / np.clip(w, 0, None).sum()
        active &= w > 0


@dataclass
class Trajectory:
    """What a simulated run chose: the weights at every update and the samples each domain got."""

    weights: list[np.ndarray] = field(default_factory=list)
    seen: np.ndarray | None = None

    @property
    def realised(self) -> np.ndarray:
        assert self.seen is not None
        return self.seen / self.seen.sum()


def simulate(
    controller: Controller,
    curves: Curves,
    prior: np.ndarray,
    *,
    updates: int,
    samples_per_update: int,
    noise: float = 0.0,
    seed: int = 0,
) -> Trajectory:
    """Run ``controller`` on ``curves``: each window of ``samples_per_update`` samples follows the
    current weights (rounded to counts as the trainer rounds them), then the controller sees the
    window's losses (times 1 + ``noise`` x a standard normal) and sets the next weights."""
    rng = np.random.default_rng(seed)
    weights = np.asarray(prior, dtype=np.float64)
    seen = np.zeros(len(weights), dtype=np.int64)
    out = Trajectory()
    for update in range(1, updates + 1):
        counts = round_counts(weights, samples_per_update)
        seen += counts
        losses = curves.losses(seen) * (1 + noise * rng.standard_normal(len(seen)))
        obs = Observation(
            step=update,
            losses=np.where(counts > 0, losses, np.nan),
            samples=counts,
            consumed=seen.copy(),
            prior=np.asarray(prior, dtype=np.float64),
            previous=counts / samples_per_update,
        )
        weights = controller.update(obs)
        out.weights.append(weights)
    out.seen = seen
    return out
