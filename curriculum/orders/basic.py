"""The three plain orderings: `random` (a keyed shuffle per epoch), `ascending`, `descending`."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel

from curriculum.orders.base import Ordering, Timeline, stable_rank_order
from curriculum.orders.registry import ORDERINGS
from curriculum.permutation import derive_key, permute
from curriculum.registry import StrictModel


class RandomOrderConfig(StrictModel):
    name: Literal["random"] = "random"


@ORDERINGS.register("random", RandomOrderConfig)
class RandomOrder(Ordering):
    """A seeded shuffle, different in every epoch."""

    epoch_dependent = True

    def lookup(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        return permute(positions, self.n, derive_key(self.key, "random", epoch))


class _SortedOrder(Ordering):
    descending = False

    def __init__(self, config: BaseModel, scores: np.ndarray, key: int, timeline: Timeline | None = None):
        super().__init__(config, scores, key, timeline)
        self._order = stable_rank_order(self.scores, self.descending, key)

    def lookup(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        return self._order[positions]


class AscendingConfig(StrictModel):
    name: Literal["ascending"] = "ascending"


class DescendingConfig(StrictModel):
    name: Literal["descending"] = "descending"


@ORDERINGS.register("ascending", AscendingConfig)
class AscendingOrder(_SortedOrder):
    """Lowest quality first, best data last (the curriculum of the research this rests on)."""


@ORDERINGS.register("descending", DescendingConfig)
class DescendingOrder(_SortedOrder):
    """Best data first."""

    descending = True
