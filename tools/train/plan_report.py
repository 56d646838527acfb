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

from curriculum.store.reader import QUINTILES, TokenSplit, quintile_of
from tools.train.plan import Plan

SAMPLES_PER_DOMAIN = 20_000  # per phase segment; the estimate's error is ~1/sqrt of this


def sequence_quantiles(split: TokenSplit, ids: np.ndarray) -> np.ndarray:
    """Within-domain quality quantile of global sequence ``ids``."""
    ids = np.asarray(ids, dtype=np.int64)
    domains = np.searchsorted(split.domain_offsets, ids, side="right") - 1
    out = np.empty(len(ids), dtype=np.float64)
    for d in np.unique(domains):
        rows = domains == d
        out[rows] = split.score_quantiles(int(d), split.score[ids[rows]])
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


LR_RANGE_POINTS = 1 << 16  # steps sampled for a segment's LR range when it has more than this


def lr_sample_steps(a: int, b: int) -> np.ndarray:
    """The steps [a, b) where a segment's LR range is read: all of them up to `LR_RANGE_POINTS`, else that
    many evenly spaced ones including both ends (schedules are monotone between a few breakpoints, so the
    range is off by at most one sample's spacing), so memory does not grow with the step count."""
    if b - a <= LR_RANGE_POINTS:
        return np.arange(a, b)
    return np.unique(np.linspace(a, b - 1, LR_RANGE_POINTS).astype(np.int64))


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
            ids = split.domain_offsets[d] + plan.streams[d].lookup(positions)
            scores = split.score[ids]
            quantiles = split.score_quantiles(d, scores)
            weight = counts[d] / len(positions)  # samples each drawn position stands for
            mean_score[domain] = float(np.mean(scores))
            quant_sum += float(quantiles.sum() * weight)
            lrs = plan.schedule.lr(position_steps(plan, d, positions))
            bins = quintile_of(quantiles)
            lr_tokens += np.bincount(bins, weights=lrs * seq_len * weight, minlength=QUINTILES)
        lrs = plan.schedule.lr(lr_sample_steps(a, b))
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
        "recipe": plan.spec.name,
        "fingerprint": plan.fingerprint,
        "steps": plan.total_steps,
        "global_batch_size": plan.batch_size,
        "seq_len": seq_len,
        "tokens": plan.total_steps * plan.batch_size * seq_len,
        "realise": plan.spec.mixture.realise,
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
        "controller": controller_summary(plan),
    }


