"""What `currimix plan` prints: per phase, tokens, repeats and quality per domain, LR range, and how
much learning rate each quality quintile of the data receives (sum of LR x tokens).

Computed from the allocation, not by drawing batches: a phase's samples of domain d are stream
positions [consumed_before(a), consumed_before(b)) of d's curriculum, so the report samples up to
``SAMPLES_PER_DOMAIN`` of those positions evenly, looks their sequences up in the ordering (the
same lookup batches use) and weights each by the positions it stands for. The step a position is
consumed at comes from the allocation's windows in closed form (counts are spread evenly inside a
window, to within one sample), which is all the LR needs. Quality quantiles are found by binary
search in the store's sorted shard runs, so nothing scales with the corpus or the step count
beyond the samples: a few seconds at 10^6 steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from curriculum.store import TokenSplit
from recipes.plan import Plan

SAMPLES_PER_DOMAIN = 20_000  # per phase segment; the estimate's error is ~1/sqrt of this
QUINTILES = 5


def score_quantiles(split: TokenSplit, domain: int, scores: np.ndarray) -> np.ndarray:
    """Within-domain quality quantile in (0, 1) of each score (ties share their mean rank), by binary
    search in the domain's sorted shard runs; comparable across domains scored on different scales."""
    start, stop = split.domain_range(domain)
    below = np.zeros(len(scores), dtype=np.int64)
    at_or_below = np.zeros(len(scores), dtype=np.int64)
    values = np.asarray(scores, dtype=np.float32)
    for run in split._domain_runs(domain):
        below += np.searchsorted(run, values, side="left")
        at_or_below += np.searchsorted(run, values, side="right")
    return ((below + at_or_below - 1) / 2 + 0.5) / max(stop - start, 1)


def sequence_quantiles(split: TokenSplit, ids: np.ndarray) -> np.ndarray:
    """Within-domain quality quantile of global sequence ``ids``."""
    ids = np.asarray(ids, dtype=np.int64)
    domains = np.searchsorted(split.domain_offsets, ids, side="right") - 1
    out = np.empty(len(ids), dtype=np.float64)
    for d in np.unique(domains):
        rows = domains == d
        out[rows] = score_quantiles(split, int(d), split.score[ids[rows]])
    return out


def within_domain_quantiles(split: TokenSplit) -> np.ndarray:
    """Every sequence's within-domain quantile (O(sequences): small stores, plots and tests)."""
    return sequence_quantiles(split, np.arange(len(split)))


def timeline_segments(plan: Plan) -> list[tuple[str, int, int]]:
    """The run cut at every phase boundary, each piece named by the phases covering it."""
    cuts = {0, plan.total_steps} | {s for rng in plan.phases.values() for s in rng if 0 < s < plan.total_steps}
    cuts = sorted(cuts)
    segments = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        names = [n for n, (s, e) in plan.phases.items() if s <= a and b <= e]
        segments.append(("+".join(names) or "main", a, b))
    return segments


def position_steps(plan: Plan, domain: int, positions: np.ndarray) -> np.ndarray:
    """The step consuming each stream position of ``domain`` (exact at window edges, within a
    step or so inside a window, where the allocation spreads counts evenly)."""
    alloc = plan.allocation
    starts = alloc.window_start[:, domain]
    window = np.clip(np.searchsorted(starts, positions, side="right") - 1, 0, len(alloc.edges) - 2)
    count = np.maximum(alloc.window_counts[window, domain], 1)
    steps = alloc.edges[window + 1] - alloc.edges[window]
    inside = np.floor((positions - starts[window]) * steps / count).astype(np.int64)
    return np.minimum(alloc.edges[window] + inside, plan.total_steps - 1)


