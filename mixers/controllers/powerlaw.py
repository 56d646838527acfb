"""Fitting L(n) = E + B n^-a to a domain's (samples seen, smoothed loss) points, numpy only.

For a fixed exponent a the model is linear in (E, B), so least squares gives them in closed form
(with E >= 0 and B >= 0 enforced by falling back to the boundary solutions). The exponent is found
by a grid over [a_min, a_max] in log spacing and a golden-section refinement around the best grid
point: no optimiser dependency, no starting-point sensitivity, and the same bits on every process.
The ADO reference code fits log L with a Huber loss and L-BFGS from a grid of starts, with a <= 0.8;
here the squared error in loss units is fitted, with the same exponent bound by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID_POINTS = 64
GOLDEN_STEPS = 40
INVPHI = (np.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class PowerLaw:
    """L(n) = floor_loss + scale * n ** -exponent (E, B, a in the ADO paper)."""

    floor_loss: float
    scale: float
    exponent: float

    def loss(self, n: np.ndarray | float) -> np.ndarray:
        return self.floor_loss + self.scale * np.asarray(n, dtype=np.float64) ** -self.exponent

    def slope(self, n: np.ndarray | float) -> np.ndarray:
        """-dL/dn = a (L(n) - E) / n: the loss one more sample of the domain still removes."""
        n = np.asarray(n, dtype=np.float64)
        return self.exponent * (self.loss(n) - self.floor_loss) / n


def _linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares (E, B) of y = E + B x with E, B >= 0, and the squared error."""
    xm, ym = x.mean(), y.mean()
    var = ((x - xm) ** 2).sum()
    b = ((x - xm) * (y - ym)).sum() / var if var > 0 else 0.0
    e = ym - b * xm
    if b < 0:  # a rising curve: flat is the best non-increasing power law
        e, b = ym, 0.0
    if e < 0:  # the loss cannot fall below zero: through the origin
        e, b = 0.0, max(0.0, float((x * y).sum() / (x * x).sum()))
    return float(e), float(b), float(((e + b * x - y) ** 2).sum())


def fit_power_law(
    n: np.ndarray, loss: np.ndarray, exponent_bounds: tuple[float, float] = (1e-3, 0.8)
) -> PowerLaw | None:
    """The least-squares power law through points (n_i, loss_i), n_i > 0; None with under 3 points."""
    n = np.asarray(n, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    keep = np.isfinite(n) & np.isfinite(loss) & (n > 0)
    n, loss = n[keep], loss[keep]
    if len(n) < 3:
        return None
    n0 = float(n.min())  # fit on n / n0 so n^-a stays near 1 whatever the units
    scaled = n / n0

    def error(a: float) -> float:
        return _linear_fit(scaled**-a, loss)[2]

    lo, hi = np.log(exponent_bounds[0]), np.log(exponent_bounds[1])
    grid = np.exp(np.linspace(lo, hi, GRID_POINTS))
    errors = [error(a) for a in grid]
    i = int(np.argmin(errors))
    left, right = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, GRID_POINTS - 1)])
    c, d = right - INVPHI * (right - left), left + INVPHI * (right - left)
    fc, fd = error(np.exp(c)), error(np.exp(d))
    for _ in range(GOLDEN_STEPS):
        if fc < fd:
            right, d, fd = d, c, fc
            c = right - INVPHI * (right - left)
            fc = error(np.exp(c))
        else:
            left, c, fc = c, d, fd
            d = left + INVPHI * (right - left)
            fd = error(np.exp(d))
    a = float(np.exp(0.5 * (left + right)))
    if errors[i] < error(a):
        a = float(grid[i])
    e, b, _ = _linear_fit(scaled**-a, loss)
    return PowerLaw(e, b * n0**a, a)
