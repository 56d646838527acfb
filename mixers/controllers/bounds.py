"""Projecting a controller's proposal onto the recipe's bounds: a floor and a largest change per update.

The bounded weights are the closest-in-shift point of the box [lo, hi] on the simplex: w_d =
clip(p_d + lambda, lo_d, hi_d) with the one lambda that makes them sum to 1, found by bisection in
float64 (the same bits on every process). lo = max(floor, previous - max_change), hi = previous +
max_change (at least lo). When the previous weights sit so far below the floor that the change limit
and the floor cannot both hold (their lower bounds sum over 1), the floor wins for that update.
"""

from __future__ import annotations

import numpy as np

BISECTION_STEPS = 200  # halves [-1, 1] down to float64 resolution, and then some


def apply_bounds(proposal: np.ndarray, previous: np.ndarray, floor: float, max_change: float | None) -> np.ndarray:
    """``proposal`` moved onto {sum 1, >= floor, within max_change of ``previous``} (float64)."""
    p = np.asarray(proposal, dtype=np.float64)
    prev = np.asarray(previous, dtype=np.float64)
    lo = np.full_like(p, floor)
    hi = np.ones_like(p)
    if max_change is not None:
        lo = np.maximum(lo, prev - max_change)
        hi = np.maximum(np.minimum(hi, prev + max_change), lo)
        if lo.sum() > 1.0:
            lo = np.full_like(p, floor)
    assert lo.sum() <= 1.0 + 1e-12 <= hi.sum() + 2e-12, (lo, hi)  # floor x D <= 1 is checked at plan build
    low, high = -1.0 - hi.max(), 1.0 + hi.max()  # the sum is lo.sum() at `low` and hi.sum() at `high`
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (low + high)
        if np.clip(p + mid, lo, hi).sum() < 1.0:
            low = mid
        else:
            high = mid
    w = np.clip(p + high, lo, hi)
    return w / w.sum()
