"""One unit of `prepare`: read -> score (batched) -> split -> tokenize -> pack -> one shard.

`run_unit(job, index)` is all a worker (a local process, a datatrove task, a Slurm array task)
runs. It is idempotent: a unit whose shard exists returns at once, and a unit killed midway
leaves only a temporary folder that the retry ignores. The tokenizer (trained or copied before
any unit starts) and the scorers are loaded once per process.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curriculum.config import DataConfig
from curriculum.errors import UserError
from curriculum.store.prepare.readers import read_unit
from curriculum.store.shards import read_shard_info, write_shard

ENCODE_BATCH_DOCS = 1000
_PROCESS_CACHE: dict[Any, Any] = {}


@dataclass(frozen=True)
class Job:
    """Everything a worker needs, picklable: the `data` section, the store folder and the units."""

    data: DataConfig
    root: str
    units: tuple[dict[str, Any], ...]
    eos_id: int
    vocab_size: int

    @property
    def token_dtype(self) -> np.dtype:
        return np.dtype(np.uint16 if self.vocab_size <= 1 << 16 else np.uint32)

    def shard_folder(self, index: int) -> Path:
        return Path(self.root) / "shards" / self.units[index]["name"]


def val_mask(domain: str, ids: list[str], fraction: float) -> np.ndarray:
    """True for documents held out for validation: a hash of (domain, id) below ``fraction``."""
    if fraction <= 0:
        return np.zeros(len(ids), dtype=bool)
    cut = int(fraction * 2**64)
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(f"{domain}\0{i}".encode(), digest_size=8).digest(), "little") < cut
            for i in ids
        ),
        dtype=bool,
        count=len(ids),
    )


def id_tiebreak(ids: list[str]) -> np.ndarray:
    """A deterministic pseudo-random key per document, to break score ties without favouring file order."""
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little") >> 1 for i in ids),
        dtype=np.int64,
        count=len(ids),
    )


def _tokenizer(root: str) -> Any:
    from tokenizers import Tokenizer

    key = ("tokenizer", root)
    if key not in _PROCESS_CACHE:
        _PROCESS_CACHE[key] = Tokenizer.from_file(str(Path(root) / "tokenizer" / "tokenizer.json"))
    return _PROCESS_CACHE[key]


def _scorer(job: Job, domain: str) -> Any:
    config = job.data.domains[domain].scorer
    if config is None:
        return None
    key = ("scorer", job.root, domain)
    if key not in _PROCESS_CACHE:
        from curriculum.scorers import build_scorer

        _PROCESS_CACHE[key] = build_scorer(config)
    return _PROCESS_CACHE[key]


def encode(backend: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(flat token ids, lengths) of ``texts``: the Rust encoder in batches, flattened in C."""
    lengths = np.zeros(len(texts), dtype=np.int64)
    parts = []
    fast = getattr(backend, "encode_batch_fast", backend.encode_batch)  # no offsets: faster
    for start in range(0, len(texts), ENCODE_BATCH_DOCS):
        ids = [e.ids for e in fast(texts[start : start + ENCODE_BATCH_DOCS], add_special_tokens=False)]
        lens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        lengths[start : start + len(ids)] = lens
        parts.append(np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lens.sum())))
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return flat, lengths


def token_column(table: pa.Table, field: str, vocab_size: int, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, lengths) of a list-of-ints column, straight from its arrow buffers."""
    column = table.column(field).combine_chunks()
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        raise UserError(f"{origin}: column {field!r} holds {column.type}, not lists of token ids")
    offsets = column.offsets.to_numpy()
    values = column.values.slice(offsets[0], offsets[-1] - offsets[0])
    if not pa.types.is_integer(values.type) or values.null_count:  # floats would be truncated, nulls become garbage
        raise UserError(
            f"{origin}: column {field!r} holds lists of {values.type}"
            + (f" with {values.null_count} nulls" if values.null_count else "")
            + ", expected lists of integer token ids"
        )
    flat = values.to_numpy(zero_copy_only=False).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= vocab_size):
        raise UserError(f"{origin}: token ids in {field!r} fall outside the tokenizer's vocabulary of {vocab_size}")
    return flat, np.diff(offsets).astype(np.int64)


def score_table(scorer: Any, table: pa.Table, origin: str) -> np.ndarray:
    """Scores of every row, in batches, in this process (GPU for model scorers when present)."""
    import datasets

    if scorer is None:
        return np.zeros(table.num_rows, dtype=np.float64)
    missing = [c for c in scorer.input_columns() if c not in table.column_names]
    if missing:
        raise UserError(f"{origin}: the {scorer.config.name} scorer reads columns {missing}, which the documents lack")
    view = datasets.Dataset(datasets.table.InMemoryTable(table.select(scorer.input_columns())))
    quiet = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # the units' bar is the progress; one bar per unit is noise
    try:
        scores = scorer.score_dataset(view, num_proc=None, desc=f"score {origin}")
    finally:
        if not quiet:
            datasets.enable_progress_bars()
    if scores.shape != (table.num_rows,) or not np.all(np.isfinite(scores)):
        raise AssertionError(f"scorer {scorer.config.name} returned a bad score array for {origin}")
    return scores


def run_unit(job: Job, index: int) -> dict[str, Any]:
    """Write unit ``index``'s shard (or find it written); returns its shard info plus timing."""
    final = job.shard_folder(index)
    done = read_shard_info(final)
    if done is not None:
        return {**done, "skipped": True}
    started = time.perf_counter()
    unit = job.units[index]
    domain = unit["domain"]
    source = job.data.domains[domain].sources[unit["source"]]
    origin = f"unit {unit['name']}"
    table = read_unit(source, unit, source_name=f"{domain}/{unit['source']}")
    ids = table.column("id").to_pylist()
    scores = score_table(_scorer(job, domain), table, origin)
    if source.tokens_field:
        flat, lengths = token_column(table, source.tokens_field, job.vocab_size, origin)
    else:
        flat, lengths = encode(_tokenizer(job.root), table.column("text").to_pylist())
    final.parent.mkdir(parents=True, exist_ok=True)
    info = write_shard(
        final,
        domain=domain,
        unit={k: unit[k] for k in ("index", "name", "files", "start", "stop")},
        ids=ids,
        scores=scores,
        tiebreak=id_tiebreak(ids),
        is_val=val_mask(domain, ids, job.data.val_fraction),
        flat_tokens=flat,
        lengths=lengths,
        seq_len=job.data.seq_len,
        token_dtype=job.token_dtype,
        eos_id=job.eos_id,
    )
    return {**info, "skipped": False, "seconds": time.perf_counter() - started, "input_tokens": int(lengths.sum())}
