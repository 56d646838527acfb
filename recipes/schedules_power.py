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
from pydantic import Field

from curriculum.errors import UserError
from recipes.schedules import SCHEDULES, DecayingCurve, DecayTailConfig


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
