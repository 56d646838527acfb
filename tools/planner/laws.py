"""Loss-curve laws L(step | LR schedule): the registry, and the sums over an LR schedule both laws share.

Both registered laws (`multi_power`, `annealing_area`) write the loss at step t as a power law in the
area under the LR so far, minus a drop that each LR decrease k <= t adds as it is "absorbed":

    L(t) = L0 + A * S1(t)^-alpha - sum_k (eta_{k-1} - eta_k) * f(k, t)

so `Terms` precomputes, once per curve, S1 at every step an observation needs, each post-warmup LR
change eta_{k-1} - eta_k, and for every (step, change) pair the LR area between them and their lag.
Laws are fitted in LR units of the fitted runs' peak (`ref_lr`), which keeps the parameters of order
one; `absolute()` converts them back to the papers' units (LR as is) for comparison.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from curriculum.registry import Registry
from tools.planner.curves import Curve

MIN_LR = 1e-8  # of ref_lr: keeps eta_k^-gamma finite where a schedule decays to exactly 0


@dataclass
class Terms:
    """A curve's precomputed sums (float64 tensors) in units of ``ref_lr``."""

    s1: torch.Tensor  # (E,) LR area of steps 0..t, warmup included (the paper's S1 + S_W)
    delta: torch.Tensor  # (K,) eta_{k-1} - eta_k for each step k whose LR changes (after warmup, or all)
    lr_k: torch.Tensor  # (K,) eta_k
    area: torch.Tensor  # (E, K) sum of eta over k..t, 0 where k > t
    lag: torch.Tensor  # (E, K) t - k + 1, 0 where k > t
    gather: torch.Tensor  # (M,) which evaluated step each term of an observation's window is
    owner: torch.Tensor  # (M,) which observation each term belongs to
    window: torch.Tensor  # (O,) terms per observation (2: the middle steps of its logging window)
    observed: torch.Tensor  # (O,) observed losses

    @classmethod
    def of(cls, curve: Curve, ref_lr: float, max_changes: int | None = None, warmup: bool = False) -> "Terms":
        """``warmup``: the LR increases of the warmup count as (negative) changes too."""
        u = curve.lr / ref_lr
        cum = np.cumsum(u)
        start = 1 if warmup else curve.warmup_end + 1
        k = np.arange(start, len(u))
        delta = u[k - 1] - u[k] if len(k) else np.zeros(0)
        changed = np.abs(delta) > 1e-12
        k, delta = k[changed], delta[changed]
        if max_changes and len(k) > max_changes:
            k, delta = coarsened(k, delta, max_changes)
        steps, window, loss = curve.steps, curve.window, curve.loss
        # A window's mean is taken at its centre (the mean of the one or two middle steps): the laws are
        # smooth over a log interval, and this keeps the cost at two evaluations per observation.
        centre = steps - (window - 1) / 2.0
        pairs = np.stack([np.floor(centre), np.ceil(centre)], axis=1).astype(np.int64)
        flat, owner = pairs.ravel(), np.repeat(np.arange(len(steps)), 2)
        evaluated, gather = np.unique(flat, return_inverse=True)
        t = evaluated[:, None]
        valid = k[None, :] <= t
        area = np.where(valid, cum[t] - cum[np.maximum(k - 1, 0)][None, :], 0.0)
        lag = np.where(valid, t - k[None, :] + 1, 0)
        as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
        return cls(
            s1=as_t(cum[evaluated]),
            delta=as_t(delta),
            lr_k=as_t(np.maximum(u[k], MIN_LR) if len(k) else np.zeros(0)),  # eta^-gamma at a decay to 0
            area=as_t(area),
            lag=as_t(lag),
            gather=torch.as_tensor(gather, dtype=torch.long),
            owner=torch.as_tensor(owner, dtype=torch.long),
            window=as_t(np.full(len(steps), 2.0)),
            observed=as_t(loss),
        )

    def observe(self, per_step: torch.Tensor) -> torch.Tensor:
        """The per-step predictions averaged over each observation's window (as the trainer logs)."""
        total = torch.zeros(len(self.window), dtype=per_step.dtype).index_add_(0, self.owner, per_step[self.gather])
        return total / self.window


def coarsened(k: np.ndarray, delta: np.ndarray, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``blocks`` LR changes: runs of consecutive changes merged into one at the run's middle step,
    carrying their summed size. A long cosine (tens of thousands of changes, each tiny) then costs a few
    thousand terms; each term moves by at most half a block's steps, far below what a fit resolves."""
    edges = np.unique(np.linspace(0, len(k), blocks + 1).round().astype(int))
    middle = k[(edges[:-1] + edges[1:] - 1) // 2]
    return middle, np.add.reduceat(delta, edges[:-1])


@dataclass(frozen=True)
class Param:
    """One parameter: its name and the map from an unconstrained number to its (bounded) value."""

    name: str
    low: float = 0.0  # value = low + (high - low) * sigmoid(z) when high is set, else low + exp(z)
    high: float | None = None

    def value(self, z: torch.Tensor) -> torch.Tensor:
        if self.high is None:
            return self.low + torch.exp(z)
        return self.low + (self.high - self.low) * torch.sigmoid(z)

    def raw(self, value: float) -> float:
        if self.high is None:
            return float(np.log(max(value - self.low, 1e-12)))
        p = np.clip((value - self.low) / (self.high - self.low), 1e-6, 1 - 1e-6)
        return float(np.log(p / (1 - p)))


class Law(ABC):
    """A loss-curve law: named, bounded parameters; per-step predictions from a curve's `Terms`."""

    params: tuple[Param, ...]
    warmup_changes = False  # whether the warmup's LR increases enter the sum over changes

    def terms(self, curve: Curve, ref_lr: float, max_changes: int | None = None) -> Terms:
        return Terms.of(curve, ref_lr, max_changes, warmup=self.warmup_changes)

    def __init__(self, config: object):
        self.config = config

    @abstractmethod
    def per_step(self, p: dict[str, torch.Tensor], terms: Terms) -> torch.Tensor:
        """Predicted loss at each evaluated step of ``terms`` (units of the fit's ``ref_lr``)."""

    @abstractmethod
    def starts(self, curves: list[Curve], ref_lr: float) -> list[dict[str, float]]:
        """Starting points, best guess first, from the data's scale."""

    @abstractmethod
    def absolute(self, p: dict[str, float], ref_lr: float) -> dict[str, float]:
        """The parameters in the papers' units (LR as is, not divided by ``ref_lr``)."""

    def unpack(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {param.name: param.value(z[i]) for i, param in enumerate(self.params)}

    def pack(self, values: dict[str, float]) -> torch.Tensor:
        return torch.tensor([param.raw(values[param.name]) for param in self.params], dtype=torch.float64)


LAWS: Registry[Law] = Registry("loss-curve law")


def power_law_start(curves: list[Curve], ref_lr: float, floor: float) -> tuple[float, float]:
    """A and alpha of L - floor = A * S1^-alpha by least squares in log-log over every observation."""
    xs, ys = [], []
    for curve in curves:
        cum = np.cumsum(curve.lr / ref_lr)
        xs.append(np.log(cum[curve.steps]))
        ys.append(np.log(np.maximum(curve.loss - floor, 1e-3)))
    x, y = np.concatenate(xs), np.concatenate(ys)
    slope, intercept = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (-0.5, float(np.mean(y)))
    alpha = float(np.clip(-slope, 0.05, 2.0))
    return float(np.exp(np.mean(y + alpha * x))), alpha  # A refitted for the clipped alpha
