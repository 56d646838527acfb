"""`temperature` mixer: p_d proportional to n_d^(1/tau), with a constant tau or a tau(t) schedule.

Temperature sampling over domain token counts n_d interpolates between the natural mix (tau = 1)
and uniform (tau -> infinity); tau > 1 upsamples small domains. High tau helps small domains early
but overfits them once they repeat; the *temperature cooldown* (tau 5 for the first half of
training, then tau 1) keeps the fast start without the overfitting, and in that work a single
step beat gradual schedules. This mixer covers both: ``tau: 3`` or

    tau: {start: 5, end: 1, shape: step, at: 0.5}          # the reference cooldown
    tau: {start: 5, end: 1, shape: cosine, over: [0.2, 0.8]}

A step schedule declares the phases ``tau_high`` and ``tau_low`` (in time order; ``tau_low`` comes
first when tau rises), a smooth one ``tau_high`` / ``tau_transition`` / ``tau_low`` (the outer
ones only where non-empty), so the LR decay or the averaging window can be placed on them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import Discriminator, Field, Tag, model_validator

from curriculum.errors import UserError
from curriculum.registry import StrictModel
from mixers.base import DomainInfo, Mixer, Phase
from mixers.ramp import ramp
from mixers.registry import MIXERS

TauValue = Annotated[float, Field(gt=0, le=1000)]


class TauSchedule(StrictModel):
    start: TauValue = Field(description="tau at the start of training (e.g. 5).")
    end: TauValue = Field(description="tau at the end of training (e.g. 1).")
    shape: Literal["step", "linear", "cosine"] = Field(
        "step", description="`step`: switch from start to end at `at`; `linear`/`cosine`: move tau over `over`."
    )
    # None = "not used by this shape" (the other shape's key), so a resolved recipe dumps and loads back.
    at: float | None = Field(
        None, gt=0, lt=1, description="(step) Fraction of training where tau switches to `end`; None = 0.5."
    )
    over: tuple[float, float] | None = Field(
        None,
        description="(linear, cosine) [from, to] fractions of training "
        "over which tau moves from `start` to `end`, constant outside; None = [0, 1].",
    )

    @property
    def switch_at(self) -> float:
        """(step) Where tau switches."""
        return 0.5 if self.at is None else self.at

    @property
    def span(self) -> tuple[float, float]:
        """(linear, cosine) The [from, to] fractions over which tau moves."""
        return (0.0, 1.0) if self.over is None else self.over

    @model_validator(mode="after")
    def _consistent(self) -> "TauSchedule":
        if self.start == self.end:
            raise ValueError(f"start and end are both {self.start}; use a constant `tau: {self.start}`")
        if self.shape == "step" and self.over is not None:
            raise ValueError("`over` is for linear/cosine shapes; a step switches at `at`")
        if self.shape != "step":
            if self.at is not None:
                raise ValueError("`at` is for the step shape; linear/cosine move over `over: [from, to]`")
            lo, hi = self.span
            if not 0 <= lo < hi <= 1:
                raise ValueError(f"over={list(self.span)} must satisfy 0 <= from < to <= 1")
        return self


def _tau_kind(value: Any) -> str:
    return "schedule" if isinstance(value, (dict, TauSchedule)) else "constant"


# Tagged so a bad value reports one error (`tau.schedule.end: Field required`), not one per union member.
TauSpec = Annotated[
    Union[Annotated[TauValue, Tag("constant")], Annotated[TauSchedule, Tag("schedule")]], Discriminator(_tau_kind)
]


class TemperatureConfig(StrictModel):
    name: Literal["temperature"] = "temperature"
    tau: TauSpec = Field(
        1.0,
        description="Temperature: a number (1 = natural mix, larger flattens towards uniform), or a schedule "
        "{start, end, shape: step|linear|cosine, at | over} (the cooldown: {start: 5, end: 1, at: 0.5}).",
    )
    domains: list[str] | None = Field(
        None, min_length=1, description="Sample only these domains (the others get weight 0); None = all domains."
    )
    token_multipliers: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        description="Scale a domain's token count n_d before the exponent (e.g. {math: 2} "
        "treats math as twice its size); unlisted domains keep 1.",
    )


def temperature_weights(tokens: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Rows p_d proportional to tokens_d^(1/tau) for each tau, shape [len(tau), D] (log space: no overflow)."""
    with np.errstate(divide="ignore"):
        log_n = np.log(np.asarray(tokens, dtype=np.float64))
    logits = log_n[None, :] / np.asarray(tau, dtype=np.float64)[:, None]
    logits -= logits.max(axis=1, keepdims=True)  # zero-count domains are -inf and get exactly 0
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


@MIXERS.register("temperature", TemperatureConfig)
class TemperatureMixer(Mixer):
    def __init__(self, config: TemperatureConfig, domains: DomainInfo, where: str = "mixture"):
        super().__init__(config, domains, where)
        counts = domains.tokens.astype(np.float64)
        if config.domains is not None:
            keep = np.zeros(len(counts), dtype=bool)
            for name in config.domains:
                keep[domains.index(name, f"{where}.domains")] = True
            counts = np.where(keep, counts, 0.0)
        for name, factor in config.token_multipliers.items():
            counts[domains.index(name, f"{where}.token_multipliers")] *= factor
        if not counts.sum() > 0:
            raise UserError(
                f"{where}: the sampled domains have no training tokens; check `domains` and `token_multipliers`"
            )
        self.counts = counts

    def tau(self, progress: np.ndarray) -> np.ndarray:
        """tau at each progress value."""
        tau = self.config.tau
        progress = np.asarray(progress, dtype=np.float64)
        if not isinstance(tau, TauSchedule):
            return np.full(progress.shape, float(tau))
        if tau.shape == "step":
            moved = ramp(progress, tau.switch_at, tau.switch_at, "step")
        else:
            moved = ramp(progress, tau.span[0], tau.span[1], tau.shape)
        # At moved == 1 this is exactly `end` (start + 1 * (end - start) may round), so phases are exact.
        return np.where(moved >= 1.0, tau.end, tau.start + moved * (tau.end - tau.start))

    def weights(self, progress: np.ndarray) -> np.ndarray:
        return temperature_weights(self.counts, self.tau(progress))

    def phases(self) -> list[Phase]:
        tau = self.config.tau
        if not isinstance(tau, TauSchedule):
            return []
        first, last = ("tau_high", "tau_low") if tau.start > tau.end else ("tau_low", "tau_high")
        if tau.shape == "step":
            return [Phase(first, 0.0, tau.switch_at), Phase(last, tau.switch_at, 1.0)]
        lo, hi = tau.span
        phases = [Phase(first, 0.0, lo)] if lo > 0 else []
        phases.append(Phase("tau_transition", lo, hi))
        if hi < 1:
            phases.append(Phase(last, hi, 1.0))
        return phases
