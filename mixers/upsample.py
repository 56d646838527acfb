"""`upsample` mixer: end-of-training domain upsampling (a base mix, then an upsampled tail mix).

Upsampling small, dense domains (math, code, reference text) over the last 10-20% of training lifts
the abilities they carry; 5% is too short and 30% starts to cost general ability. So the reference
is ``tail_fraction: 0.15``. Every step has the same number of tokens, so the last X% of steps is
the last X% of tokens.

    mixer: {name: upsample, base: natural, tail: {math: 0.3, code: 0.3, web: 0.4}, tail_fraction: 0.15}
    mixer: {name: upsample, base: {name: temperature, tau: 2}, boost: {math: 3}, tail_fraction: 0.2,
            transition: cosine, transition_fraction: 0.05}

The tail mix is given directly (``tail``) or as boost factors on the base (``boost``: tail =
base x factors, renormalised; unlisted domains keep factor 1). A smooth transition is a ramp
*before* the tail, so the ``upsample`` phase is exactly the last ``tail_fraction`` of steps (rounded
like every phase edge: it starts at ``boundary_step(1 - tail_fraction, T)``) and realises exactly
the tail mix. Phases: ``base``, ``transition`` (smooth only) and ``upsample`` (the tail), plus any
phases of a nested base or tail mixer.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from curriculum.errors import UserError
from curriculum.registry import StrictModel
from mixers.base import EPS, DomainInfo, Mixer, Phase
from mixers.mix import MIX_HELP, Mix, MixSpec, merge_breakpoints, merge_phases
from mixers.ramp import ramp
from mixers.registry import MIXERS


class UpsampleConfig(StrictModel):
    name: Literal["upsample"] = "upsample"
    base: MixSpec = Field("natural", description=f"The mix for most of training: {MIX_HELP}.")
    tail: MixSpec | None = Field(
        None, description=f"The upsampled mix of the last `tail_fraction`: {MIX_HELP}. Give this or `boost`."
    )
    boost: dict[str, Annotated[float, Field(ge=0)]] | None = Field(
        None,
        description="Tail = base weights times these factors, renormalised (e.g. {math: 3, code: 2}; "
        "unlisted domains keep factor 1). Give this or `tail`.",
    )
    tail_fraction: float = Field(
        0.15,
        gt=0,
        lt=1,
        description="Fraction of the steps (= tokens) at the end of "
        "training that use the tail mix (0.1-0.2 is the useful range).",
    )
    transition: Literal["step", "linear", "cosine"] = Field(
        "step",
        description="How the base turns into the tail: a step at the tail's start, or a linear/cosine "
        "ramp over `transition_fraction` just before it.",
    )
    transition_fraction: float | None = Field(
        None, gt=0, lt=1, description="Length of the smooth ramp (linear/cosine only), as a fraction of training."
    )
    normalize: bool = Field(False, description="Divide weight mappings by their sum instead of requiring sum 1.")

    @model_validator(mode="after")
    def _consistent(self) -> "UpsampleConfig":
        if (self.tail is None) == (self.boost is None):
            raise ValueError("give exactly one of `tail` (the upsampled mix) and `boost` (factors on the base)")
        if self.transition == "step" and self.transition_fraction is not None:
            raise ValueError("`transition_fraction` is for linear/cosine transitions; a step has no ramp")
        if self.transition != "step":
            if self.transition_fraction is None:
                raise ValueError(f"transition={self.transition} needs `transition_fraction` (the ramp length)")
            if self.tail_fraction + self.transition_fraction > 1 + EPS:
                raise ValueError(
                    f"tail_fraction + transition_fraction = {self.tail_fraction + self.transition_fraction:g} exceeds 1"
                )
        return self


@MIXERS.register("upsample", UpsampleConfig)
class UpsampleMixer(Mixer):
    def __init__(self, config: UpsampleConfig, domains: DomainInfo, where: str = "mixture"):
        super().__init__(config, domains, where)
        self.base = Mix(config.base, config.normalize, domains, f"{where}.base")
        self.tail = None if config.tail is None else Mix(config.tail, config.normalize, domains, f"{where}.tail")
        self.boost = None
        if config.boost is not None:
            self.boost = np.ones(len(domains.names))
            for name, factor in config.boost.items():
                self.boost[domains.index(name, f"{where}.boost")] = factor
            if self.base.fixed:
                self._boosted(self.base.vector[None, :])  # refuse an all-zero tail now, not mid-plan
        # One float for the tail start, used by both the weights and the phases, so they agree exactly.
        self.tail_start = 1.0 - config.tail_fraction
        self.ramp_start = max(0.0, self.tail_start - (config.transition_fraction or 0.0))
        self.phases()  # refuse clashing nested phase names at build time, not at plan time

    def _boosted(self, base: np.ndarray) -> np.ndarray:
        boosted = base * self.boost[None, :]
        total = boosted.sum(axis=1, keepdims=True)
        if np.any(total <= 0):
            raise UserError(
                f"{self.where}.boost: the boosted tail has no weight left (every domain the base "
                "samples has factor 0); raise a factor or give `tail` instead"
            )
        return boosted / total

    def weights(self, progress: np.ndarray) -> np.ndarray:
        progress = np.asarray(progress, dtype=np.float64)
        base = self.base.weights(progress)
        tail = self._boosted(base) if self.tail is None else self.tail.weights(progress)
        alpha = ramp(progress, self.ramp_start, self.tail_start, self.config.transition)[:, None]
        # (1 - a) * base + a * tail is exactly `tail` at a == 1 and exactly `base` at a == 0.
        return (1.0 - alpha) * base + alpha * tail

    def _mixes(self) -> list[Mix]:
        return [m for m in (self.base, self.tail) if m is not None]

    def phases(self) -> list[Phase]:
        own = [Phase("base", 0.0, self.ramp_start)] if self.ramp_start > EPS else []
        if self.ramp_start < self.tail_start:
            own.append(Phase("transition", self.ramp_start, self.tail_start))
        own.append(Phase("upsample", self.tail_start, 1.0))
        return merge_phases(own, self._mixes(), self.where)

    def breakpoints(self) -> list[float]:
        return merge_breakpoints(self.phases(), self._mixes())
