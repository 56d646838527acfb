"""The fitted-vs-observed figure of `currimix schedule`: each curve's observations and both laws' fits,
plus the recommended schedule's predicted curve, written atomically as one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from curriculum.files import atomic_path  # noqa: E402
from tools.planner.curves import Curve  # noqa: E402
from tools.planner.plan import Ranking  # noqa: E402

MAX_POINTS = 400
STYLES = {"multi_power": "-", "annealing_area": "--"}


def dense(curve: Curve) -> Curve:
    """The same LR, observed at up to MAX_POINTS steps (for drawing a law's prediction)."""
    steps = np.unique(np.linspace(curve.warmup_end + 1, curve.total_steps - 1, MAX_POINTS).astype(int))
    return Curve(curve.name, curve.lr, steps, np.ones(len(steps)))


def plot_fit(curves: list[Curve], ranking: Ranking, path: str | Path) -> Path:
    """Observed (dots) and fitted (lines, one style per law) loss of each curve; the best candidate dotted."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(9, 5.5), constrained_layout=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, curve in enumerate(curves):
        colour = colours[i % len(colours)]
        ax.plot(curve.steps, curve.loss, ".", color=colour, ms=3, alpha=0.6, label=f"{curve.name} (observed)")
        grid = dense(curve)
        for name, fit in ranking.fits.items():
            ax.plot(grid.steps, fit.predict(grid), STYLES.get(name, ":"), color=colour, lw=1.2)
    best = ranking.best.candidate
    grid = dense(Curve("best", best.lr, np.array([0]), np.array([1.0])))
    fit = ranking.fits["multi_power"]
    predicted = fit.predict(grid)
    ax.plot(grid.steps, predicted, ":", color="black", lw=1.5, label=f"best: {best.label} (multi-power)")
    for name, style in STYLES.items():
        ax.plot([], [], style, color="grey", label=f"{name} fit")
    low = min(min(float(c.loss.min()) for c in curves), float(predicted.min()))
    high = float(np.percentile(np.concatenate([c.loss for c in curves]), 95))
    ax.set_ylim(low - 0.1 * (high - low) - 0.02, high + 0.1 * (high - low) + 0.02)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("loss-curve laws: fitted (lines) vs observed (dots)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
    return path
