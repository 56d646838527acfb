"""Curriculum orderings, one module each, registered by name in `ORDERINGS`.

`basic` (random, ascending, descending), `buckets` (quality buckets shuffled inside) and `phased`
(training cut into segments with their own orders). Importing this package registers them all.
`stream` applies an ordering to the samples a run actually takes from a domain: which sequences a
partial pass sees (`subset`) and what happens past an epoch (`past_epoch`).
"""

from __future__ import annotations

from curriculum.orders import basic, buckets, phased  # noqa: F401  (each import registers its orderings)
from curriculum.orders.base import Ordering, by_segment, stable_rank_order
from curriculum.orders.registry import ORDERINGS, build_ordering
from curriculum.orders.stream import DomainStream, choose_subset

__all__ = [
    "ORDERINGS",
    "DomainStream",
    "Ordering",
    "build_ordering",
    "by_segment",
    "choose_subset",
    "stable_rank_order",
]
