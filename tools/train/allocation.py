"""Integer per-domain counts for every global batch, never more than one sample off target.

The problem: given cumulative targets T_d(t) = sum over steps s <= t of B * w_d(s), choose integer
counts c_d(t) >= 0 with sum_d c_d(t) = B such that every cumulative count C_d(t) stays strictly
within one sample of T_d(t). Rounding each step (or the cumulative target) fails: the error drifts,
or a count goes negative when weights change. Seen as scheduling, domain d's j-th sample is a unit
job released once T_d > j - 1 and due once T_d >= j, and each step has B slots; earliest-deadline-first
meets every deadline whenever any schedule can, and one always can (Tijdeman's chairman-assignment
theorem), so EDF with the known future targets keeps |C_d - T_d| < 1 for any weight schedule.

Two levels keep it fast for any run length:

* **Windows** of at most ``resolution`` steps (never straddling a phase boundary) get integer
  per-domain totals by EDF over the windows' exact cumulative targets, so at every window edge the
  counts are within one sample of the mixer's exact integral.
* **Within a window** the plan's target rate is constant (the window total spread evenly), the
  window's start and end targets are integers, and EDF in exact integer arithmetic spreads the total
  over the steps. Any step's counts cost at most one window of work, whatever the step number.

Under an online controller (`ControlledAllocation`) the windows are its update cadence and each
window's integer totals are *decided* while training runs: the controller's float64 weights are
rounded to counts by largest remainders (`round_counts`), then spread over the window's steps as
above. Until a window is decided it holds the prior's counts (what `currimix plan` shows).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from functools import lru_cache
from typing import Callable

import numpy as np

from mixers.controllers.rounding import round_counts

__all__ = ["Allocation", "ControlledAllocation", "edf_window_counts", "round_counts"]

# Targets within this distance of an integer are that integer (float sums of weights are inexact).
SNAP = 1e-9


def snap_integers(values: np.ndarray) -> np.ndarray:
    nearest = np.round(values)
    return np.where(np.abs(values - nearest) < SNAP, nearest, values)


def earliest_deadline_first(
    lower_rows: list[list[int]],
    upper_rows: list[list[int]],
    closeness_rows: list[list[float]],
    slots: list[int],
    deadline: Callable[[int, int, int], int],
) -> list[list[int]]:
    """The EDF allocation shared by windows and steps: integer counts per interval.

    Interval e must bring each domain's cumulative count into [lower_rows[e][d], upper_rows[e][d]]
    (the floor and ceiling of its target) using exactly ``slots[e]`` samples. Samples due now are
    taken first; the free slots go to the domains whose next sample falls due soonest
    (``deadline(e, d, upper)``: the interval where d's target reaches ``upper``), then to the one
    closest to it (``closeness``, the target's fractional part), then by index.

    Plain Python ints and lists in the loop: with a handful of domains numpy's per-call overhead
    would dominate (the window pass runs ~150k times for a 10^7-step plan).
    """
    n_domains = len(lower_rows[0]) if lower_rows else 0
    domains = range(n_domains)
    realised = [0] * n_domains
    counts: list[list[int]] = []
    for e, (lower, upper) in enumerate(zip(lower_rows, upper_rows)):
        step_counts = [max(0, lower[d] - realised[d]) for d in domains]  # samples due by this edge
        free = slots[e] - sum(step_counts)
        candidates = [d for d in domains if realised[d] + step_counts[d] < upper[d]]  # may go one early
        assert 0 <= free <= len(candidates), "EDF found no feasible allocation (targets inconsistent)"
        if free:
            if free < len(candidates):
                closeness = closeness_rows[e]
                candidates.sort(key=lambda d: (deadline(e, d, upper[d]), -closeness[d], d))
            for d in candidates[:free]:
                step_counts[d] += 1
        counts.append(step_counts)
        for d in domains:
            realised[d] += step_counts[d]
    return counts


def edf_window_counts(cum_targets: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Per-interval integer counts [E, D] from cumulative targets at the E+1 edges.

    ``cum_targets[0]`` is zero, rows are non-decreasing and row e sums to ``slots[:e].sum()``.
    Realised cumulative counts stay strictly within one of ``cum_targets`` at every edge.
    """
    targets = snap_integers(np.asarray(cum_targets, dtype=np.float64))
    n_edges, n_domains = targets.shape
    floor = np.floor(targets)
    columns = [targets[:, d].tolist() for d in range(n_domains)]

    def deadline(e: int, d: int, upper: int) -> int:  # the edge where the target reaches `upper`
        return bisect_left(columns[d], upper - SNAP)

    counts = earliest_deadline_first(
        floor[1:].astype(np.int64).tolist(),
        np.ceil(targets[1:]).astype(np.int64).tolist(),
        (targets - floor)[1:].tolist(),
        np.asarray(slots, dtype=np.int64).tolist(),
        deadline,
    )
    return np.array(counts, dtype=np.int64).reshape(n_edges - 1, n_domains)


def spread_window(window_counts: tuple[int, ...], steps: int, batch_size: int) -> np.ndarray:
    """Cumulative counts [steps + 1, D] spreading integer window totals evenly over its steps.

    The per-step target of domain d is window_counts[d] / steps, in exact integer arithmetic
    (targets scaled by ``steps``), so the cumulative count after step i is within one sample of
    window_counts[d] * (i + 1) / steps.
    """
    k = list(window_counts)
    scaled = [[k_d * (i + 1) for k_d in k] for i in range(steps)]  # target x steps, exact

    def deadline(i: int, d: int, upper: int) -> int:  # the step where the target reaches `upper`
        return -((-upper * steps) // k[d]) - 1

    counts = earliest_deadline_first(
        [[x // steps for x in row] for row in scaled],
        [[-((-x) // steps) for x in row] for row in scaled],
        [[x % steps for x in row] for row in scaled],
        [batch_size] * steps,
        deadline,
    )
    cumulative = np.zeros((steps + 1, len(k)), dtype=np.int64)
    cumulative[1:] = np.cumsum(np.array(counts, dtype=np.int64).reshape(steps, len(k)), axis=0)
    return cumulative


class Allocation:
    """Realised per-domain counts of every step of a plan, computed from window totals on demand."""

    def __init__(self, edges: np.ndarray, window_counts: np.ndarray, batch_size: int):
        self.edges = np.asarray(edges, dtype=np.int64)
        self.window_counts = np.asarray(window_counts, dtype=np.int64)
        self.batch_size = batch_size
        self.window_start = np.vstack(
            [np.zeros((1, window_counts.shape[1]), dtype=np.int64), np.cumsum(self.window_counts, axis=0)]
        )
        self._spread = lru_cache(maxsize=8)(self._spread_uncached)

    @property
    def total_steps(self) -> int:
        return int(self.edges[-1])

    def _spread_uncached(self, window: int) -> np.ndarray:
        steps = int(self.edges[window + 1] - self.edges[window])
        return spread_window(tuple(int(x) for x in self.window_counts[window]), steps, self.batch_size)

    def consumed_before(self, step: int) -> np.ndarray:
        """Samples taken from each domain in steps [0, step) (step may equal total_steps)."""
        if step >= self.total_steps:
            return self.window_start[-1].copy()
        window = int(np.searchsorted(self.edges, step, side="right") - 1)
        return self.window_start[window] + self._spread(window)[step - self.edges[window]]

    def counts(self, step: int) -> np.ndarray:
        """Samples per domain in global batch ``step``."""
        return self.consumed_before(step + 1) - self.consumed_before(step)

    def target_before(self, step: int) -> np.ndarray:
        """The plan's cumulative target (fractional samples per domain) over steps [0, step)."""
        if step >= self.total_steps:
            return self.window_start[-1].astype(np.float64)
        window = int(np.searchsorted(self.edges, step, side="right") - 1)
        steps = self.edges[window + 1] - self.edges[window]
        return self.window_start[window] + self.window_counts[window] * (step - self.edges[window]) / steps

    def target_weights(self, step: int) -> np.ndarray:
        """The plan's per-step target fractions (the window's total spread evenly)."""
        window = int(np.searchsorted(self.edges, step, side="right") - 1)
        steps = self.edges[window + 1] - self.edges[window]
        return self.window_counts[window] / (steps * self.batch_size)


class ControlledAllocation(Allocation):
    """An `Allocation` whose window totals an online controller decides as training runs.

    Windows ``[0, decided]`` are decided; the others hold the prior's counts. Once the trainer
    marks it ``live``, asking for a step past the decided windows waits until the controller has
    decided them (the prefetch thread asks ahead of the loop), so no batch is ever drawn from
    counts that are about to change.
    """

    def __init__(self, edges: np.ndarray, prior_counts: np.ndarray, batch_size: int):
        super().__init__(edges, prior_counts, batch_size)
        self.decided = 0  # window 0 follows the prior
        self.live = False
        self._changed = threading.Condition()

    def window_of(self, step: int) -> int:
        return int(np.searchsorted(self.edges, step, side="right") - 1)

    def slots(self, window: int) -> int:
        return int(self.edges[window + 1] - self.edges[window]) * self.batch_size

    def _known(self, step: int) -> bool:
        return step <= self.edges[min(self.decided + 1, len(self.edges) - 1)]

    def consumed_before(self, step: int) -> np.ndarray:
        with self._changed:
            if self.live:
                self._changed.wait_for(lambda: self._known(step))
            return super().consumed_before(step)

    def decide(self, window: int, counts: np.ndarray, start: np.ndarray | None = None) -> None:
        """Fix window ``window``'s totals (and, on resume, the counts consumed before it)."""
        counts = np.asarray(counts, dtype=np.int64)
        assert counts.sum() == self.slots(window) and (counts >= 0).all(), (counts, self.slots(window))
        with self._changed:
            self.window_counts[window] = counts
            if start is not None:
                self.window_start[window] = np.asarray(start, dtype=np.int64)
            self.window_start[window + 1 :] = self.window_start[window] + np.cumsum(self.window_counts[window:], axis=0)
            self.decided = window
            self._spread.cache_clear()
            self._changed.notify_all()

    def state(self) -> dict[str, list[int] | int]:
        """The decided window, its totals and what was consumed before it: batch t of that window
        is a pure function of these (and the recipe)."""
        j = self.decided
        return {"window": j, "start": self.window_start[j].tolist(), "counts": self.window_counts[j].tolist()}

    def restore(self, state: dict) -> None:
        self.decide(int(state["window"]), np.array(state["counts"]), np.array(state["start"]))
