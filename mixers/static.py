"""`static` mixer: the same domain weights for the whole run."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from curriculum.registry import StrictModel
from mixers.base import DomainInfo, Mixer, check_distribution
from mixers.registry import MIXERS


class StaticConfig(StrictModel):
    name: Literal["static"] = "static"
    weights: dict[str, float] | Literal["natural", "uniform"] = Field(
        "natural",
        description="{domain: weight} summing to 1 (unlisted domains get 0), or `natural` "
        "(proportional to each domain's tokens) or `uniform`.",
    )
    normalize: bool = Field(False, description="Divide the weights by their sum instead of requiring sum 1.")


def resolve_weights(spec: dict[str, float] | str, normalize: bool, domains: DomainInfo, where: str) -> np.ndarray:
    """A distribution vector from a weight spec shared by several mixers (`natural`, `uniform` or a dict)."""
    if spec == "natural":
        vector = domains.tokens.astype(np.float64)
        return vector / vector.sum()
    if spec == "uniform":
        return np.full(len(domains.names), 1.0 / len(domains.names))
    vector = domains.vector(spec, where)
    if normalize and vector.sum() > 0:
        vector = vector / vector.sum()
    return check_distribution(vector, where, domains.names)


@MIXERS.register("static", StaticConfig)
class StaticMixer(Mixer):
    def __init__(self, config: StaticConfig, domains: DomainInfo, where: str = "mixture"):
        super().__init__(config, domains, where)
        self.vector = resolve_weights(config.weights, config.normalize, domains, where)

    def weights(self, progress: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.vector, (len(progress), len(self.vector))).copy()
