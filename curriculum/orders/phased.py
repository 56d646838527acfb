"""`phased` ordering: training cut into segments, each with its own order (phase-wise curricula).

    order: {name: phased, boundaries: [0.5], orders: [random, ascending]}        # uniform then ascending
    order: {name: phased, boundaries: [0.25, 0.5, 0.75], orders: [ascending, ascending, ascending, ascending]}
    order: {name: phased, boundaries: [upsample.start], orders: [random, ascending]}  # ascending in the tail

Boundaries are points in **training time**: fractions of the run's steps, or the edge of a named
mixer phase (``<phase>.start`` / ``<phase>.end``). The plan turns each into the position of the
domain's stream that the run reaches at that step (its allocation knows how many samples of the
domain come before it), so a domain whose weight changes over training still switches order
exactly at the boundary. Built without a plan (tests, plots of a bare ordering), fractions are
taken of the ordering's own positions, e_s = ceil(b_s * n), and named boundaries are refused.

Which sequences go where: the sequences are split by a seeded shuffle into consecutive segments
of the positions, segment s taking [e_s, e_{s+1}). Each segment is a random sample of the domain,
so an ascending segment runs over the whole quality range; its own ordering (random, ascending,
descending, buckets, with a key per segment) then orders the sequences inside it. Random parts
are redrawn every epoch; the split and the sorted parts are not, unless the boundaries fall at
other positions in another pass (a domain consumed over several passes sees each boundary in the
pass that contains it).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import AfterValidator, Field, ValidationError, model_validator

from curriculum.errors import UserError
from curriculum.orders.base import Boundary, Ordering, Timeline, by_segment
from curriculum.orders.registry import ORDERINGS, build_ordering
from curriculum.permutation import derive_key, permute
from curriculum.registry import StrictModel, validation_problems

# Positions closer than this (relative to n) to a boundary count as on it, like mixers.base.EPS.
_EPS = 1e-12
_PHASE_EDGE = re.compile(r"^[A-Za-z0-9_-]+\.(start|end)$")


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
    boundaries: list[Union[float, str]] = Field(
        min_length=1,
        description="Points in training time where a new segment starts: fractions of the run's steps "
        "(inside (0, 1)), or named mixer phase edges such as `upsample.start`; strictly increasing in time.",
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
        names = [x for x in b if isinstance(x, str)]
        bad = [x for x in names if not _PHASE_EDGE.match(x)]
        if bad:
            raise ValueError(f"named boundaries look like `<phase>.start` or `<phase>.end`, got {bad}")
        fractions = [x for x in b if not isinstance(x, str)]
        if not all(0 < x < 1 for x in fractions) or any(y <= x for x, y in zip(fractions, fractions[1:])):
            raise ValueError(f"boundaries must be strictly increasing and inside (0, 1), got {b}")
        if len(self.orders) != len(b) + 1:
            raise ValueError(
                f"{len(b)} boundaries make {len(b) + 1} segments, but `orders` has {len(self.orders)} entries"
            )
        return self


def segment_edges(boundaries: list[Boundary], n: int, timeline: Timeline | None = None, epoch: int = 0) -> np.ndarray:
    """Positions where the segments start, plus n: from the plan's ``timeline`` when given, else
    e_s = ceil(b_s * n) (fractions of the ordering's own positions)."""
    if timeline is not None:
        inner = [timeline(b, epoch) for b in boundaries]
        if any(y < x for x, y in zip(inner, inner[1:])):
            raise UserError(f"phased boundaries {boundaries} are not in training-time order")
    else:
        named = [b for b in boundaries if isinstance(b, str)]
        if named:
            raise UserError(f"phased boundaries {named} name mixer phases, which only a plan can place")
        inner = [int(np.ceil(float(b) * n - _EPS * max(n, 1))) for b in boundaries]
    return np.array([0, *inner, n], dtype=np.int64)


@ORDERINGS.register("phased", PhasedConfig)
class PhasedOrder(Ordering):
    """A seeded split of the positions into training-time segments, each ordered by its own ordering."""

    def __init__(self, config: PhasedConfig, scores: np.ndarray, key: int, timeline: Timeline | None = None):
        super().__init__(config, scores, key, timeline)
        self.edges = segment_edges(config.boundaries, self.n, timeline, 0)
        self._segments = lru_cache(maxsize=8)(self._build_segments)
        members, segments = self._segments(tuple(self.edges.tolist()))
        self.epoch_dependent = timeline is not None or any(seg.epoch_dependent for seg in segments)

    def _build_segments(self, edges: tuple[int, ...]) -> tuple[list[np.ndarray], list[Ordering]]:
        split_key = derive_key(self.key, "phased", "split")
        members_list: list[np.ndarray] = []
        segments: list[Ordering] = []
        for s, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            members = permute(np.arange(lo, hi, dtype=np.int64), self.n, split_key)
            spec = self.config.orders[s]
            members_list.append(members)
            segments.append(
                build_ordering(
                    {"name": spec} if isinstance(spec, str) else spec,
                    self.scores[members],
                    derive_key(self.key, "phased", s),
                )
            )
        return members_list, segments

    def edges_at(self, epoch: int) -> np.ndarray:
        """Segment starts (plus n) in ``epoch``; without a timeline the same in every epoch."""
        return (
            self.edges if self.timeline is None else segment_edges(self.config.boundaries, self.n, self.timeline, epoch)
        )

    def lookup(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        edges = self.edges_at(epoch)
        members, segments = self._segments(tuple(edges.tolist()))

        def segment(s: int, local: np.ndarray) -> np.ndarray:
            return members[s][segments[s].lookup(epoch, local)]

        return by_segment(positions, edges, segment)
