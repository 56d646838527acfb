"""A grid's results as files: a CSV (one row per model and seed), a Markdown table (mean and spread
over seeds, and differences to the reference cell with their seed spread) and two plots.

Which metrics can rank the grid's variants at all: a signal-and-noise table (recipes/sweep/stats.py,
after "Signal and Noise", 2508.13144) gives, for each metric (the grid's, plus every bits-per-byte and
probe metric the runs report), the relative dispersion of the cells' means, their relative seed sd and
a run's relative sd over its last in-loop evaluations, and the two signal-to-noise ratios.

Seed noise, stated once: a difference to the reference is paired by seed (same seed = same init
and data order), so it is d_s = metric(cell, s) - metric(reference, s), reported as its mean and
paired 95% t-interval (recipes/sweep/stats.py); it is **bold**, a finding, only when the interval
excludes zero. A grid's `claims` are contrasts of cells computed the same way, each with a verdict.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from curriculum.files import atomic_path, write_atomic
from recipes.sweep.grid import Claim, Grid
from recipes.sweep.stats import Paired, SignalNoise, paired, signal_noise

Row = dict[str, Any]


def result_rows(grid: Grid, results: list[dict[str, Any]]) -> list[Row]:
    """One row per (cell, averaged model, seed), in grid order."""
    rows = []
    for result in results:
        for label, metrics in result["models"].items():
            rows.append({**result["cell"], "averaging": label, "seed": result["seed"], **metrics})
    return rows


def cell_keys(grid: Grid) -> list[str]:
    return [*grid.config.axes, "averaging"]


def write_csv(grid: Grid, rows: list[Row]) -> str:
    """All metrics of every row (metric columns sorted), as CSV text."""
    keys = cell_keys(grid) + ["seed"]
    metrics = sorted({k for r in rows for k in r} - set(keys))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(keys + metrics)
    for r in rows:
        writer.writerow([r[k] for k in keys] + [_num(r.get(m)) for m in metrics])
    return out.getvalue()


def _num(value: Any) -> str:
    return "" if value is None else f"{value:.6f}"


def cells(grid: Grid, rows: list[Row]) -> dict[tuple[str, ...], dict[int, Row]]:
    """Rows grouped by cell (axis labels + averaging, in grid order) and keyed by seed."""
    keys = cell_keys(grid)
    order = [list(grid.config.axes[a]) for a in grid.config.axes] + [list(grid.config.averaging)]
    grouped: dict[tuple[str, ...], dict[int, Row]] = {}
    for r in rows:
        grouped.setdefault(tuple(str(r[k]) for k in keys), {})[r["seed"]] = r
    return dict(sorted(grouped.items(), key=lambda kv: [order[i].index(v) for i, v in enumerate(kv[0])]))


def compare(cell: dict[int, Row], ref: dict[int, Row], metric: str) -> Paired | None:
    """Paired difference cell - reference over the seeds both have (see the module docstring)."""
    seeds = sorted(s for s in cell if s in ref and metric in cell[s] and metric in ref[s])
    if not seeds:
        return None
    return paired(np.array([cell[s][metric] - ref[s][metric] for s in seeds]))


def cell_of(grid: Grid, spec: dict[str, str]) -> tuple[str, ...]:
    """The cell key a claim term names (averaging defaults to the final model, the label whose spec is null)."""
    averaging = grid.config.averaging
    final = next((label for label, spec in averaging.items() if spec is None), next(iter(averaging)))
    return tuple(spec.get(k, final if k == "averaging" else "") for k in cell_keys(grid))


def contrast(grid: Grid, grouped: dict[tuple[str, ...], dict[int, Row]], claim: Claim) -> Paired | None:
    """sum_i c_i * metric(cell_i), per seed, over the seeds every term has."""
    terms = [(c, grouped.get(cell_of(grid, spec), {})) for c, spec in claim.terms]
    seeds = sorted(set.intersection(*(set(s for s, r in by.items() if claim.metric in r) for _, by in terms)))
    if not seeds:
        return None
    return paired(np.array([sum(c * by[s][claim.metric] for c, by in terms) for s in seeds]))


def verdict(claim: Claim, result: Paired | None) -> str:
    """`reproduces`, `opposite` (the interval excludes zero on the other side) or `inside noise`."""
    if result is None:
        return "not run"
    if not result.finding:
        return "inside noise"
    predicted = result.mean < 0 if claim.expect == "negative" else result.mean > 0
    return "reproduces" if predicted else "opposite"


def claims_table(grid: Grid, rows: list[Row]) -> str:
    """One row per claim: the contrast, its paired 95% interval, seeds agreeing, and the verdict."""
    if not grid.config.claims:
        return ""
    grouped = cells(grid, rows)
    lines = [
        "| claim | metric | contrast, mean [95% CI] | seeds agreeing | verdict |",
        "|---|---|---|---|---|",
    ]
    for claim in grid.config.claims:
        result = contrast(grid, grouped, claim)
        shown = result.text(3) if result else "-"
        agree = f"{result.agree}/{result.n}" if result else "-"
        lines.append(f"| {claim.claim} | {claim.metric} | {shown} | {agree} | **{verdict(claim, result)}** |")
    return "\n".join(lines) + "\n"


NOISE_CHECKPOINTS = 3  # a run's last in-loop evaluations that its checkpoint noise is measured over


def noise_metrics(grid: Grid, rows: list[Row]) -> list[str]:
    """The grid's metrics, then every bits-per-byte and probe metric of the rows (sorted)."""
    extra = sorted({k for r in rows for k in r if k.startswith(("bpb/", "probe/"))} - set(grid.config.metrics))
    return [*grid.config.metrics, *extra]


