"""Transition shapes shared by the time-varying mixers: how far (0 to 1) a switch has gone at each step.

A step switch lands exactly on `boundary_step(at, T)` (the same rounding the plan uses for phase
edges), and a smooth ramp is exactly 1 from its end on, so "after the transition" mixes are exact,
not merely close: the realised proportions over a phase are the promised ones.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from mixers.base import at_or_after

Shape = Literal["step", "linear", "cosine"]


def ramp(progress: np.ndarray, start: float, end: float, shape: Shape) -> np.ndarray:
    """0 before ``start``, exactly 1 at or after ``end``, rising in between (``step``: jumps at ``end``).

    ``linear`` rises in proportion to progress; ``cosine`` is the half-cosine ease (1 - cos(pi u)) / 2,
    flat at both ends. Both are monotone non-decreasing in progress.
    """
    progress = np.asarray(progress, dtype=np.float64)
    done = at_or_after(progress, end)
    if shape == "step" or end <= start:
        return done.astype(np.float64)
    u = np.clip((progress - start) / (end - start), 0.0, 1.0)
    if shape == "cosine":
        u = 0.5 * (1.0 - np.cos(np.pi * u))
    elif shape != "linear":
        raise AssertionError(shape)  # guarded by the Literal types of the configs
    return np.where(done, 1.0, np.minimum(u, 1.0))
