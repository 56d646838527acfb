"""The `mixture` section: the domain-weight schedule (a registered mixer) and how the plan realises it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from curriculum.registry import StrictModel
from mixers.controllers import CONTROLLERS
from mixers.registry import MIXERS

MixerSpec = MIXERS.config_union()
ControllerSpec = CONTROLLERS.config_union()


class MixtureConfig(StrictModel):
    """The `mixture` section: the domain-weight schedule and how the plan realises it."""

    mixer: MixerSpec = Field(
        default_factory=lambda: MIXERS.parse({"name": "static"}),
        description="The domain-weight schedule w_d(t) (static, temperature, upsample, ...).",
    )
    controller: ControllerSpec | None = Field(  # type: ignore[valid-type]
        None,
        description="An online controller (e.g. {name: ado, every_steps: 50}) that sets the mixture every K "
        "steps from the per-domain training losses, starting from `mixer` as its prior; null = the mixer alone.",
    )
    realise: Literal["sample", "weight"] = Field(
        "sample",
        description="`sample`: batches follow the mixture (upsampling). `weight`: batches follow the "
        "natural (token-proportional) mix and each domain's loss is scaled by target/natural (upweighting).",
    )
    # ge=0 also refuses NaN (every comparison with NaN is false), which would otherwise disable the cap.
    max_epochs: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        description="Cap on passes over a domain, e.g. "
        "{default: 4, math: 8}; a plan that needs more is refused (or warned); `.inf` = no cap.",
    )
    on_cap: Literal["error", "warn"] = Field("error", description="What a plan over a `max_epochs` cap does.")
    resolution_steps: int = Field(
        64,
        ge=1,
        le=4096,
        description="The plan evaluates the mixer per window of "
        "this many steps (windows never straddle a phase boundary). Larger windows "
        "build faster for very long runs; resuming costs at most one window.",
    )
