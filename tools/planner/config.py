"""The schedule planner's settings: how the loss-curve laws are fitted and which schedules are candidates.

`PlannerConfig` is what `currimix schedule` builds from its options (or reads from `--config FILE`);
each law (`multi_power`, `annealing_area`) has its own config, registered with the law in
`tools.planner.laws`. Every grid value is validated here, so a bad one is a message naming the key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from curriculum.registry import StrictModel


class FitConfig(StrictModel):
    """How a law is fitted to loss curves (shared by both laws)."""

    min_curves: int = Field(2, ge=1, description="Fewest curves a fit accepts (the paper fits three).")
    min_points: int = Field(8, ge=3, description="Fewest observations a curve must keep after `skip_fraction`.")
    skip_fraction: float = Field(
        0.1,
        ge=0,
        lt=0.9,
        description="Leave out observations in the first fraction of each run (and always the warmup): "
        "the laws model the power-law phase, not the first transient.",
    )
    huber_delta: float = Field(
        1e-3, gt=0, description="Huber threshold on log-loss residuals (the paper's 1e-3: near-L1, robust to spikes)."
    )
    adam_iterations: int = Field(150, ge=0, le=100_000, description="Adam steps from each start.")
    lbfgs_iterations: int = Field(200, ge=0, le=100_000, description="L-BFGS steps after Adam, from the best start.")
    starts: int = Field(8, ge=1, le=256, description="Starting points tried (a small grid around the data's scale).")
    max_lr_changes: int = Field(
        4096,
        ge=64,
        le=1_000_000,
        description="Cap on the LR changes a curve's decay terms sum over; a longer decay's consecutive changes "
        "are merged into this many blocks (a 24k-step cosine: 6 steps per block).",
    )


class CandidateGrid(StrictModel):
    """The schedules `currimix schedule` ranks, all at the fitted runs' peak LR and warmup."""

    wsd_decay_fractions: list[float] = Field(
        [0.1, 0.2, 0.3, 0.5], description="WSD decay lengths as fractions of the run."
    )
    wsd_shapes: list[Literal["linear", "cosine", "1-sqrt"]] = Field(
        ["linear", "cosine", "1-sqrt"], description="WSD decay shapes."
    )
    final_lr_ratios: list[float] = Field(
        [0.0, 0.1, 0.33], description="Final LR / peak for every decaying candidate (~0.33 = the curriculum paper's)."
    )
    cosine: bool = Field(True, description="Include cosine decay (with each final ratio).")
    constant: bool = Field(True, description="Include the constant LR without averaging.")
    averaging_fractions: list[float] = Field(
        [0.1, 0.2, 0.3],
        description="Constant LR + checkpoint merging over this last fraction of the run (WSM weights "
        "emulating a linear decay to 0; predicted through the decay the merge is equivalent to).",
    )

    @model_validator(mode="after")
    def _ranges(self) -> "CandidateGrid":
        for key in ("wsd_decay_fractions", "averaging_fractions"):
            bad = [v for v in getattr(self, key) if not 0 < v <= 1]
            if bad:
                raise ValueError(f"{key}: {bad} must lie in (0, 1]")
        bad = [v for v in self.final_lr_ratios if not 0 <= v <= 1]
        if bad:
            raise ValueError(f"final_lr_ratios: {bad} must lie in [0, 1]")
        return self


class MultiPowerConfig(StrictModel):
    """The multi-power law (Luo et al. 2025, arXiv 2503.12811)."""

    name: Literal["multi_power"] = "multi_power"


class AnnealingAreaConfig(StrictModel):
    """The annealing-area law L = L0 + A*S1^-alpha - C*S2 (Tissue et al. 2024, arXiv 2408.11029)."""

    name: Literal["annealing_area"] = "annealing_area"
    decay_factor: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="lambda of the annealing momentum (the paper: 0.999 for runs of tens of thousands of "
        "steps); None fits it (bounded to a timescale of 1 step .. 10x the longest run).",
    )


class PlannerConfig(StrictModel):
    """Everything `currimix schedule` needs besides the run folders."""

    metric: str = Field("loss", description="Which logged metric to fit: `loss` (training) or a `val/...` key.")
    target_steps: int | None = Field(None, ge=2, description="Steps of the planned run; None = the longest fitted run.")
    fit: FitConfig = Field(default_factory=FitConfig)
    candidates: CandidateGrid = Field(default_factory=CandidateGrid)
    leave_one_out: bool = Field(
        True, description="Refit each law without each curve in turn; the spread of predictions is the uncertainty."
    )
