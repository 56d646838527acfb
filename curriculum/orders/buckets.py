"""`buckets` ordering: quality buckets in ascending (or descending) order, shuffled inside each bucket.

The domain's sequences are ranked by score (ties broken by a keyed shuffle, as for `ascending`) and
cut into ``num_buckets`` equal-count buckets, i.e. score quantiles: bucket b holds ranks
[b*n // k, (b+1)*n // k). Epoch positions walk the buckets in order, and inside each bucket the
sequences come in a keyed shuffle that is redrawn every epoch. This keeps the coarse
low-to-high-quality curriculum of an ascending order while avoiding long runs of near-identical
scores (and the exact same order every epoch). One bucket is a plain seeded shuffle; n buckets
is `ascending`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from curriculum.orders.base import Ordering, Timeline, by_segment, stable_rank_order
from curriculum.orders.registry import ORDERINGS
from curriculum.permutation import derive_key, permute
from curriculum.registry import StrictModel


class BucketsConfig(StrictModel):
    name: Literal["buckets"] = "buckets"
    num_buckets: int = Field(
        10,
        ge=1,
        le=1_000_000,
        description="Equal-count quality buckets (score quantiles); more buckets than sequences leaves some empty.",
    )
    order: Literal["ascending", "descending"] = Field(
        "ascending", description="Bucket order: lowest quality first (ascending) or best first (descending)."
    )


@ORDERINGS.register("buckets", BucketsConfig)
class BucketOrder(Ordering):
    """Buckets in score order; a fresh keyed shuffle inside each bucket every epoch (random access)."""

    epoch_dependent = True

    def __init__(self, config: BucketsConfig, scores: np.ndarray, key: int, timeline: Timeline | None = None):
        super().__init__(config, scores, key, timeline)
        self._ranked = stable_rank_order(self.scores, config.order == "descending", key)
        self.edges = np.arange(config.num_buckets + 1, dtype=np.int64) * self.n // config.num_buckets

    def lookup(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        def shuffled_bucket(b: int, local: np.ndarray) -> np.ndarray:
            size = int(self.edges[b + 1] - self.edges[b])
            return self.edges[b] + permute(local, size, derive_key(self.key, "buckets", epoch, b))

        return self._ranked[by_segment(positions, self.edges, shuffled_bucket)]
