"""Curriculum orderings: the base class and the helpers shared by every ordering.

An ordering answers "which sequence sits at position p of epoch e" (`lookup`) as a pure function
of (scores, key, epoch, p), so the sampler can serve any step without replaying earlier ones.
Random-access orderings (random, buckets) never materialise a permutation; sorted ones compute
their argsort once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Optional, Union

import numpy as np
from pydantic import BaseModel

from curriculum.permutation import derive_key, permute

# A point in training time: a fraction of the run in (0, 1), or a named mixer phase edge such as
# "upsample.start" / "tau_low.end".
Boundary = Union[float, str]
# Where a boundary falls among an ordering's positions in a given epoch: an int in [0, n].
Timeline = Callable[[Boundary, int], int]


class Ordering(ABC):
    """Base class: built as ``Ordering(config, scores, key, timeline=None)`` over a set of sequences.

    ``scores`` are the per-sequence quality scores (higher = better), ``key`` a 64-bit seed unique
    to (recipe seed, domain, pass). ``timeline`` (given by the plan through `DomainStream`) says at
    which position a training-time boundary falls; orderings that place segments in training
    time (``phased``) use it. `epoch_dependent` says whether later epochs differ.
    """

    epoch_dependent: bool = False

    def __init__(self, config: BaseModel, scores: np.ndarray, key: int, timeline: Optional[Timeline] = None):
        self.config = config
        # A store's lazy score column stays lazy (memory-mapped shards); plain arrays become float64.
        self.scores = scores if hasattr(scores, "rank_order") else np.asarray(scores, dtype=np.float64)
        self.n = len(self.scores)
        self.key = key
        self.timeline = timeline

    @abstractmethod
    def lookup(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        """Local sequence indices at ``positions`` (each in [0, n)) of ``epoch``."""

    def permutation(self, epoch: int = 0) -> np.ndarray:
        """The whole order of ``epoch`` (for plotting and tests)."""
        return self.lookup(epoch, np.arange(self.n))


def stable_rank_order(scores: np.ndarray, descending: bool, key: int) -> np.ndarray:
    """Indices sorted by score; ties are broken by a keyed shuffle, not by position in the store."""
    if hasattr(scores, "rank_order"):  # a store column: its shard-aware merge, saved once, memory-mapped
        return scores.rank_order(descending, key)
    scores = np.asarray(scores, dtype=np.float64)
    primary = -scores if descending else scores
    if len(np.unique(primary)) == len(primary):  # no ties: a plain (and, on a sorted store, linear) sort
        return np.argsort(primary, kind="stable")
    tiebreak = permute(np.arange(len(scores)), len(scores), derive_key(key, "ties"))
    return np.lexsort((tiebreak, primary))


def by_segment(
    positions: np.ndarray, edges: np.ndarray, lookup_in_segment: Callable[[int, np.ndarray], np.ndarray]
) -> np.ndarray:
    """For an epoch cut into contiguous segments [edges[s], edges[s + 1]): apply
    ``lookup_in_segment(s, positions - edges[s])`` to each segment the positions fall in (a batch
    touches one or two), keeping the positions' order. Empty segments are never selected."""
    positions = np.asarray(positions, dtype=np.int64)
    segments = np.searchsorted(edges, positions, side="right") - 1
    out = np.empty_like(positions)
    for s in np.unique(segments):
        rows = segments == s
        out[rows] = lookup_in_segment(int(s), positions[rows] - edges[s])
    return out
