"""Online mixture controllers: every K steps, per-domain training losses in, the next window's mixture out.

One module per controller, registered in `CONTROLLERS`; the plan (tools/train/plan.py) rounds their
weights to integer counts and the trainer feeds them losses and checkpoints their state.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from mixers.base import DomainInfo
from mixers.controllers import ado  # noqa: F401  (registers)
from mixers.controllers.base import Controller, Observation
from mixers.controllers.registry import CONTROLLERS

__all__ = ["CONTROLLERS", "Controller", "Observation", "build_controller"]


def build_controller(
    config: BaseModel | dict[str, Any], domains: DomainInfo, where: str = "mixture.controller"
) -> Controller:
    return CONTROLLERS.build(CONTROLLERS.parse(config), domains, where)
