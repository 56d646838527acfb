"""A controller's float64 weights as the integer per-domain counts of one window (largest remainders)."""

from __future__ import annotations

import numpy as np

from curriculum.errors import UserError


def round_counts(weights: np.ndarray, slots: int, capacity: np.ndarray | None = None) -> np.ndarray:
    """Integer counts summing to ``slots`` for float64 ``weights`` (a distribution): floors first,
    then one more sample each to the largest remainders (ties to the lower domain index), never
    past a domain's ``capacity`` (samples it may still take). Plain float64 arithmetic and a stable
    sort: the same weights give the same counts on every process."""
    ideal = np.asarray(weights, dtype=np.float64) * slots
    counts = np.floor(ideal).astype(np.int64)
    cap = np.full(len(counts), np.iinfo(np.int64).max) if capacity is None else np.asarray(capacity, dtype=np.int64)
    counts = np.minimum(counts, cap)
    if capacity is not None and int(cap.sum()) < slots:
        raise UserError(
            f"mixture.max_epochs: the domains' caps leave {int(cap.sum())} samples for a window of {slots}; "
            "raise the caps (or train fewer steps)"
        )
    while (left := slots - int(counts.sum())) > 0:
        open_ = np.flatnonzero(counts < cap)
        order = open_[np.argsort(-(ideal[open_] - counts[open_]), kind="stable")]
        take = order[:left]
        counts[take] += 1
    return counts
