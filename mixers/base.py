"""The mixer protocol: target domain weights w_d(progress) over training, and the phases they define.

A mixer only says *what fraction* of each global batch should come from each domain at each point
of training. The plan (tools/train/plan.py) turns those fractions into integer per-domain counts.
Progress is ``step / total_steps`` in [0, 1); a phase is a named [start, end) range of progress
that LR schedules and the averaging window can refer to by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from curriculum.errors import UserError

# Progress values closer than this to a boundary count as on it (steps are integers; fractions are not).
EPS = 1e-12


@dataclass(frozen=True)
class DomainInfo:
    """What mixers may know about the domains: names and sizes of their training sets."""

    names: tuple[str, ...]
    sequences: np.ndarray  # training sequences per domain (int64)
    tokens: np.ndarray  # training tokens per domain (int64)

    def index(self, name: str, where: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise UserError(f"{where}: unknown domain {name!r}; the domains are {list(self.names)}") from None

    def vector(self, weights: dict[str, float], where: str) -> np.ndarray:
        """A dense weight vector from a {domain: weight} mapping (unlisted domains get 0)."""
        out = np.zeros(len(self.names), dtype=np.float64)
        for name, weight in weights.items():
            out[self.index(name, where)] = weight
        return out


@dataclass(frozen=True)
class Phase:
    """A named stretch of training, as fractions of the total steps: [start, end)."""

    name: str
    start: float
    end: float

    def steps(self, total_steps: int) -> tuple[int, int]:
        """The phase as a step range [first, stop) of a run with ``total_steps`` steps."""
        return boundary_step(self.start, total_steps), boundary_step(self.end, total_steps)


def boundary_step(fraction: float, total_steps: int) -> int:
    """First step whose progress ``step / total_steps`` is at or past ``fraction``."""
    return int(np.ceil(fraction * total_steps - EPS * max(total_steps, 1)))


def at_or_after(progress: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of progress values at or past ``fraction`` (consistent with `boundary_step`)."""
    return progress >= fraction - EPS


def check_distribution(vector: np.ndarray, where: str, names: tuple[str, ...]) -> np.ndarray:
    """Raise a UserError unless ``vector`` is a probability distribution over the domains."""
    if np.any(vector < 0) or not np.all(np.isfinite(vector)):
        bad = {n: float(v) for n, v in zip(names, vector) if not (v >= 0 and np.isfinite(v))}
        raise UserError(f"{where}: weights must be finite and non-negative, got {bad}")
    total = float(vector.sum())
    if abs(total - 1.0) > 1e-6:
        raise UserError(
            f"{where}: weights must sum to 1 (a distribution over domains), they sum to {total:.6g}; "
            "fix them or set `normalize: true`"
        )
    return vector


class Mixer(ABC):
    """Base class of every mixer: built as ``Mixer(config, domains)``."""

    def __init__(self, config: BaseModel, domains: DomainInfo, where: str = "mixture"):
        self.config = config
        self.domains = domains
        self.where = where

    @abstractmethod
    def weights(self, progress: np.ndarray) -> np.ndarray:
        """Target weights, shape [len(progress), num_domains]; each row is a distribution."""

    def phases(self) -> list[Phase]:
        """Named phases this mixer defines (e.g. the upsampling tail), in order."""
        return []

    def breakpoints(self) -> list[float]:
        """Progress values where the weights may jump; the plan never spreads a window across one."""
        return sorted({p.start for p in self.phases()} | {p.end for p in self.phases()})
