"""`staged` mixer: a sequence of mixes, each used until a given fraction of training (multi-stage pretraining).

    mixer:
      name: staged
      stages:
        - {name: general, until: 0.8, weights: natural}
        - {name: anneal, until: 1.0, weights: {web: 0.5, math: 0.25, code: 0.25}}

Stage i covers [until_{i-1}, until_i) of training; the ``until`` values are strictly increasing and
the last is 1. The weights switch by a step exactly on `boundary_step(until, T)`. Each stage is a
phase named by its ``name`` (default ``stage_1``, ``stage_2``, ...), so WSD can decay over the
``anneal`` stage. A stage's weights may be a nested mixer (evaluated at the global progress).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from curriculum.registry import StrictModel
from mixers.base import DomainInfo, Mixer, Phase, at_or_after
from mixers.mix import MIX_HELP, Mix, MixSpec, merge_breakpoints, merge_phases
from mixers.registry import MIXERS


class StageConfig(StrictModel):
    name: str | None = Field(
        None, min_length=1, max_length=64, description="Phase name of the stage (default `stage_<i>`, counting from 1)."
    )
    until: float = Field(gt=0, le=1, description="Fraction of training where the stage ends (the last is 1).")
    weights: MixSpec = Field(description=f"The stage's mix: {MIX_HELP}.")


class StagedConfig(StrictModel):
    name: Literal["staged"] = "staged"
    stages: list[StageConfig] = Field(min_length=1, description="The stages in time order.")
    normalize: bool = Field(False, description="Divide weight mappings by their sum instead of requiring sum 1.")

    @model_validator(mode="after")
    def _ordered(self) -> "StagedConfig":
        ends = [s.until for s in self.stages]
        if any(b <= a for a, b in zip(ends, ends[1:])):
            raise ValueError(f"stage `until` values must be strictly increasing, got {ends}")
        if ends[-1] != 1.0:
            raise ValueError(f"the last stage must end at `until: 1.0`, got {ends[-1]}")
        names = self.stage_names()
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        return self

    def stage_names(self) -> list[str]:
        return [s.name or f"stage_{i + 1}" for i, s in enumerate(self.stages)]


@MIXERS.register("staged", StagedConfig)
class StagedMixer(Mixer):
    def __init__(self, config: StagedConfig, domains: DomainInfo, where: str = "mixture"):
        super().__init__(config, domains, where)
        self.mixes = [
            Mix(s.weights, config.normalize, domains, f"{where}.stages.{i}.weights")
            for i, s in enumerate(config.stages)
        ]
        self.starts = [0.0] + [s.until for s in config.stages[:-1]]
        self.phases()  # refuse clashing nested phase names at build time, not at plan time

    def stage_index(self, progress: np.ndarray) -> np.ndarray:
        """Which stage each progress value is in (switching exactly where the plan puts the phase edge)."""
        index = np.zeros(np.shape(progress), dtype=np.int64)
        for start in self.starts[1:]:
            index += at_or_after(np.asarray(progress, dtype=np.float64), start)
        return index

    def weights(self, progress: np.ndarray) -> np.ndarray:
        progress = np.asarray(progress, dtype=np.float64)
        index = self.stage_index(progress)
        out = np.empty((len(progress), len(self.domains.names)), dtype=np.float64)
        for i, mix in enumerate(self.mixes):
            rows = index == i
            if rows.any():
                out[rows] = mix.weights(progress[rows])
        return out

    def phases(self) -> list[Phase]:
        own = [
            Phase(name, start, stage.until)
            for name, start, stage in zip(self.config.stage_names(), self.starts, self.config.stages)
        ]
        return merge_phases(own, self.mixes, self.where)

    def breakpoints(self) -> list[float]:
        return merge_breakpoints(self.phases(), self.mixes)
