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
identical to sorting the whole domain with `curriculum.orders.stable_rank_order`, computed in
windows cut at score changes, and only when the domain has ties at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from curriculum.files import atomic_path
from curriculum.permutation import derive_key, permute

CHUNK = 1 << 20  # sequences per merge window: ~30 MB of working memory
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
    run must be non-decreasing. Returns whether any two sequences share a score.

    Between two pivots, the scores strictly inside are gathered and sorted (about ``chunk`` of
    them); the sequences scoring exactly a pivot follow, run by run, with no sort at all, so a
    huge group of equal scores (a domain without a scorer) costs no memory either."""
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in runs])]).astype(np.int64)
    if offsets[-1] == 0:
        return False
    live = [k for k in range(len(runs)) if len(runs[k])]
    cursors = np.zeros(len(runs), dtype=np.int64)
    written, ties = 0, False
    for pivot in [*merge_pivots(runs, chunk), np.inf]:
        below = {k: int(np.searchsorted(runs[k], pivot, side="left")) for k in live}
        idx = np.concatenate([np.arange(offsets[k] + cursors[k], offsets[k] + below[k]) for k in live])
        val = np.concatenate([np.asarray(runs[k][cursors[k] : below[k]]) for k in live])
        order = np.argsort(val, kind="stable")
        out[written : written + len(idx)] = idx[order]
        ties = ties or bool(len(val) > 1 and np.any(np.diff(val[order]) == 0))
        written += len(idx)
        equal = 0
        for k in live:  # exactly the pivot: already in (run, position) order
            stop = int(np.searchsorted(runs[k], pivot, side="right"))
            out[written : written + stop - below[k]] = np.arange(offsets[k] + below[k], offsets[k] + stop)
            written += stop - below[k]
            equal += stop - below[k]
            cursors[k] = stop
        ties = ties or equal > 1
    assert written == offsets[-1], "merge lost sequences: a run was not sorted"
    return ties


def save_array(path: Path, array_writer: Callable[[np.ndarray], object], n: int, dtype: type = np.int64) -> object:
    """Create ``path`` as an .npy of ``n`` items through a temp name; ``array_writer`` fills it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(n,))
        result = array_writer(out)
        out.flush()
        del out
    return result


def _group_end(values_at: Callable[[int, int], np.ndarray], n: int, end: int) -> int:
    """The first position >= ``end`` whose score differs from position end - 1's (or n)."""
    if end >= n:
        return n
    last = values_at(end - 1, end)[0]
    step = 1 << 12
    while end < n:
        piece = values_at(end, min(end + step, n))
        differs = np.flatnonzero(piece != last)
        if differs.size:
            return end + int(differs[0])
        end, step = end + len(piece), step * 2
    return n


def keyed_rank_order(
    ascending: np.ndarray,
    scores_along: Callable[[int, int], np.ndarray],
    out: np.ndarray,
    descending: bool,
    key: int,
    chunk: int = CHUNK,
) -> None:
    """Write into ``out`` the rank order `stable_rank_order(scores, descending, key)` gives, from
    the merged ascending order and ``scores_along(a, b)`` (the scores of ascending[a:b]): ties are
    broken by the keyed shuffle of the sequence index. Works in windows of about ``chunk``
    positions cut at score changes, so memory is O(chunk + the largest group of equal scores)."""
    n = len(ascending)
    tie_key = derive_key(key, "ties")
    start = 0
    while start < n:
        stop = _group_end(scores_along, n, min(start + chunk, n))
        m = np.asarray(ascending[start:stop])
        primary = np.asarray(scores_along(start, stop), dtype=np.float64)
        ranked = m[np.lexsort((permute(m, n, tie_key), -primary if descending else primary))]
        if descending:  # windows are whole tie groups: reversing their order is exact
            out[n - stop : n - start] = ranked
        else:
            out[start:stop] = ranked
        start = stop
