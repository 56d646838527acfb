"""The bounds every online mixture controller takes (`mixture.controller`), beside the code that uses them.

A controller's own config (e.g. `AdoConfig`) subclasses `ControllerConfig` and adds its parameters;
the registry turns the subclasses into the `mixture.controller` union (`mixers/config.py`). The
prior is the recipe's `mixture.mixer`: the first window follows it, and controllers that want one
(ADO's mu) read it at every update.
"""

from __future__ import annotations

from pydantic import Field

from curriculum.registry import StrictModel


class ControllerConfig(StrictModel):
    """Cadence and bounds shared by every controller."""

    every_steps: int = Field(
        50,
        ge=1,
        le=100_000,
        description="Update cadence K: the controller reads the per-domain training losses of the last K "
        "steps and sets the integer per-domain counts of the next K steps.",
    )
    warmup_steps: int = Field(
        0,
        ge=0,
        description="Steps before the first update (rounded up to a multiple of every_steps): the prior "
        "mixture runs alone while the losses are still dominated by the start of training.",
    )
    floor: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Least weight any domain gets after an update (floor x number of domains must be <= 1).",
    )
    max_change: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Largest change of any domain's weight from one update to the next (absolute); null = no limit.",
    )
