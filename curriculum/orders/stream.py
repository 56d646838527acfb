"""A domain's stream: the sequences a run will actually consume from one domain, in curriculum order.

A run consumes a known number of samples ("budget" B) from a domain of N sequences. The stream
maps each stream position p in [0, B) to a local sequence index, as a pure function of
(config, scores, key, B, p), so the sampler can serve any step without replaying earlier ones.

**Which sequences** (``subset``), whenever a pass over the domain is partial (B < N, or the last
R = B mod N positions of a multi-epoch budget):

- ``random`` (default): a keyed uniform sample of the needed size, so the seen data has the
  domain's quality distribution; the ordering then orders *that sample* (an ascending
  curriculum over a third of an epoch runs from the worst to the best of the whole range).
- ``top``: the highest-scoring sequences (quality selection), then ordered.
- ``prefix``: the first positions of the ordering over the whole domain (what currimix did
  before this choice existed: an ascending order over a partial epoch sees only the worst).

**Beyond one epoch** (``past_epoch``):

- ``reshuffle``: each full pass is the ordering over the whole domain, with its random parts
  redrawn (the curriculum repeats once per pass); the partial last pass uses ``subset``.
- ``repeat``: the same, with the same order in every pass.
- ``sweep``: one ordered sweep over the whole multi-epoch budget: every sequence appears
  floor(B/N) times plus ``subset``'s choice of R once more, and the ordering orders this
  multiset, so repeats sit where their score places them. A sorted sweep puts the copies of a
  sequence next to each other (they share a score), so with E epochs a domain's slice of a batch
  holds about 1/E as many distinct sequences; `buckets` spreads them inside each bucket. A
  ``random`` ordering has no score to place repeats by: under ``sweep`` it keeps one fresh
  shuffle per pass, so "every sequence exactly once per epoch" stays true for it.
- ``stop``: plans that need more than one epoch are refused (by the plan); within one epoch it
  behaves like ``reshuffle``.

**Training time.** Orderings whose segments are placed in training time (``phased``) get a
``timeline``: the stream position where a boundary (a training fraction or a named mixer phase
edge) falls, which the plan computes from its allocation. Each pass sees the boundaries clipped to
its own positions.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import numpy as np
from pydantic import BaseModel

from curriculum.errors import UserError
from curriculum.orders.base import Boundary, Ordering, stable_rank_order
from curriculum.orders.registry import ORDERINGS, build_ordering
from curriculum.permutation import derive_key, permute

Subset = Literal["random", "top", "prefix"]
PastEpoch = Literal["reshuffle", "repeat", "sweep", "stop"]
# A sweep materialises its multiset of samples (an int64 index and a float64 score each).
MAX_SWEEP_ITEMS = 1 << 27

# Stream position of a boundary (a training fraction or "<phase>.start"/"<phase>.end").
StreamTimeline = Callable[[Boundary], int]


def choose_subset(subset: Subset, scores: np.ndarray, size: int, key: int) -> np.ndarray:
    """Local indices of the ``size`` sequences a partial pass sees (sorted ascending by index)."""
    n = len(scores)
    assert 0 <= size <= n, (size, n)
    if size == n:
        return np.arange(n, dtype=np.int64)
    if subset == "top":
        chosen = stable_rank_order(scores, True, derive_key(key, "top"))[:size]
    else:  # random: the first `size` images of a keyed permutation are a uniform sample
        chosen = permute(np.arange(size, dtype=np.int64), n, derive_key(key, "subset"))
    return np.sort(chosen)


def _sorts_by_score(config: BaseModel) -> bool:
    """Whether the ordering places sequences by score (a plain `random` shuffle does not)."""
    return getattr(config, "name", None) != "random"


class _Pass:
    """One ordered block of the stream: ``items`` (local sequence indices) in ``ordering``'s order."""

    def __init__(self, ordering: Ordering, items: np.ndarray | None, epoch_of: Callable[[int], int]):
        self.ordering = ordering
        self.items = items  # None = the identity (the whole domain)
        self.epoch_of = epoch_of

    def lookup(self, k: int, local: np.ndarray) -> np.ndarray:
        out = self.ordering.lookup(self.epoch_of(k), local)
        return out if self.items is None else self.items[out]


