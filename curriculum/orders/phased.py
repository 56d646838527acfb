"""`phased` ordering: the epoch cut into segments, each with its own order (phase-wise curricula).

    order: {name: phased, boundaries: [0.5], orders: [random, ascending]}        # uniform then ascending
    order: {name: phased, boundaries: [0.25, 0.5, 0.75], orders: [ascending, ascending, ascending, ascending]}
    order: {name: phased, boundaries: [0.8], orders: [random, ascending]}        # ascending only in the tail

Which sequences go where: the domain's sequences are split by a seeded shuffle (fixed for the run,
the same in every epoch) into consecutive segments of the epoch, segment s taking the epoch
positions [e_s, e_{s+1}) with e_s = ceil(b_s * n) (the first position at or past the boundary,
the same rounding as phase edges). Each segment is a random sample of the domain, so an
ascending segment runs over the whole quality range; its own ordering (random, ascending,
descending, buckets, with a key per segment) then orders the sequences inside it. Random parts
are redrawn every epoch; the split and the sorted parts are not.

Boundaries are fractions of *the domain's epoch*, not of training: with a constant domain weight
and one epoch over the run they coincide with training fractions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import AfterValidator, Field, ValidationError, model_validator

from curriculum.errors import UserError
from curriculum.orders.base import Ordering, by_segment
from curriculum.orders.registry import ORDERINGS, build_ordering
from curriculum.permutation import derive_key, permute
from curriculum.registry import StrictModel, validation_problems

# Positions closer than this (relative to n) to a boundary count as on it, like mixers.base.EPS.
_EPS = 1e-12


def _check_segment_order(value: str | dict[str, Any]) -> str | dict[str, Any]:
    spec = {"name": value} if isinstance(value, str) else value
    if spec.get("name") == "phased":
        raise ValueError("a segment cannot itself be `phased`; add boundaries instead")
    try:
        ORDERINGS.parse(spec)
    except ValidationError as exc:
        raise ValueError("; ".join(validation_problems(exc, spec))) from None
    except UserError as exc:
        raise ValueError(str(exc)) from None
    return value


SegmentOrder = Annotated[Union[str, dict[str, Any]], AfterValidator(_check_segment_order)]


class PhasedConfig(StrictModel):
    name: Literal["phased"] = "phased"
    boundaries: list[float] = Field(
        min_length=1,
        description="Fractions of the epoch (strictly increasing, inside (0, 1)) where a new segment starts.",
    )
    orders: list[SegmentOrder] = Field(
        min_length=2,
        description="One ordering per segment (one more than "
        "`boundaries`): a name (random, ascending, descending, buckets) or an "
        "ordering config such as {name: buckets, num_buckets: 4}.",
    )

    @model_validator(mode="after")
    def _segments(self) -> "PhasedConfig":
        b = self.boundaries
        if not all(0 < x < 1 for x in b) or any(y <= x for x, y in zip(b, b[1:])):
            raise ValueError(f"boundaries must be strictly increasing and inside (0, 1), got {b}")
        if len(self.orders) != len(b) + 1:
            raise ValueError(
                f"{len(b)} boundaries make {len(b) + 1} segments, but `orders` has {len(self.orders)} entries"
            )
        return self


def segment_edges(boundaries: list[float], n: int) -> np.ndarray:
    """Epoch positions where the segments start, plus n: e_s = ceil(b_s * n)."""
    inner = [int(np.ceil(b * n - _EPS * max(n, 1))) for b in boundaries]
    return np.array([0, *inner, n], dtype=np.int64)


@ORDERINGS.register("phased", PhasedConfig)
class PhasedOrder(Ordering):
    """A fixed seeded split of the domain into epoch segments, each ordered by its own ordering."""

    def __init__(self, config: PhasedConfig, scores: np.ndarray, key: int):
        super().__init__(config, scores, key)
        self.edges = segment_edges(config.boundaries, self.n)
        split_key = derive_key(key, "phased", "split")
        self.members: list[np.ndarray] = []
        self.segments: list[Ordering] = []
        for s, (lo, hi) in enumerate(zip(self.edges[:-1], self.edges[1:])):
            members = permute(np.arange(lo, hi), self.n, split_key)
            spec = config.orders[s]
            self.members.append(members)
            self.segments.append(
                build_ordering(
                    {"name": spec} if isinstance(spec, str) else spec,
                    self.scores[members],
                    derive_key(key, "phased", s),
                )
            )
        self.epoch_dependent = any(seg.epoch_dependent for seg in self.segments)

    def lookup(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        def segment(s: int, local: np.ndarray) -> np.ndarray:
            return self.members[s][self.segments[s].lookup(epoch, local)]

        return by_segment(positions, self.edges, segment)