def plan_summary(plan: Plan) -> dict[str, Any]:
    """The plan as plain data (what `plan` prints and writes with --json)."""
    split = plan.store.train
    seq_len = plan.store.seq_len
    names = plan.domains.names
    lr_tokens = np.zeros(QUINTILES)
    segments = []
    for name, a, b in timeline_segments(plan):
        before, after = plan.consumed_before(a), plan.consumed_before(b)
        counts = after - before
        mean_score: dict[str, float | None] = {}
        quant_sum = 0.0
        for d, domain in enumerate(names):
            if counts[d] == 0:
                mean_score[domain] = None
                continue
            positions = np.unique(
                np.linspace(before[d], after[d] - 1, min(SAMPLES_PER_DOMAIN, counts[d])).astype(np.int64)
            )
            ids = split.domain_offsets[d] + plan.sampler.lookup_positions(d, positions)
            scores = split.score[ids]
            quantiles = score_quantiles(split, d, scores)
            weight = counts[d] / len(positions)  # samples each drawn position stands for
            mean_score[domain] = float(np.mean(scores))
            quant_sum += float(quantiles.sum() * weight)
            lrs = plan.schedule.lr(position_steps(plan, d, positions))
            bins = np.minimum((quantiles * QUINTILES).astype(int), QUINTILES - 1)
            lr_tokens += np.bincount(bins, weights=lrs * seq_len * weight, minlength=QUINTILES)
        lrs = plan.schedule.lr(np.arange(a, b))
        segments.append(
            {
                "phase": name,
                "steps": [a, b],
                "tokens": {n: int(c * seq_len) for n, c in zip(names, counts)},
                "share": {n: float(c / max(counts.sum(), 1)) for n, c in zip(names, counts)},
                "epochs_at_end": {n: float(x) for n, x in zip(names, after / plan.domains.sequences)},
                "mean_score": mean_score,
                "mean_quality_quantile": quant_sum / max(int(counts.sum()), 1),
                "lr_range": [float(lrs.min()), float(lrs.max())],
            }
        )
    return {
        "recipe": plan.recipe.name,
        "fingerprint": plan.fingerprint,
        "steps": plan.total_steps,
        "global_batch_size": plan.batch_size,
        "seq_len": seq_len,
        "tokens": plan.total_steps * plan.batch_size * seq_len,
        "realise": plan.recipe.mixture.realise,
        "domains": {
            n: {"sequences": int(s), "epochs": float(e)}
            for n, s, e in zip(names, plan.domains.sequences, plan.epochs())
        },
        "phases": {n: list(r) for n, r in plan.phases.items()},
        "segments": segments,
        "lr_x_tokens_by_quality_quintile": lr_tokens.tolist(),
        "averaging": None
        if plan.averaging is None
        else {
            "method": plan.averaging.method,
            "steps": list(plan.averaging.steps),
            "weights": [round(w, 6) for w in plan.averaging.weights],
        },
        "sampled_positions_per_domain": SAMPLES_PER_DOMAIN,
    }


def _fmt_tokens(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def print_summary(summary: dict[str, Any], console: Console) -> None:
    names = list(summary["domains"])
    console.print(
        f"[bold]{summary['recipe']}[/]  plan {summary['fingerprint']}: {summary['steps']:,} steps x "
        f"{summary['global_batch_size']} sequences x {summary['seq_len']} tokens = "
        f"{_fmt_tokens(summary['tokens'])} tokens (mixture realised by {summary['realise']})"
    )
    table = Table(
        "phase",
        "steps",
        "LR range",
        "domain",
        "tokens",
        "share",
        "epochs at end",
        "mean score",
        title="timeline (per phase and domain)",
    )
    for seg in summary["segments"]:
        for i, n in enumerate(names):
            first = i == 0
            score = seg["mean_score"][n]
            table.add_row(
                seg["phase"] if first else "",
                f"{seg['steps'][0]:,}-{seg['steps'][1]:,}" if first else "",
                f"{seg['lr_range'][0]:.2e}-{seg['lr_range'][1]:.2e}" if first else "",
                n,
                _fmt_tokens(seg["tokens"][n]),
                f"{seg['share'][n]:.1%}",
                f"{seg['epochs_at_end'][n]:.2f}",
                "-" if score is None else f"{score:.3g}",
                end_section=i == len(names) - 1,
            )
    console.print(table)
    console.print(
        "mean batch quality (within-domain quantile, 0.5 = average): "
        + ", ".join(f"{seg['phase']} {seg['mean_quality_quantile']:.2f}" for seg in summary["segments"])
    )
    lr_tokens = np.asarray(summary["lr_x_tokens_by_quality_quintile"])
    quint = Table(
        *(f"Q{i + 1}" for i in range(len(lr_tokens))),
        title="sum of LR x tokens per quality quintile (Q1 lowest, within each domain)",
    )
    quint.add_row(*(f"{v:.3g} ({v / max(lr_tokens.sum(), 1e-30):.0%})" for v in lr_tokens))
    console.print(quint)
    avg = summary["averaging"]
    if avg:
        console.print(
            f"averaging: {avg['method']} over snapshots at steps {avg['steps']} with weights {avg['weights']}"
        )