def last_checkpoints(results: list[dict[str, Any]], metric: str) -> list[np.ndarray]:
    """Each run's values of ``metric`` at its last `NOISE_CHECKPOINTS` in-loop evaluations."""
    out = []
    for r in results:
        values = [p[metric] for p in r.get("val_curve", []) if p.get(metric) is not None]
        if len(values) > 1:
            out.append(np.array(values[-NOISE_CHECKPOINTS:], dtype=np.float64))
    return out


def noise_table(grid: Grid, rows: list[Row], results: list[dict[str, Any]] | None = None) -> str:
    """One row per metric: signal, seed and checkpoint noise, and the two SNRs over the grid's cells."""
    grouped = cells(grid, rows)
    lines = [
        "| metric | cells | signal (max-min)/mean | seed noise sd/mean | SNR (seeds) | checkpoint noise | SNR (checkpoints) |",
        "|---|---|---|---|---|---|---|",
    ]

    def num(x: float, fmt: str) -> str:
        return "-" if not np.isfinite(x) else format(x, fmt)

    for m in noise_metrics(grid, rows):
        by_cell = [
            np.array([r[m] for r in by.values() if r.get(m) is not None], dtype=np.float64) for by in grouped.values()
        ]
        sn: SignalNoise = signal_noise([v for v in by_cell if len(v)], last_checkpoints(results or [], m))
        if not sn.variants:
            continue
        lines.append(
            f"| {m} | {sn.variants} | {num(sn.signal, '.4f')} | {num(sn.seed_noise, '.4f')} | {num(sn.seed_snr, '.2f')} "
            f"| {num(sn.checkpoint_noise, '.4f')} | {num(sn.checkpoint_snr, '.2f')} |"
        )
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def markdown_table(grid: Grid, rows: list[Row], results: list[dict[str, Any]] | None = None) -> str:
    """Mean ± sd over seeds for the grid's metrics, the paired difference to the reference, the
    claims, and the signal and noise of every metric (``results`` give the checkpoint noise)."""
    keys = cell_keys(grid)
    grouped = cells(grid, rows)
    metrics = grid.config.metrics
    lines = [
        f"Grid `{grid.config.name}`, size `{grid.size}`: mean ± sd over seeds (n = seeds); loss, lower is better.",
        "",
        "| " + " | ".join(keys + ["n"] + metrics) + " |",
        "|" + "---|" * (len(keys) + 1 + len(metrics)),
    ]
    for key, by_seed in grouped.items():
        cellvals = []
        for m in metrics:
            values = np.array([r[m] for r in by_seed.values() if m in r])
            if len(values) == 0:
                cellvals.append("-")
            elif len(values) == 1:
                cellvals.append(f"{values[0]:.4f}")
            else:
                cellvals.append(f"{values.mean():.4f} ± {values.std(ddof=1):.4f}")
        lines.append("| " + " | ".join([*key, str(len(by_seed)), *cellvals]) + " |")
    for reference in grid.config.references:
        lines += [
            "",
            f"Difference to the cell with {', '.join(f'{k}={v}' for k, v in reference.items())} and the same other "
            "labels, paired by seed: mean [95% paired t-interval] (negative = lower loss than the reference); "
            "**bold** = a finding (the interval excludes zero), plain = inside seed noise.",
            "",
            "| " + " | ".join(keys + [f"Δ {m}" for m in metrics]) + " |",
            "|" + "---|" * (len(keys) + len(metrics)),
        ]
        for key, by_seed in grouped.items():
            ref_key = tuple(reference.get(k, v) for k, v in zip(keys, key))
            if ref_key == key or ref_key not in grouped:
                continue
            out = []
            for m in metrics:
                c = compare(by_seed, grouped[ref_key], m)
                if c is None:
                    out.append("-")
                    continue
                text = c.text(4)
                out.append(f"**{text}**" if c.finding else text)
            lines.append("| " + " | ".join([*key, *out]) + " |")
    claims = claims_table(grid, rows)
    if claims:
        lines += ["", "Claims, each a contrast of cells paired by seed (recipes/sweep/stats.py):", "", claims.rstrip()]
    noise = noise_table(grid, rows, results)
    if noise:
        lines += [
            "",
            "Signal and noise of each metric across the cells (2508.13144): signal = (max - min of the cells' means) / "
            "|mean|; noise = mean sd over seeds (or over a run's last "
            f"{NOISE_CHECKPOINTS} in-loop evaluations) / |mean|; SNR = signal / noise. A metric with SNR near or "
            "below 1 cannot rank these variants at this scale.",
            "",
            noise.rstrip(),
        ]
    return "\n".join(lines) + "\n"


