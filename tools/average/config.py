"""The `averaging` section: where a run takes its K weights-only snapshots and how they are weighted
(the presets of `tools.average.weights`, shared with `currimix average`)."""

from __future__ import annotations

from pydantic import Field, model_validator

from curriculum.registry import StrictModel
from tools.average.weights import WEIGHTINGS, EMAWeights

WeightSpec = WEIGHTINGS.config_union()


class AveragingConfig(StrictModel):
    """The `averaging` section: where the K weights-only snapshots are taken and how they are weighted."""

    snapshots: int | None = Field(None, ge=1, description="K weights-only snapshots to average; None = off.")
    every_steps: int | None = Field(
        None, ge=1, description="Spacing S between snapshots; None spreads them evenly over `over_phase`."
    )
    end_at: str = Field(
        "end",
        description="Where the window ends: `end` (last step), or `<phase>.start` / "
        "`<phase>.end` for a named data phase.",
    )
    over_phase: str | None = Field(
        None, description="Spread the K snapshots evenly over this phase (instead of `every_steps`)."
    )
    weights: WeightSpec = Field(
        default_factory=lambda: EMAWeights(alpha=0.2),
        description="How the snapshots are weighted, oldest first: {name: ema, alpha: 0.2} (w_i ~ "
        "(1-alpha)^(K-i), newest heaviest; `form: recursive` for the recursion), {name: sma}, {name: wma}, "
        "{name: wsm, decay_shape: linear, final_lr_ratio: 0} (a merge emulating a decay) or "
        "{name: explicit, values: [...]}; the same presets as `currimix average` (tools/average/weights.py).",
    )

    @model_validator(mode="after")
    def _window(self) -> "AveragingConfig":
        if self.snapshots is None:
            return self
        values = getattr(self.weights, "values", None)
        if values is not None and len(values) != self.snapshots:
            raise ValueError(
                f"weights.values has {len(values)} entries for {self.snapshots} snapshots (one per snapshot)"
            )
        if self.snapshots > 1 and self.every_steps is None and self.over_phase is None:
            raise ValueError("give `every_steps` or `over_phase` to place more than one snapshot")
        return self
