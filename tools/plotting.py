"""Plots: the plan's timeline (LR, domain weights, batch quality, snapshots) as one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from curriculum.files import atomic_path  # noqa: E402
from tools.train.plan import Plan  # noqa: E402
from tools.train.plan_report import sequence_quantiles, timeline_segments  # noqa: E402

MAX_POINTS = 2000


def plot_plan(plan: Plan, path: str | Path) -> Path:
    """Write the timeline PNG atomically and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    steps = np.unique(np.linspace(0, plan.total_steps - 1, min(MAX_POINTS, plan.total_steps)).astype(int))
    planned = plan.mixer.weights(steps / plan.total_steps)  # what plan.target_weights gives, all at once
    quality = np.array([sequence_quantiles(plan.store.train, plan.batch(int(s)).sequence_ids).mean() for s in steps])

    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True, constrained_layout=True)
    axes[0].plot(steps, plan.schedule.lr(steps), color="black")
    axes[0].set_ylabel("learning rate")
    axes[1].stackplot(steps, planned.T, labels=plan.domains.names, alpha=0.8)
    if plan.spec.mixture.realise == "weight":
        axes[1].set_title("target mixture (batches follow the natural mix; losses are weighted)", fontsize=9)
    axes[1].set_ylabel("domain weight")
    axes[1].set_ylim(0, 1)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    axes[2].plot(steps, quality, color="tab:purple")
    axes[2].set_ylabel("batch quality\n(within-domain quantile)")
    axes[2].set_ylim(0, 1)
    axes[2].set_xlabel("step")
    for name, a, b in timeline_segments(plan):
        if name != "main":
            for ax in axes:
                ax.axvspan(a, b, color="grey", alpha=0.08)
            axes[0].text((a + b) / 2, axes[0].get_ylim()[1], name, ha="center", va="top", fontsize=8)
    if plan.averaging:
        for s in plan.averaging.steps:
            for ax in axes:
                ax.axvline(s - 0.5, color="tab:red", lw=0.8, ls="--")
        axes[0].plot([], [], color="tab:red", ls="--", label=f"{plan.averaging.method} snapshots")
        axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"{plan.spec.name}: plan {plan.fingerprint}")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")  # a PNG whatever ``path`` ends in, as before
        plt.close(fig)
    return path
