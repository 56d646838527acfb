"""Plots: the plan's timeline (LR, domain weights, batch quality, snapshots) as one PNG.

Under an online controller the mixture panel stacks the prior and, once the run folder holds a log,
draws the weights the controller chose at each update over it (`controller_weights`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from curriculum.files import atomic_path  # noqa: E402
from tools.train.plan import Plan  # noqa: E402
from tools.train.plan_report import sequence_quantiles, timeline_segments  # noqa: E402
from tools.train.trackers import read_metrics  # noqa: E402

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
    chosen = controller_weights(plan.spec.run_path, plan.domains.names) if plan.controller is not None else None
    if chosen is not None:
        starts, weights = chosen
        for d in range(len(plan.domains.names)):
            axes[1].step(starts, np.cumsum(weights, axis=1)[:, d], where="post", color="black", lw=1)
        axes[1].set_title(
            "prior (filled) and the controller's cumulative weights (lines, from the run's log)", fontsize=9
        )
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


def controller_weights(run_dir: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """The steps where the controller's windows began and the weights it chose for them (from the
    run's metrics.jsonl), or None before the run has logged an update."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return None
    records = [r for r in read_metrics(run_dir) if "control/update" in r]
    if not records:
        return None
    starts = np.array([r["control/update"] for r in records])
    weights = np.array([[r[f"control/{n}/weight"] for n in names] for r in records])
    return starts, weights


def plot_controller(run_dir: Path, names: tuple[str, ...], path: str | Path, title: str = "") -> Path:
    """The controller's weights at every update of a run, one line per domain (PNG, written atomically)."""
    chosen = controller_weights(run_dir, names)
    if chosen is None:
        raise ValueError(f"{run_dir} has no controller updates in its log")
    starts, weights = chosen
    fig, ax = plt.subplots(figsize=(8, 3.5), constrained_layout=True)
    for d, name in enumerate(names):
        ax.step(starts, weights[:, d], where="post", label=name)
    ax.set_xlabel("step (the window the weights were chosen for starts here)")
    ax.set_ylabel("weight")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title or f"controller weights: {Path(run_dir).name}", fontsize=10)
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
    return Path(path)
