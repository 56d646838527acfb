"""Mixers: how much of each domain each step sees. One module per mixer, registered in `MIXERS`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from mixers import interpolate, staged, static, temperature, upsample  # noqa: F401  (registers)
from mixers.base import DomainInfo, Mixer, Phase
from mixers.registry import MIXERS

__all__ = ["MIXERS", "DomainInfo", "Mixer", "Phase", "build_mixer"]


def build_mixer(config: BaseModel | dict[str, Any], domains: DomainInfo, where: str = "mixture") -> Mixer:
    return MIXERS.build(MIXERS.parse(config), domains, where)
