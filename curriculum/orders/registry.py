"""The ordering registry (its own module so ordering modules can import it without cycles)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel

from curriculum.orders.base import Ordering, Timeline
from curriculum.registry import Registry

ORDERINGS: Registry[Ordering] = Registry("ordering")


def build_ordering(
    config: BaseModel | dict[str, Any], scores: np.ndarray, key: int, timeline: Timeline | None = None
) -> Ordering:
    """The ordering named by ``config`` over per-sequence ``scores`` (``timeline``: see `Ordering`)."""
    return ORDERINGS.build(ORDERINGS.parse(config), scores, key, timeline=timeline)