def controller_summary(plan: Plan) -> dict[str, Any] | None:
    """The online controller's settings, its prior (the mixer at step 0) and how often it updates.
    The timeline above is the prior's: the controller decides the rest while the run trains."""
    if plan.controller is None:
        return None
    config = plan.controller.config
    every = config.every_steps
    first = -(-config.warmup_steps // every) * every
    prior = plan.mixer.weights(np.array([0.0]))[0]
    return {
        **config.model_dump(mode="json"),
        "prior": {n: round(float(w), 6) for n, w in zip(plan.domains.names, prior)},
        "updates": len(range(max(first, every), plan.total_steps, every)),
    }


def _fmt_tokens(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def new_table(*columns: str, title: str) -> Table:
    """A report table whose cells are never cut: a cell too wide for its column folds onto the next line
    instead of ending in "…" (rich's default would print "3.00e-05…")."""
    table = Table(title=title)
    for name in columns:
        table.add_column(name, overflow="fold")
    return table


def print_table(table: Table, console: Console) -> None:
    """Print ``table`` whole: on a terminal, folded to its width; elsewhere (a pipe, a log file, where rich
    would assume 80 columns) at the table's natural width, so every number stays on one line."""
    if console.is_terminal:
        console.print(table)
        return
    saved = console.width
    console.width = max(saved, console.measure(table, options=console.options.update(width=1 << 14)).maximum)
    try:
        console.print(table)
    finally:
        console.width = saved


CONTROL_SHOWN = {"name", "every_steps", "updates", "warmup_steps", "floor", "max_change", "prior"}


def print_summary(summary: dict[str, Any], console: Console) -> None:
    names = list(summary["domains"])
    console.print(
        f"[bold]{summary['recipe']}[/]  plan {summary['fingerprint']}: {summary['steps']:,} steps x "
        f"{summary['global_batch_size']} sequences x {summary['seq_len']} tokens = "
        f"{_fmt_tokens(summary['tokens'])} tokens (mixture realised by {summary['realise']})"
    )
    table = new_table(
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
                f"{seg['lr_range'][0]:.2e} - {seg['lr_range'][1]:.2e}" if first else "",
                n,
                _fmt_tokens(seg["tokens"][n]),
                f"{seg['share'][n]:.1%}",
                f"{seg['epochs_at_end'][n]:.2f}",
                "-" if score is None else f"{score:.3g}",
                end_section=i == len(names) - 1,
            )
    print_table(table, console)
    console.print(
        "mean batch quality (within-domain quantile, 0.5 = average): "
        + ", ".join(f"{seg['phase']} {seg['mean_quality_quantile']:.2f}" for seg in summary["segments"])
    )
    lr_tokens = np.asarray(summary["lr_x_tokens_by_quality_quintile"])
    quint = new_table(
        *(f"Q{i + 1}" for i in range(len(lr_tokens))),
        title="sum of LR x tokens per quality quintile (Q1 lowest, within each domain)",
    )
    quint.add_row(*(f"{v:.3g} ({v / max(lr_tokens.sum(), 1e-30):.0%})" for v in lr_tokens))
    print_table(quint, console)
    control = summary.get("controller")
    if control:
        extra = {k: v for k, v in control.items() if k not in CONTROL_SHOWN}
        console.print(
            f"controller {control['name']}: every {control['every_steps']} steps ({control['updates']} updates, "
            f"the first after step {max(control['warmup_steps'], control['every_steps'])}), floor {control['floor']}, "
            f"max change {control['max_change'] if control['max_change'] is not None else 'none'}, prior "
            + ", ".join(f"{n} {w:.3f}" for n, w in control["prior"].items())
            + f"; {', '.join(f'{k} {v}' for k, v in extra.items())}. The timeline above is the prior's: the "
            "controller sets each later window's counts from the training losses. The curriculum coverage below "
            "is of each domain's stream, built for the most the controller could give it; a run that takes less "
            "sees the stream's start"
        )
    avg = summary["averaging"]
    if avg:
        console.print(
            f"averaging: {avg['method']} over snapshots at steps {avg['steps']} with weights {avg['weights']}"
        )


# ------------------------------------------------------------------ curriculum coverage per domain

COVERAGE_SAMPLE = 200_000  # stream positions sampled per domain (evenly spaced: exact ends of sorted streams)
ONE_END = 0.2  # a covered quantile range that misses more than this at either end is "one end" only


def coverage_summary(plan: Plan) -> dict[str, dict[str, Any]]:
    """Per domain: which part of its quality range the run covers, and how quality moves along it.

    ``quantile_range`` is the [lowest, highest] within-domain quality quantile of the sequences the
    run sees; ``start_quantile`` / ``end_quantile`` the mean quantile over the first and last tenth
    of the domain's stream. ``warning`` is set when a score-sorted order covers only one end of
    the domain (more than 20% missing at the top or the bottom), unless ``subset: top`` chose that.
    """
    split = plan.store.train
    cur = plan.spec.curriculum
    out: dict[str, dict[str, Any]] = {}
    for d, name in enumerate(plan.domains.names):
        stream = plan.streams[d]
        start, _ = split.domain_range(d)
        domain_range = split.score_range(d)
        order = cur.per_domain.get(name, cur.order).name
        entry: dict[str, Any] = {
            "order": order,
            "subset": cur.subset,
            "sequences_seen": int(stream.budget),
            "epochs": float(stream.budget / max(stream.n, 1)),
            "domain_score_range": None if domain_range is None else list(domain_range),
        }
        if stream.budget == 0:
            out[name] = entry | {"score_range": None, "quantile_range": None, "warning": None}
            continue
        positions = np.unique(np.linspace(0, stream.budget - 1, min(COVERAGE_SAMPLE, stream.budget)).astype(np.int64))
        ids = start + stream.lookup(positions)
        scores = split.score[ids]
        q = split.score_quantiles(d, scores)
        tenth = max(1, len(q) // 10)
        lo, hi = float(q.min()), float(q.max())
        entry |= {
            "score_range": [float(scores.min()), float(scores.max())],
            "quantile_range": [lo, hi],
            "start_quantile": float(q[:tenth].mean()),
            "end_quantile": float(q[-tenth:].mean()),
            "warning": None,
        }
        one_end = lo > ONE_END or hi < 1 - ONE_END
        if one_end and order != "random" and cur.subset != "top":
            side = "lowest" if hi < 1 - ONE_END else "highest"
            entry["warning"] = (
                f"domain {name!r}: the {order} order covers only the {side} part of its quality range "
                f"(quantiles {lo:.2f}-{hi:.2f}); use `curriculum.subset: random` to order a uniform sample "
                "of the domain, or `top` to select its best sequences on purpose"
            )
        out[name] = entry
    return out


def print_coverage(coverage: dict[str, dict[str, Any]], console: Console) -> None:
    """The coverage table, then one warning line per domain that needs one."""
    table = new_table(
        "domain",
        "order",
        "subset",
        "seen",
        "covered score range",
        "domain score range",
        "quantiles covered",
        "quality start -> end",
        title="curriculum coverage (what the run sees of each domain)",
    )
    for name, c in coverage.items():
        rng, dom, qr = c["score_range"], c["domain_score_range"], c["quantile_range"]
        table.add_row(
            name,
            c["order"],
            c["subset"],
            f"{c['sequences_seen']:,} ({c['epochs']:.2f} ep)",
            "-" if rng is None else f"{rng[0]:.3g} .. {rng[1]:.3g}",
            "-" if dom is None else f"{dom[0]:.3g} .. {dom[1]:.3g}",
            "-" if qr is None else f"{qr[0]:.2f} .. {qr[1]:.2f}",
            "-" if qr is None else f"{c['start_quantile']:.2f} -> {c['end_quantile']:.2f}",
        )
    print_table(table, console)
    for c in coverage.values():
        if c["warning"]:
            console.print(f"warning: {c['warning']}", style="yellow", markup=False, highlight=False)
