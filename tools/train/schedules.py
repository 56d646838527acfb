"""Learning-rate schedules: LR(step) as a pure, vectorised function of the step.

Every schedule warms up linearly over ``warmup_steps`` (step t < W gets peak * (t+1)/W) and, where
it decays, reaches exactly ``peak_lr * final_lr_ratio`` on its last decay step. A "moderate decay"
is any decaying schedule with a final ratio around 1/3. WSD, power and inverse-sqrt can place their
decay over a named data phase (e.g. the upsampling tail) instead of a step count.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from curriculum.errors import UserError
from curriculum.registry import Registry, StrictModel


class ScheduleBase(StrictModel):
    peak_lr: float = Field(3e-4, gt=0, le=10, description="Learning rate after warmup (the maximum).")
    warmup_steps: int = Field(0, ge=0, description="Linear warmup from peak/W to peak over this many steps.")
    final_lr_ratio: float = Field(
        0.1,
        ge=0,
        le=1,
        description="LR on the last step as a fraction of peak "
        "(0 = decay to zero; ~0.33 = the 'moderate decay' that keeps a curriculum's gain).",
    )


class Schedule(ABC):
    """Base class: ``Schedule(config, total_steps, phases)``; ``phases`` maps names to step ranges."""

    def __init__(
        self,
        config: ScheduleBase,
        total_steps: int,
        phases: dict[str, tuple[int, int]],
        tokens_per_step: int | None = None,
    ):
        self.config = config
        self.total_steps = total_steps
        self.phases = phases
        self.tokens_per_step = tokens_per_step  # global batch x seq_len; only token-based schedules need it
        if config.warmup_steps >= total_steps:
            raise UserError(f"schedule.warmup_steps={config.warmup_steps} must be below training.steps={total_steps}")

    def lr(self, steps: np.ndarray | int) -> np.ndarray:
        """Absolute learning rate at ``steps`` (array or scalar)."""
        steps = np.asarray(steps, dtype=np.int64)
        warm = self.config.warmup_steps
        factor = self.after_warmup(np.maximum(steps, warm))
        if warm:
            factor = np.where(steps < warm, (steps + 1) / warm * self.warmup_target(), factor)
        return self.config.peak_lr * factor

    def warmup_target(self) -> float:
        """LR / peak reached on the last warmup step (1 unless the schedule starts below its peak)."""
        return 1.0

    @abstractmethod
    def after_warmup(self, steps: np.ndarray) -> np.ndarray:
        """LR / peak for steps >= warmup_steps."""

    def decay_progress(self, steps: np.ndarray, start: int, stop: int) -> np.ndarray:
        """0 before ``start``, rising to exactly 1 on step ``stop - 1``, 1 afterwards."""
        length = max(stop - start, 1)
        return np.clip((steps - start + 1) / length, 0.0, 1.0)

    def decay_window(self, fraction: float | None, phase: str | None) -> tuple[int, int]:
        """Steps [start, stop) of a decay over the last ``fraction`` of steps or over the data ``phase``."""
        if phase is not None:
            if phase not in self.phases:
                raise UserError(
                    f"schedule.decay_phase={phase!r} is not a phase of this plan; "
                    f"phases: {sorted(self.phases) or 'none (the mixer defines no phases)'}"
                )
            start, stop = self.phases[phase]
        else:
            assert fraction is not None
            stop = self.total_steps
            start = self.total_steps - int(round(fraction * self.total_steps))
        if start < self.config.warmup_steps:
            raise UserError(
                f"schedule: the decay starts at step {start}, inside the warmup ({self.config.warmup_steps} steps)"
            )
        return start, stop


SCHEDULES: Registry[Schedule] = Registry("LR schedule")

DecayShape = Literal["linear", "cosine", "1-sqrt"]


def decay_curve(progress: np.ndarray, shape: str, final: float) -> np.ndarray:
    """LR / peak along a decay, from 1 at progress 0 to exactly ``final`` at progress 1."""
    if shape == "linear":
        curve = 1.0 - (1.0 - final) * progress
    elif shape == "cosine":
        curve = final + (1.0 - final) * 0.5 * (1.0 + np.cos(np.pi * progress))
    elif shape == "1-sqrt":
        curve = 1.0 - (1.0 - final) * np.sqrt(progress)
    else:
        raise AssertionError(shape)  # guarded by the Literal type
    return np.where(progress >= 1.0, final, curve)  # 1 - (1 - r) is not always r in floating point


class ConstantConfig(ScheduleBase):
    name: Literal["constant"] = "constant"
    final_lr_ratio: float = Field(1.0, ge=1, le=1, description="Always 1 for a constant schedule.")


@SCHEDULES.register("constant", ConstantConfig)
class Constant(Schedule):
    """Warmup, then the peak LR to the end (pair with checkpoint averaging: CMA)."""

    def after_warmup(self, steps: np.ndarray) -> np.ndarray:
        return np.ones(steps.shape)


class CosineConfig(ScheduleBase):
    name: Literal["cosine"] = "cosine"


@SCHEDULES.register("cosine", CosineConfig)
class Cosine(Schedule):
    """Cosine decay from the end of warmup to the last step."""

    def after_warmup(self, steps: np.ndarray) -> np.ndarray:
        q = self.decay_progress(steps, self.config.warmup_steps, self.total_steps)
        return decay_curve(q, "cosine", self.config.final_lr_ratio)


class LinearConfig(ScheduleBase):
    name: Literal["linear"] = "linear"


@SCHEDULES.register("linear", LinearConfig)
class Linear(Schedule):
    """Linear decay from the end of warmup to the last step."""

    def after_warmup(self, steps: np.ndarray) -> np.ndarray:
        q = self.decay_progress(steps, self.config.warmup_steps, self.total_steps)
        return decay_curve(q, "linear", self.config.final_lr_ratio)


class DecayTailConfig(ScheduleBase):
    """Fields of schedules that end with a decay over the last steps or over a named data phase."""

    decay_fraction: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Decay over this last fraction of steps (e.g. 0.2); give at most one of this and "
        "`decay_phase` (wsd needs one of them).",
    )
    decay_phase: str | None = Field(
        None,
        description="Decay exactly over this data phase (e.g. `upsample` "
        "for the upsampling tail); LR stays at the final value after it.",
    )
    decay_shape: DecayShape = Field("1-sqrt", description="Shape of the decay: linear, cosine or 1-sqrt.")

    @model_validator(mode="after")
    def _decay_spec(self) -> "DecayTailConfig":
        if self.decay_fraction is not None and self.decay_phase is not None:
            raise ValueError("give at most one of `decay_fraction` and `decay_phase`")
        if self.decay_fraction is None and self.decay_phase is None and "final_lr_ratio" in self.model_fields_set:
            raise ValueError("`final_lr_ratio` only applies to a final decay; set `decay_fraction` or `decay_phase`")
        return self


class DecayingCurve(Schedule):
    """A curve c(t) <= 1 after warmup, then optionally a decay from c(start) to exactly the final ratio."""

    def __init__(self, config: DecayTailConfig, total_steps: int, phases: dict[str, tuple[int, int]], **kwargs: Any):
        super().__init__(config, total_steps, phases, **kwargs)
        self.window: tuple[int, int] | None = None
        if config.decay_fraction is not None or config.decay_phase is not None:
            self.window = self.decay_window(config.decay_fraction, config.decay_phase)
            start = self.window[0]
            self.decay_from = float(self.curve(np.array([start]))[0])
            if config.final_lr_ratio > self.decay_from:
                raise UserError(
                    f"schedule.final_lr_ratio={config.final_lr_ratio:g} is above the LR where the decay "
                    f"starts ({self.decay_from:.4g} x peak at step {start}); lower it, or start the decay "
                    "earlier"
                )

    @abstractmethod
    def curve(self, steps: np.ndarray) -> np.ndarray:
        """LR / peak of the undecayed curve."""

    def after_warmup(self, steps: np.ndarray) -> np.ndarray:
        steps = np.asarray(steps, dtype=np.int64)
        factor = self.curve(steps)
        if self.window is None:
            return factor
        start, stop = self.window
        q = self.decay_progress(steps, start, stop)
        final = self.config.final_lr_ratio
        decayed = self.decay_from * decay_curve(q, self.config.decay_shape, final / self.decay_from)
        decayed = np.where(q >= 1.0, final, decayed)  # exact on the last decay step, whatever the rounding
        return np.where(steps >= start, decayed, factor)


class WSDConfig(DecayTailConfig):
    name: Literal["wsd"] = "wsd"

    @model_validator(mode="after")
    def _one_decay_spec(self) -> "WSDConfig":
        if (self.decay_fraction is None) == (self.decay_phase is None):
            raise ValueError("give exactly one of `decay_fraction` and `decay_phase`")
        return self


@SCHEDULES.register("wsd", WSDConfig)
class WSD(DecayingCurve):
    """Warmup-stable-decay: peak LR until the decay window, then a short decay to the final LR."""

    def curve(self, steps: np.ndarray) -> np.ndarray:
        return np.ones(np.shape(steps))


# ---------------------------------------------------------------- power-law schedules
# Power-law LR schedules: `power` (the Power scheduler) and `inverse_sqrt`, each with an optional final decay.
#
# `power` (Shen et al. 2024, "Power Scheduler: A Batch Size and Token Number Agnostic Learning Rate
# Scheduler"): the optimal constant LR of a WSD run falls as a power of the tokens trained,
# lr_opt ~ beta * a * n^b with beta the batch size and b about -0.51. The scheduler follows that law
# during training instead of a fixed horizon:
#
#     lr(t) = min(peak_lr, a * n(t)^b),   n(t) = (t + 1) * tokens_per_step   (unit: tokens)
#                                         n(t) = t + 1                       (unit: steps)
#
# ``a`` is the whole coefficient (the paper's beta * a: multiply in the batch size yourself), and
# ``peak_lr`` is the cap eta_max. Warmup rises linearly to the law's value at the end of warmup
# (lr(W-1) = min(peak, a * n(W-1)^b)), so there is no jump.
#
# `inverse_sqrt`: lr(t) = peak_lr * sqrt(tau / max(t, tau)) after warmup, tau = ``timescale_steps``
# (default: the warmup length), the Transformer / T5 "rsqrt" schedule.
#
# Neither needs the run length, which makes them natural for continued training; both can end with a
# WSD-style decay (``decay_fraction`` of the last steps, or exactly over a data phase such as the
# upsampling tail with ``decay_phase``) from the curve's value where the decay starts to exactly
# ``peak_lr * final_lr_ratio`` on the decay's last step. Without a decay, `final_lr_ratio` is not used.


class PowerConfig(DecayTailConfig):
    name: Literal["power"] = "power"
    a: float = Field(
        gt=0,
        description="Coefficient of lr = min(peak_lr, a * n^b): the paper's beta * a (beta = "
        "batch size), in the units of `unit`.",
    )
    b: float = Field(-0.51, ge=-1, lt=0, description="Power-law exponent (the paper's fit: -0.51).")
    unit: Literal["tokens", "steps"] = Field(
        "tokens",
        description="What n counts: tokens trained (global batch x "
        "seq_len per step, as in the paper) or optimizer steps.",
    )


@SCHEDULES.register("power", PowerConfig)
class Power(DecayingCurve):
    """min(peak, a * n^b) in tokens or steps, optional final decay (Power scheduler)."""

    def __init__(
        self,
        config: PowerConfig,
        total_steps: int,
        phases: dict[str, tuple[int, int]],
        tokens_per_step: int | None = None,
    ):
        if config.unit == "tokens" and not tokens_per_step:
            raise UserError(
                "schedule.unit=tokens needs the tokens per step (global batch x seq_len) from the plan; "
                "build the schedule with `tokens_per_step`, or set `unit: steps`"
            )
        self.per_step = tokens_per_step if config.unit == "tokens" else 1
        super().__init__(config, total_steps, phases, tokens_per_step=tokens_per_step)

    def curve(self, steps: np.ndarray) -> np.ndarray:
        n = (np.asarray(steps, dtype=np.float64) + 1.0) * self.per_step
        return np.minimum(1.0, self.config.a * n**self.config.b / self.config.peak_lr)

    def warmup_target(self) -> float:
        return float(self.curve(np.array([self.config.warmup_steps - 1]))[0])


class InverseSqrtConfig(DecayTailConfig):
    name: Literal["inverse_sqrt"] = "inverse_sqrt"
    timescale_steps: int | None = Field(
        None,
        ge=1,
        description="tau in peak * sqrt(tau / max(step, tau)): the LR "
        "holds the peak until step tau; None = warmup_steps (at least 1).",
    )


@SCHEDULES.register("inverse_sqrt", InverseSqrtConfig)
class InverseSqrt(DecayingCurve):
    """peak * sqrt(tau / max(step, tau)), optional final decay (a cooldown)."""

    def __init__(self, config: InverseSqrtConfig, total_steps: int, phases: dict[str, tuple[int, int]], **kwargs: Any):
        self.timescale = config.timescale_steps or max(config.warmup_steps, 1)
        super().__init__(config, total_steps, phases, **kwargs)

    def curve(self, steps: np.ndarray) -> np.ndarray:
        steps = np.asarray(steps, dtype=np.float64)
        return np.sqrt(self.timescale / np.maximum(steps, self.timescale))


def build_schedule(
    config: BaseModel | dict[str, Any],
    total_steps: int,
    phases: dict[str, tuple[int, int]] | None = None,
    tokens_per_step: int | None = None,
) -> Schedule:
    """The schedule of ``config``; ``tokens_per_step`` (global batch x seq_len) feeds token-based schedules."""
    return SCHEDULES.build(SCHEDULES.parse(config), total_steps, phases or {}, tokens_per_step=tokens_per_step)
