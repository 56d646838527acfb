"""Shard-aware sorted orders: a k-way merge of per-shard sorted score runs, done in bounded chunks.

Every shard stores a domain's sequences in ascending score order, so the domain's global
ascending order is a merge of those runs, not a sort of the whole domain. The merge cuts the
score axis at pivots (quantiles of a small sample of every run), binary-searches each run for
its slice between two pivots, and sorts only that slice: memory is O(chunk + runs), whatever
the domain's size. Equal scores always fall in one chunk (both cuts use the same side), and a
stable sort over the runs in order breaks ties by (shard, position), so the result is fully
deterministic. The order is written once (at the end of `prepare`) and memory-mapped by readers.

`keyed_rank_order` turns that order into the rank order an `ascending` / `descending`
curriculum uses, whose ties are broken by a keyed shuffle (so it depends on the recipe's seed):
identical to sorting the whole domain with `curriculum.order.stable_rank_order`, and only
computed when the domain has ties at all.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from curriculum.permutation import derive_key, permute

CHUNK = 1 << 22  # sequences per merge chunk: ~50 MB of working memory
SAMPLES_PER_RUN = 64


def merge_pivots(runs: Sequence[np.ndarray], chunk: int) -> np.ndarray:
    """Score values cutting the merged runs into pieces of about ``chunk`` sequences."""
    total = sum(len(r) for r in runs)
    if total <= chunk:
        return np.zeros(0)
    values, weights = [], []
    for run in runs:
        if len(run):
            picks = np.unique(np.linspace(0, len(run) - 1, min(SAMPLES_PER_RUN, len(run))).astype(np.int64))
            values.append(np.asarray(run[picks], dtype=np.float64))
            weights.append(np.full(len(picks), len(run) / len(picks)))
    v, w = np.concatenate(values), np.concatenate(weights)
    order = np.argsort(v, kind="stable")
    mass = np.cumsum(w[order])
    targets = np.arange(1, -(-total // chunk)) * chunk
    return np.unique(v[order][np.minimum(np.searchsorted(mass, targets), len(v) - 1)])


def merge_runs(runs: Sequence[np.ndarray], out: np.ndarray, chunk: int = CHUNK) -> bool:
    """Write into ``out`` the indices (into the concatenated runs) in ascending score order; each
    run must be non-decreasing. Returns whether any two sequences share a score."""
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in runs])]).astype(np.int64)
    if offsets[-1] == 0:
        return False
    cursors = np.zeros(len(runs), dtype=np.int64)
    written, ties = 0, False
    for pivot in [*merge_pivots(runs, chunk), np.inf]:
        stops = np.array([np.searchsorted(r, pivot, side="right") if len(r) else 0 for r in runs], dtype=np.int64)
        idx = np.concatenate([np.arange(offsets[k] + cursors[k], offsets[k] + stops[k]) for k in range(len(runs))])
        val = np.concatenate([np.asarray(runs[k][cursors[k] : stops[k]]) for k in range(len(runs))])
        order = np.argsort(val, kind="stable")
        out[written : written + len(idx)] = idx[order]
        ties = ties or bool(len(val) > 1 and np.any(np.diff(val[order]) == 0))
        written += len(idx)
        cursors = stops
    assert written == offsets[-1], "merge lost sequences: a run was not sorted"
    return ties


def save_array(path: Path, array_writer: Callable[[np.ndarray], object], n: int, dtype: type = np.int64) -> object:
    """Create ``path`` as an .npy of ``n`` items through a temp name; ``array_writer`` fills it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}.npy")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(n,))
        result = array_writer(out)
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return result


def keyed_rank_order(
    ascending: np.ndarray, sorted_scores: np.ndarray, descending: bool, key: int
) -> np.ndarray:
    """The rank order of `stable_rank_order(scores, descending, key)` from the merged ascending
    order and the scores along it: ties are broken by the keyed shuffle of the sequence index."""
    n = len(ascending)
    m = np.asarray(ascending)
    tiebreak = permute(m, n, derive_key(key, "ties"))
    primary = -np.asarray(sorted_scores, dtype=np.float64) if descending else np.asarray(sorted_scores, np.float64)
    return m[np.lexsort((tiebreak, primary))]