def plot_curves(grid: Grid, results: list[dict[str, Any]], path: Path, metric: str = "val/mean") -> Path:
    """Validation loss during training, one line per training cell (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_cell: dict[str, list[list[dict[str, Any]]]] = {}
    for r in results:
        label = ", ".join(f"{k}={v}" for k, v in r["cell"].items())
        by_cell.setdefault(label, []).append(r["val_curve"])
    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    for label, curves in by_cell.items():
        steps = sorted({p["step"] for c in curves for p in c if metric in p})
        means = [np.mean([p[metric] for c in curves for p in c if p["step"] == s and metric in p]) for s in steps]
        ax.plot(np.array(steps) + 1, means, marker="o", ms=3, lw=1.2, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{metric} (mean over seeds)")
    ax.set_title(f"{grid.config.name} ({grid.size}): validation loss during training", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_final(grid: Grid, rows: list[Row], path: Path) -> Path:
    """Final loss per cell for each plot metric (bars = mean over seeds, whiskers = min..max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = grid.config.plot_metrics or grid.config.metrics
    grouped = cells(grid, rows)
    labels = [",".join(k) for k in grouped]
    fig, axes = plt.subplots(
        len(metrics),
        1,
        figsize=(max(6, 0.45 * len(labels) + 2), 2.2 * len(metrics) + 1.2),
        squeeze=False,
        constrained_layout=True,
    )
    for ax, m in zip(axes[:, 0], metrics):
        values = [np.array([r[m] for r in by_seed.values() if m in r]) for by_seed in grouped.values()]
        means = np.array([v.mean() if len(v) else np.nan for v in values])
        lo = np.array([means[i] - v.min() if len(v) else 0 for i, v in enumerate(values)])
        hi = np.array([v.max() - means[i] if len(v) else 0 for i, v in enumerate(values)])
        x = np.arange(len(labels))
        ax.bar(x, means, color="tab:blue", alpha=0.75)
        ax.errorbar(x, means, yerr=[lo, hi], fmt="none", ecolor="black", capsize=2, lw=0.8)
        finite = means[np.isfinite(means)]
        if len(finite):
            spread = max(float(np.nanmax(means + hi) - np.nanmin(means - lo)), 1e-6)
            ax.set_ylim(float(np.nanmin(means - lo)) - 0.3 * spread, float(np.nanmax(means + hi)) + 0.3 * spread)
        ax.set_ylabel(m, fontsize=8)
        ax.set_xticks(x)
        ax.set_xticklabels(labels if ax is axes[-1, 0] else [""] * len(labels), rotation=60, ha="right", fontsize=7)
    axes[0, 0].set_title(
        f"{grid.config.name} ({grid.size}): final loss\n(bar = mean over seeds, whiskers = min..max)", fontsize=10
    )
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
        plt.close(fig)
    return path


def write_report(grid: Grid, results: list[dict[str, Any]]) -> dict[str, Path]:
    """Write results.csv, results.md, curves.png and final.png into the grid's output folder."""
    rows = result_rows(grid, results)
    out = grid.out_dir
    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": out / "results.csv", "markdown": out / "results.md"}
    for key, text in (("csv", write_csv(grid, rows)), ("markdown", markdown_table(grid, rows, results))):
        write_atomic(files[key], text)
    if rows:
        files["curves"] = plot_curves(grid, results, out / "curves.png")
        files["final"] = plot_final(grid, rows, out / "final.png")
    return files
