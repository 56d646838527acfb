"""The controller protocol: every K steps, per-domain losses in -> the next window's weights out.

A controller is a small deterministic state machine. The trainer hands it an `Observation` at each
update (the per-domain mean training loss of the last window, reduced over processes in domain
order, and how many samples each domain has had); it answers the next window's weights, which the
base class moves onto the recipe's bounds (`bounds.py`). Its whole state is `state_dict()`: a few
small float64/int64 arrays as JSON-ready lists, saved with every checkpoint and restored on resume,
so the weights it gives after a resume are the bits it would have given without one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixers.base import DomainInfo
from mixers.controllers.bounds import apply_bounds
from mixers.controllers.config import ControllerConfig


@dataclass(frozen=True)
class Observation:
    """What a controller sees at one update (all arrays indexed by domain, in the store's order)."""

    step: int  # completed steps: the update sets the weights of steps [step, step + every_steps)
    losses: np.ndarray  # float64 mean training loss per domain over the last window (NaN: none seen)
    samples: np.ndarray  # int64 samples of each domain in the last window
    consumed: np.ndarray  # int64 samples of each domain since step 0
    prior: np.ndarray  # float64 the prior mixture (the recipe's mixer) at ``step``
    previous: np.ndarray  # float64 the weights of the last window


class Controller(ABC):
    """Base class of every controller: built as ``Controller(config, domains)``."""

    def __init__(self, config: ControllerConfig, domains: DomainInfo, where: str = "mixture.controller"):
        self.config = config
        self.domains = domains
        self.where = where

    @abstractmethod
    def propose(self, obs: Observation) -> np.ndarray:
        """The controller's own next weights (a distribution over domains), before the bounds."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything the next proposals depend on, as JSON values (lists of floats / ints)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Back to the state ``state_dict`` gave."""

    def diagnostics(self) -> dict[str, float]:
        """Numbers worth logging at an update (fitted parameters, ...), by name."""
        return {}

    def update(self, obs: Observation) -> np.ndarray:
        """The next window's weights: the proposal, moved onto the bounds (float64)."""
        c = self.config
        return apply_bounds(self.propose(obs), obs.previous, c.floor, c.max_change)