class DomainStream:
    """Stream position -> local sequence index for one domain; see the module docstring."""

    def __init__(
        self,
        config: BaseModel | dict[str, Any],
        scores: np.ndarray,
        key: int,
        budget: int,
        *,
        subset: Subset = "random",
        past_epoch: PastEpoch = "reshuffle",
        timeline: StreamTimeline | None = None,
    ):
        self.config = ORDERINGS.parse(config) if isinstance(config, dict) else config
        # A store's lazy score column stays lazy (memory-mapped shards, saved merged orders); a
        # subset's scores are gathered from it (O(budget)); plain arrays become float64.
        self.scores = scores if hasattr(scores, "rank_order") else np.asarray(scores, dtype=np.float64)
        self.n = len(self.scores)
        self.budget = int(budget)
        self.key = key
        self.subset = subset
        self.past_epoch = past_epoch
        self._timeline = timeline
        if self.budget and not self.n:
            raise UserError(
                f"the plan takes {self.budget} samples from a domain with no training sequences; "
                "give it weight 0 or add data"
            )
        self.full_passes, self.rest = divmod(self.budget, self.n) if self.n else (0, 0)
        epoch_of = (lambda k: 0) if past_epoch == "repeat" else (lambda k: k)
        self.sweep: _Pass | None = None
        self.full: _Pass | None = None
        self.tail: _Pass | None = None
        if not self.budget:
            return
        n = self.n
        if subset == "prefix":  # the ordering over the whole domain, consumed from its start
            whole = self._ordering(self.scores, lambda k: k * n, n, key)
            self.full, self.full_passes, self.rest = _Pass(whole, None, epoch_of), -(-self.budget // n), 0
            return
        if past_epoch == "sweep" and self.budget > n and _sorts_by_score(self.config):
            if self.budget > MAX_SWEEP_ITEMS:
                raise UserError(
                    f"curriculum.past_epoch=sweep orders all {self.budget:,} samples of a domain at once "
                    f"({self.budget / n:.0f} epochs of {n:,} sequences), more than the {MAX_SWEEP_ITEMS:,} it "
                    "holds in memory; use past_epoch: reshuffle (the curriculum repeats every pass) instead"
                )
            extra = choose_subset(subset, self.scores, self.rest, derive_key(key, "sweep-extra"))
            items = np.concatenate([np.tile(np.arange(n, dtype=np.int64), self.full_passes), extra])
            ordering = self._ordering(self.scores[items], lambda k: 0, self.budget, derive_key(key, "sweep"))
            self.sweep = _Pass(ordering, items, lambda k: 0)
            return
        if self.full_passes:
            self.full = _Pass(self._ordering(self.scores, lambda k: k * n, n, key), None, epoch_of)
        if self.rest:
            items = choose_subset(subset, self.scores, self.rest, derive_key(key, "pass", self.full_passes))
            start = self.full_passes * n
            ordering = self._ordering(self.scores[items], lambda k: start, self.rest, derive_key(key, "partial"))
            self.tail = _Pass(ordering, items, lambda k: epoch_of(self.full_passes))

    def _ordering(self, scores: np.ndarray, start_of: Callable[[int], int], size: int, key: int) -> Ordering:
        """The configured ordering over ``scores``, told where training-time boundaries fall in it:
        ``start_of(epoch)`` is the stream position where the ordering's epoch ``epoch`` begins."""
        timeline = None
        if self._timeline is not None:
            source = self._timeline

            def timeline(boundary: Boundary, epoch: int) -> int:
                return int(np.clip(source(boundary) - start_of(epoch), 0, size))

        return build_ordering(self.config, scores, key, timeline=timeline)

    def lookup(self, positions: np.ndarray) -> np.ndarray:
        """Local sequence indices at stream ``positions`` (each in [0, budget))."""
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= self.budget):
            raise IndexError(
                f"stream positions must lie in [0, {self.budget}), got {positions.min()}..{positions.max()}"
            )
        if self.sweep is not None:
            return self.sweep.lookup(0, positions)
        out = np.empty_like(positions)
        passes, local = np.divmod(positions, self.n) if self.n else (positions, positions)
        for k in np.unique(passes):  # a batch spans at most a couple of passes
            rows = passes == k
            block = self.full if k < self.full_passes else self.tail
            assert block is not None
            out[rows] = block.lookup(int(k), local[rows])
        return out

    def seen(self) -> np.ndarray:
        """Every stream position's sequence, in stream order (for reports and tests; O(budget))."""
        return self.lookup(np.arange(self.budget))
