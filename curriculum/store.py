"""The packed-token store: fixed-length sequences in a flat memory-mapped array, metadata beside it.

Layout of a store folder (written by `tools/prepare.py`, atomically: a temp folder renamed at the end)::

    meta.json            format, seq_len, token dtype, EOS id, per-domain counts (written last)
    tokenizer/           the transformers tokenizer that made the tokens
    train/ val/          one split each:
      tokens.bin         uint16/uint32 tokens, sequence i = tokens[i*seq_len:(i+1)*seq_len]
      domain.npy         int16 domain id per sequence (domains are contiguous, in meta order)
      score.npy          float32 token-weighted quality score per sequence
      doc_offsets.npy    int64 [n+1]: sequence i holds documents doc_index[off[i]:off[i+1]]
      doc_index.npy      int64 row numbers into documents.parquet
      documents.parquet  one row per document: domain, id, score, tokens

Documents are packed in ascending score order within a domain, with EOS after each, so every
sequence is quality-homogeneous; the last partial sequence of a domain is dropped (and counted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curriculum.errors import UserError
from curriculum.validation import check_domain_ids, load_store_array, read_store_meta

STORE_FORMAT = 1
SPLITS = ("train", "val")


@dataclass
class DomainStats:
    """Per-domain, per-split counts recorded in meta.json."""

    documents: int = 0
    sequences: int = 0
    tokens: int = 0  # tokens in packed sequences
    dropped_tokens: int = 0  # tokens of the last, partial sequence
    score_min: float | None = None
    score_max: float | None = None


@dataclass
class SplitWriter:
    """Streams documents of one split into packed sequences (bounded memory)."""

    folder: Path
    seq_len: int
    token_dtype: np.dtype
    eos_id: int
    domain_names: list[str] = field(default_factory=list)
    stats: dict[str, DomainStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._tokens = open(self.folder / "tokens.bin", "wb")
        self._domains: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._doc_counts: list[np.ndarray] = []
        self._doc_refs: list[np.ndarray] = []
        self._documents = pq.ParquetWriter(
            self.folder / "documents.parquet",
            pa.schema([("domain", pa.string()), ("id", pa.string()), ("score", pa.float64()), ("tokens", pa.int64())]),
        )
        self._next_doc = 0
        self._domain: int | None = None

    def begin_domain(self, name: str) -> None:
        self.domain_names.append(name)
        self._domain = len(self.domain_names) - 1
        self.stats[name] = DomainStats()
        # Carry-over of a partial sequence: tokens, their document row and score.
        self._carry_tokens = np.zeros(0, dtype=np.int64)
        self._carry_docs = np.zeros(0, dtype=np.int64)
        self._carry_scores = np.zeros(0, dtype=np.float64)

    def add_documents(self, ids: list[str], token_lists: list[list[int]], scores: np.ndarray) -> None:
        """Append documents (already in packing order); each gets an EOS after it."""
        assert self._domain is not None, "begin_domain first"
        name = self.domain_names[self._domain]
        stats = self.stats[name]
        lengths = np.fromiter((len(t) + 1 for t in token_lists), dtype=np.int64, count=len(token_lists))
        flat = np.empty(int(lengths.sum()), dtype=np.int64)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        for s, toks in zip(starts, token_lists):
            flat[s : s + len(toks)] = toks
        flat[ends - 1] = self.eos_id
        rows = np.arange(self._next_doc, self._next_doc + len(ids), dtype=np.int64)
        self._documents.write_table(
            pa.table(
                {
                    "domain": [name] * len(ids),
                    "id": list(ids),
                    "score": np.asarray(scores, dtype=np.float64),
                    "tokens": lengths - 1,
                }
            )
        )
        self._next_doc += len(ids)
        stats.documents += len(ids)
        if len(ids):
            lo, hi = float(np.min(scores)), float(np.max(scores))
            stats.score_min = lo if stats.score_min is None else min(stats.score_min, lo)
            stats.score_max = hi if stats.score_max is None else max(stats.score_max, hi)

        tokens = np.concatenate([self._carry_tokens, flat])
        docs = np.concatenate([self._carry_docs, np.repeat(rows, lengths)])
        token_scores = np.concatenate([self._carry_scores, np.repeat(np.asarray(scores, np.float64), lengths)])
        full = len(tokens) // self.seq_len
        cut = full * self.seq_len
        self._carry_tokens, self._carry_docs, self._carry_scores = tokens[cut:], docs[cut:], token_scores[cut:]
        if full == 0:
            return
        self._tokens.write(tokens[:cut].astype(self.token_dtype).tobytes())
        seq_docs = docs[:cut].reshape(full, self.seq_len)
        starts_mask = np.ones_like(seq_docs, dtype=bool)
        starts_mask[:, 1:] = seq_docs[:, 1:] != seq_docs[:, :-1]
        self._domains.append(np.full(full, self._domain, dtype=np.int16))
        self._scores.append(token_scores[:cut].reshape(full, self.seq_len).mean(axis=1).astype(np.float32))
        self._doc_counts.append(starts_mask.sum(axis=1))
        self._doc_refs.append(seq_docs[starts_mask])
        stats.sequences += full
        stats.tokens += cut

    def end_domain(self) -> None:
        self.stats[self.domain_names[self._domain]].dropped_tokens = int(len(self._carry_tokens))
        self._domain = None

    def close(self) -> None:
        self._tokens.close()
        self._documents.close()

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        counts = cat(self._doc_counts, np.int64)
        np.save(self.folder / "domain.npy", cat(self._domains, np.int16))
        np.save(self.folder / "score.npy", cat(self._scores, np.float32))
        np.save(self.folder / "doc_offsets.npy", np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        np.save(self.folder / "doc_index.npy", cat(self._doc_refs, np.int64))


class TokenSplit:
    """Read side of one split: memory-mapped tokens and per-sequence metadata."""

    def __init__(self, folder: Path, seq_len: int, token_dtype: str, domain_names: list[str]):
        self.folder = folder
        self.seq_len = seq_len
        self.domain_names = domain_names
        self.domain = load_store_array(folder / "domain.npy", "i")
        check_domain_ids(self.domain, len(domain_names), folder / "domain.npy")
        self.score = load_store_array(folder / "score.npy", "f", len(self.domain))
        n = len(self.domain)
        if not (folder / "tokens.bin").is_file():
            raise UserError(
                f"token store {folder}: tokens.bin is missing; run `prepare --overwrite` to rebuild the store"
            )
        size = (folder / "tokens.bin").stat().st_size
        itemsize = np.dtype(token_dtype).itemsize
        if size != n * seq_len * itemsize:
            raise UserError(
                f"token store {folder}: tokens.bin has {size} bytes, expected {n} sequences x "
                f"{seq_len} tokens x {itemsize} bytes; the store is damaged, run `prepare` again"
            )
        self.tokens = (
            np.memmap(folder / "tokens.bin", dtype=token_dtype, mode="r", shape=(n, seq_len))
            if n
            else np.zeros((0, seq_len), dtype=token_dtype)
        )
        # Domains are contiguous: offsets[d] .. offsets[d+1].
        counts = np.bincount(self.domain.astype(np.int64), minlength=len(domain_names))
        self.domain_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.domain)

    def domain_range(self, index: int) -> tuple[int, int]:
        return int(self.domain_offsets[index]), int(self.domain_offsets[index + 1])

    def domain_scores(self, index: int) -> np.ndarray:
        start, stop = self.domain_range(index)
        return self.score[start:stop]

    def sequences(self, ids: np.ndarray) -> np.ndarray:
        """Token rows for global sequence ids, as int64 [len(ids), seq_len] (sorted reads, original order)."""
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        out = np.empty((len(ids), self.seq_len), dtype=np.int64)
        out[order] = self.tokens[ids[order]]
        return out

    def documents_of(self, sequence_id: int) -> np.ndarray:
        offsets = np.load(self.folder / "doc_offsets.npy", mmap_mode="r")
        index = np.load(self.folder / "doc_index.npy", mmap_mode="r")
        return np.asarray(index[offsets[sequence_id] : offsets[sequence_id + 1]])


class TokenStore:
    """A complete store folder: meta, tokenizer path and the train / val splits."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            hint = " (an interrupted `prepare` leaves only a `.tmp-*` folder)" if self.root.exists() else ""
            raise UserError(
                f"{str(self.root)!r} is not a complete token store: no meta.json{hint}; run `currimix prepare` first"
            )
        self.meta: dict[str, Any] = read_store_meta(self.root, STORE_FORMAT)
        if self.meta.get("format") != STORE_FORMAT:
            raise UserError(
                f"token store {str(self.root)!r} has format {self.meta.get('format')}, "
                f"this currimix reads format {STORE_FORMAT}; run `prepare` again"
            )
        self.seq_len: int = self.meta["seq_len"]
        self.domain_names: list[str] = list(self.meta["domains"])
        self.eos_id: int = self.meta["eos_id"]
        self.vocab_size: int = self.meta["vocab_size"]
        self.splits = {
            split: TokenSplit(self.root / split, self.seq_len, self.meta["token_dtype"], self.domain_names)
            for split in SPLITS
        }

    @property
    def train(self) -> TokenSplit:
        return self.splits["train"]

    @property
    def val(self) -> TokenSplit:
        return self.splits["val"]

    @property
    def tokenizer_path(self) -> Path:
        return self.root / "tokenizer"

    def domain_stats(self, split: str = "train") -> dict[str, dict[str, Any]]:
        return {name: self.meta["stats"][split][name] for name in self.domain_names}


def write_meta(
    root: Path,
    *,
    seq_len: int,
    token_dtype: str,
    eos_id: int,
    vocab_size: int,
    domains: list[str],
    stats: dict[str, dict[str, DomainStats]],
    extra: dict[str, Any],
) -> None:
    """Write meta.json (the marker of a complete store, so it is written last)."""
    meta = {
        "format": STORE_FORMAT,
        "seq_len": seq_len,
        "token_dtype": token_dtype,
        "eos_id": eos_id,
        "vocab_size": vocab_size,
        "domains": domains,
        "stats": {split: {name: vars(s) for name, s in per.items()} for split, per in stats.items()},
        **extra,
    }
    (root / "meta.json").write_text(json.dumps(meta, indent=2))
