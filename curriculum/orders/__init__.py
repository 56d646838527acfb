"""Curriculum orderings, one module each, registered by name in `ORDERINGS`.

`basic` (random, ascending, descending), `buckets` (quality buckets shuffled inside) and `phased`
(the epoch cut into segments with their own orders). Importing this package registers them all.
"""

from __future__ import annotations

from curriculum.orders import basic, buckets, phased  # noqa: F401  (each import registers its orderings)
from curriculum.orders.base import Ordering, by_segment, stable_rank_order
from curriculum.orders.registry import ORDERINGS, build_ordering

__all__ = ["ORDERINGS", "Ordering", "build_ordering", "by_segment", "stable_rank_order"]
