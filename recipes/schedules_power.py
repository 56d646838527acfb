"""Power-law LR schedules: `power` (the Power scheduler) and `inverse_sqrt`, each with an optional final decay.

`power` (Shen et al. 2024, "Power Scheduler: A Batch Size and Token Number Agnostic Learning Rate
Scheduler"): the optimal constant LR of a WSD run falls as a power of the tokens trained,
lr_opt ~ beta * a * n^b with beta the batch size and b about -0.51. The scheduler follows that law
during training instead of a fixed horizon:

    lr(t) = min(peak_lr, a * n(t)^b),   n(t) = (t + 1) * tokens_per_step   (unit: tokens)
                                        n(t) = t + 1                       (unit: steps)

``a`` is the whole coefficient (the paper's beta * a: multiply in the batch size yourself), and
``peak_lr`` is the cap eta_max. Warmup rises linearly to the law's value at the end of warmup
(lr(W-1) = min(peak, a * n(W-1)^b)), so there is no jump.

`inverse_sqrt`: lr(t) = peak_lr * sqrt(tau / max(t, tau)) after warmup, tau = ``timescale_steps``
(default: the warmup length), the Transformer / T5 "rsqrt" schedule.

Neither needs the run length, which makes them natural for continued training; both can end with a
WSD-style decay (``decay_fraction`` of the last steps, or exactly over a data phase such as the
upsampling tail with ``decay_phase``) from the curve's value where the decay starts to exactly
``peak_lr * final_lr_ratio`` on the decay's last step. Without a decay, `final_lr_ratio` is not used.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from curriculum.errors import UserError
from recipes.schedules import SCHEDULES, DecayShape, Schedule, ScheduleBase, decay_curve


class _DecayTail(ScheduleBase):
    decay_fraction: float | None = Field(
        None,
        gt=0,
        le=1,
        description="End with a decay over this last fraction "
        "of steps (e.g. 0.1); None (and no `decay_phase`) = no final decay.",
    )
    decay_phase: str | None = Field(
        None,
        description="End with a decay exactly over this data phase (e.g. "
        "`upsample`); the LR stays at the final value after it.",
    )
    decay_shape: DecayShape = Field("1-sqrt", description="Shape of the final decay: linear, cosine or 1-sqrt.")

    @model_validator(mode="after")
    def _decay_spec(self) -> "_DecayTail":
        if self.decay_fraction is not None and self.decay_phase is not None:
            raise ValueError("give at most one of `decay_fraction` and `decay_phase`")
        if self.decay_fraction is None and self.decay_phase is None and "final_lr_ratio" in self.model_fields_set:
            raise ValueError("`final_lr_ratio` only applies to a final decay; set `decay_fraction` or `decay_phase`")
        return self


class _DecayingCurve(Schedule):
    """A curve c(t) <= 1 for t >= warmup, then optionally a decay from c(start) to the final ratio."""

    def __init__(self, config: _DecayTail, total_steps: int, phases: dict[str, tuple[int, int]], **kwargs: Any):
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

    def curve(self, steps: np.ndarray) -> np.ndarray:
        """LR / peak of the undecayed curve."""
        raise NotImplementedError

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


class PowerConfig(_DecayTail):
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
class Power(_DecayingCurve):
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


class InverseSqrtConfig(_DecayTail):
    name: Literal["inverse_sqrt"] = "inverse_sqrt"
    timescale_steps: int | None = Field(
        None,
        ge=1,
        description="tau in peak * sqrt(tau / max(step, tau)): the LR "
        "holds the peak until step tau; None = warmup_steps (at least 1).",
    )


@SCHEDULES.register("inverse_sqrt", InverseSqrtConfig)
class InverseSqrt(_DecayingCurve):
    """peak * sqrt(tau / max(step, tau)), optional final decay (a cooldown)."""

    def __init__(self, config: InverseSqrtConfig, total_steps: int, phases: dict[str, tuple[int, int]], **kwargs: Any):
        self.timescale = config.timescale_steps or max(config.warmup_steps, 1)
        super().__init__(config, total_steps, phases, **kwargs)

    def curve(self, steps: np.ndarray) -> np.ndarray:
        steps = np.asarray(steps, dtype=np.float64)
        return np.sqrt(self.timescale / np.maximum(steps, self.timescale))
