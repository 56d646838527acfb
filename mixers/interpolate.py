"""`interpolate` mixer: move gradually from one mix to another over a stretch of training.

    mixer: {name: interpolate, initial: natural, final: {web: 0.5, math: 0.5}, over: [0.5, 0.9], shape: cosine}

w(t) = (1 - a(t)) * initial + a(t) * final, with a = 0 before ``over[0]``, exactly 1 from ``over[1]``
on, and a linear or half-cosine ramp in between: the gradual counterpart of `staged` (and of the
gradual temperature schedules that the cooldown work compared with a single step). Phases:
``initial`` [0, from) and ``final`` [to, 1) where non-empty, ``transition`` [from, to).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from curriculum.registry import StrictModel
from mixers.base import DomainInfo, Mixer, Phase
from mixers.mix import MIX_HELP, Mix, MixSpec, merge_breakpoints, merge_phases
from mixers.ramp import ramp
from mixers.registry import MIXERS


class InterpolateConfig(StrictModel):
    name: Literal["interpolate"] = "interpolate"
    initial: MixSpec = Field("natural", description=f"The mix before `over[0]`: {MIX_HELP}.")
    final: MixSpec = Field(description=f"The mix from `over[1]` on: {MIX_HELP}.")
    over: tuple[float, float] = Field(
        (0.0, 1.0), description="[from, to] fractions of training over which the mix moves from `initial` to `final`."
    )
    shape: Literal["linear", "cosine"] = Field(
        "linear", description="Ramp shape: linear, or half-cosine (flat at both ends)."
    )
    normalize: bool = Field(False, description="Divide weight mappings by their sum instead of requiring sum 1.")

    @model_validator(mode="after")
    def _range(self) -> "InterpolateConfig":
        lo, hi = self.over
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"over={list(self.over)} must satisfy 0 <= from < to <= 1")
        return self


@MIXERS.register("interpolate", InterpolateConfig)
class InterpolateMixer(Mixer):
    def __init__(self, config: InterpolateConfig, domains: DomainInfo, where: str = "mixture"):
        super().__init__(config, domains, where)
        self.initial = Mix(config.initial, config.normalize, domains, f"{where}.initial")
        self.final = Mix(config.final, config.normalize, domains, f"{where}.final")
        self.phases()  # refuse clashing nested phase names at build time, not at plan time

    def weights(self, progress: np.ndarray) -> np.ndarray:
        progress = np.asarray(progress, dtype=np.float64)
        alpha = ramp(progress, *self.config.over, self.config.shape)[:, None]
        return (1.0 - alpha) * self.initial.weights(progress) + alpha * self.final.weights(progress)

    def phases(self) -> list[Phase]:
        lo, hi = self.config.over
        own = [Phase("initial", 0.0, lo)] if lo > 0 else []
        own.append(Phase("transition", lo, hi))
        if hi < 1:
            own.append(Phase("final", hi, 1.0))
        return merge_phases(own, [self.initial, self.final], self.where)

    def breakpoints(self) -> list[float]:
        return merge_breakpoints(self.phases(), [self.initial, self.final])
