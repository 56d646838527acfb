"""One shard of a token store: what one unit of `prepare` wrote, for one domain.

A shard folder holds, per split (``train/``, ``val/``)::

    tokens.bin         uint16/uint32 tokens, sequence i = tokens[i*seq_len:(i+1)*seq_len]
    score.npy          float32 token-weighted quality score per sequence, non-decreasing
    doc_offsets.npy    int64 [n+1]: sequence i holds documents doc_index[off[i]:off[i+1]]
    doc_index.npy      int64 row numbers into documents.parquet
    documents.parquet  one row per document, in packing order: domain, id, score, tokens
    tail.bin           the tokens after the last full sequence (kept, so the shard holds every
                       token of its documents; not trained on)

and ``shard.json`` (per-split counts, the unit's input, every file's size and checksums:
`curriculum.store.checksums`), written last. The whole folder is written
under a temporary name and renamed into place, so a shard either exists complete or not at all,
and it is never rewritten.

Packing works on whole arrays (no per-document Python): documents arrive with their tokens as
one flat array plus lengths, are put in ascending (score, tie-break) order, joined with EOS and
cut into sequences. A sequence's score is the token-weighted mean of its documents' scores,
computed from a cumulative score mass, so it costs O(documents + sequences).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curriculum.errors import UserError
from curriculum.files import temp_name
from curriculum.store.checksums import folder_checksums

SHARD_FILE = "shard.json"
SPLITS = ("train", "val")


@dataclass
class SplitCounts:
    """What one split of one shard holds (summed into the manifest's per-domain stats)."""

    documents: int = 0
    sequences: int = 0
    tokens: int = 0  # tokens in packed sequences
    dropped_tokens: int = 0  # tokens in tail.bin
    score_min: float | None = None
    score_max: float | None = None


def pack_split(
    folder: Path,
    *,
    domain: str,
    ids: list[str],
    scores: np.ndarray,
    flat_tokens: np.ndarray,
    lengths: np.ndarray,
    seq_len: int,
    token_dtype: np.dtype,
    eos_id: int,
) -> SplitCounts:
    """Pack documents (already in packing order) into ``folder``; each gets an EOS after it."""
    folder.mkdir(parents=True, exist_ok=True)
    scores = np.asarray(scores, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n_docs = len(lengths)
    with_eos = lengths + 1
    ends = np.cumsum(with_eos)
    starts = ends - with_eos
    total = int(ends[-1]) if n_docs else 0
    stream = np.empty(total, dtype=token_dtype)
    body = np.ones(total, dtype=bool)
    body[ends - 1] = False
    stream[body] = flat_tokens
    stream[ends - 1] = eos_id
    full = total // seq_len
    cut = full * seq_len
    stream[:cut].tofile(folder / "tokens.bin")
    stream[cut:].tofile(folder / "tail.bin")

    # Token-weighted mean score per sequence from the cumulative score mass F(x) (tokens [0, x)).
    mass = np.concatenate([[0.0], np.cumsum(with_eos * scores)])

    def cumulative(x: np.ndarray) -> np.ndarray:
        doc = np.clip(np.searchsorted(ends, x, side="right"), 0, max(n_docs - 1, 0))
        return mass[doc] + (x - starts[doc]) * scores[doc]

    bounds = np.arange(full + 1, dtype=np.int64) * seq_len
    seq_scores = (np.diff(cumulative(bounds)) / seq_len).astype(np.float32) if full else np.zeros(0, np.float32)
    # Exact arithmetic keeps these non-decreasing (windows over sorted values); float rounding may
    # not, and readers binary-search them, so round-off dips are lifted (at most one ulp or so).
    seq_scores = np.maximum.accumulate(seq_scores) if full else seq_scores
    np.save(folder / "score.npy", seq_scores)

    # Documents touching sequence k: from the one holding token k*S to the one holding (k+1)*S - 1.
    first = np.searchsorted(ends, bounds[:-1], side="right")
    last = np.searchsorted(ends, bounds[1:] - 1, side="right")
    counts = last - first + 1 if full else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    index = np.repeat(first - offsets[:-1], counts) + np.arange(int(offsets[-1]), dtype=np.int64)
    np.save(folder / "doc_offsets.npy", offsets)
    np.save(folder / "doc_index.npy", index.astype(np.int64))
    pq.write_table(
        pa.table(
            {
                "domain": pa.array([domain] * n_docs, pa.string()),
                "id": pa.array(ids, pa.string()),
                "score": scores,
                "tokens": lengths,
            }
        ),
        folder / "documents.parquet",
    )
    return SplitCounts(
        documents=n_docs,
        sequences=full,
        tokens=cut,
        dropped_tokens=total - cut,
        score_min=float(scores.min()) if n_docs else None,
        score_max=float(scores.max()) if n_docs else None,
    )


def packing_order(scores: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Ascending score, ties by a hashed key (never by file order)."""
    return np.lexsort((tiebreak, scores))


def gather_documents(flat: np.ndarray, lengths: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flat tokens, lengths) of documents ``rows`` in that order, by index arithmetic."""
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    picked = lengths[rows]
    new_starts = np.concatenate([[0], np.cumsum(picked)[:-1]]).astype(np.int64)
    index = np.repeat(starts[rows] - new_starts, picked) + np.arange(int(picked.sum()), dtype=np.int64)
    return flat[index], picked


def write_shard(
    final: Path,
    *,
    domain: str,
    unit: dict[str, Any],
    ids: list[str],
    scores: np.ndarray,
    tiebreak: np.ndarray,
    is_val: np.ndarray,
    flat_tokens: np.ndarray,
    lengths: np.ndarray,
    seq_len: int,
    token_dtype: np.dtype,
    eos_id: int,
) -> dict[str, Any]:
    """Write one unit's documents as the shard folder ``final`` (temp folder, then rename)."""
    tmp = temp_name(final)
    tmp.mkdir(parents=True)
    try:
        counts = {}
        for split in SPLITS:
            rows = np.flatnonzero(is_val == (split == "val"))
            rows = rows[packing_order(scores[rows], tiebreak[rows])]
            flat, lens = gather_documents(flat_tokens, lengths, rows)
            counts[split] = pack_split(
                tmp / split,
                domain=domain,
                ids=[ids[i] for i in rows],
                scores=scores[rows],
                flat_tokens=flat,
                lengths=lens,
                seq_len=seq_len,
                token_dtype=token_dtype,
                eos_id=eos_id,
            )
        # Hashed here, while the bytes are still in the page cache; `prepare` copies them into the manifest.
        files = {k: v for split in SPLITS for k, v in folder_checksums(tmp / split, f"{split}/").items()}
        info = {"domain": domain, "unit": unit, "splits": {s: asdict(c) for s, c in counts.items()}, "files": files}
        (tmp / SHARD_FILE).write_text(json.dumps(info, indent=2))
        try:
            os.replace(tmp, final)  # the shard appears complete, or not at all
        except OSError:
            if read_shard_info(final) is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # a retry of the same unit finished first: same content
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def read_shard_info(folder: Path) -> dict[str, Any] | None:
    """The shard's ``shard.json``, or None when the unit has not finished; one that cannot be read
    as a shard's record is a UserError naming it (it is written last and atomically, so only a
    hand edit or a failing disk gets there)."""
    path = folder / SHARD_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        info, why = None, f"is not valid JSON ({exc})"
    else:
        why = "lacks its domain or per-split counts"
    ok = (
        isinstance(info, dict)
        and isinstance(info.get("domain"), str)
        and isinstance(info.get("splits"), dict)
        and all(
            isinstance(info["splits"].get(s), dict)
            and all(
                isinstance(info["splits"][s].get(k), int) and info["splits"][s][k] >= 0
                for k in ("documents", "sequences", "tokens", "dropped_tokens")
            )
            for s in SPLITS
        )
    )
    if not ok:
        raise UserError(
            f"{path} {why}: the shard is damaged; delete the folder {str(folder)!r} and run `currimix prepare` "
            "again to rebuild that unit"
        )
    return info
