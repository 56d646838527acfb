"""The stateless sampler: global batch t as a pure function of (plan, seed, t).

Domain d's samples are consumed in its curriculum order: batch t takes positions
[consumed_before(t), consumed_before(t+1)) of the domain's stream (`curriculum.orders.stream`:
which sequences the run sees, in which order, and what happens past an epoch). The batch is then
shuffled with a key of (seed, t),
so every rank and micro-batch sees a mix of domains, and rank r of W takes the r-th contiguous
slice. Resuming is "start at step t": nothing is replayed or skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from curriculum.orders.stream import DomainStream
from curriculum.permutation import derive_key, permute
from tools.train.allocation import Allocation


@dataclass(frozen=True)
class GlobalBatch:
    """The sequences of one optimizer step (or one rank's slice of it)."""

    step: int
    sequence_ids: np.ndarray  # global ids into the store's train split
    domains: np.ndarray  # domain index of each sequence
    loss_weights: np.ndarray  # per-sequence loss weight (1 unless the mixture is realised by weighting)

    def __len__(self) -> int:
        return len(self.sequence_ids)

    def _rows(self, rows: slice) -> "GlobalBatch":
        return GlobalBatch(self.step, self.sequence_ids[rows], self.domains[rows], self.loss_weights[rows])

    def shard(self, rank: int, world_size: int) -> "GlobalBatch":
        """Rank ``rank``'s contiguous slice (the global batch size must divide evenly)."""
        size = len(self) // world_size
        assert size * world_size == len(self), "global batch not divisible by the number of processes"
        return self._rows(slice(rank * size, (rank + 1) * size))

    def split(self, parts: int) -> list["GlobalBatch"]:
        """Equal consecutive micro-batches."""
        size = len(self) // parts
        return [self._rows(slice(i * size, (i + 1) * size)) for i in range(parts)]


class Sampler:
    """Maps a step to its global batch using the plan's allocation and per-domain streams."""

    def __init__(
        self,
        allocation: Allocation,
        streams: list[DomainStream],
        domain_offsets: np.ndarray,
        seed: int,
        loss_weights: Callable[[int], np.ndarray] | None = None,
    ):
        self.allocation = allocation
        self.streams = streams
        self.domain_offsets = np.asarray(domain_offsets, dtype=np.int64)
        self.seed = seed
        self.loss_weights = loss_weights

    def domain_positions(self, domain: int, start: int, stop: int) -> np.ndarray:
        """Local sequence indices at stream positions [start, stop) of one domain."""
        return self.streams[domain].lookup(np.arange(start, stop, dtype=np.int64))

    def batch(self, step: int) -> GlobalBatch:
        start = self.allocation.consumed_before(step)
        stop = self.allocation.consumed_before(step + 1)
        ids, domains = [], []
        for d in np.flatnonzero(stop > start):
            ids.append(self.domain_offsets[d] + self.domain_positions(int(d), int(start[d]), int(stop[d])))
            domains.append(np.full(int(stop[d] - start[d]), d, dtype=np.int64))
        sequence_ids = np.concatenate(ids)
        domain_ids = np.concatenate(domains)
        mix = permute(np.arange(len(sequence_ids)), len(sequence_ids), derive_key(self.seed, "batch", step))
        sequence_ids, domain_ids = sequence_ids[mix], domain_ids[mix]
        if self.loss_weights is None:
            weights = np.ones(len(sequence_ids), dtype=np.float64)
        else:
            weights = self.loss_weights(step)[domain_ids]
        return GlobalBatch(step, sequence_ids, domain_ids, weights)
