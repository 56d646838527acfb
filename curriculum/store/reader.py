"""The packed-token store, read side: a manifest plus shards, every per-sequence array memory-mapped.

Layout of a store folder (written by `tools/prepare`; see `curriculum/store/shards.py` for a shard)::

    manifest.json        format 2: seq_len, token dtype, EOS id, domains, the shards in order,
                         per-domain stats; written LAST, so a folder without it is not a store
    units.json           the units of work `prepare` cut the inputs into
    tokenizer/           the transformers tokenizer that made the tokens
    shards/<unit>/       one folder per unit of work (one domain each), written once, atomically
    orders/train/<d>.npy each domain's ascending score order (a merge of the shards' sorted runs)
    orders/keyed/        tie-broken rank orders per (domain, direction, seed key), computed on
                         first use and memory-mapped afterwards (caches: not in the checksums;
                         their header and length are checked when loaded)

The manifest's schema is `curriculum.store.manifest`; its ``checksums`` list every file's size and
SHA-256 (`curriculum.store.checksums`). Opening a store checks the manifest, each shard's tokens.bin
size and score.npy header, and the sizes and sampled blocks of the files training reads;
`verify_store` (``currimix store verify``) reads every byte.

A split's sequences have global ids: domain by domain (in manifest order), shard by shard.
Readers keep O(shards) state (offsets, lazily opened memory maps); nothing is loaded whole,
so a training rank's memory does not grow with the corpus.

Format 1 stores (one ``train/`` and ``val/`` folder with ``meta.json``) are still read: they are
a single shard holding every domain, and their sorted orders are merged in memory on use.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curriculum.errors import UserError
from curriculum.store.checksums import check_sampled, verify_all
from curriculum.store.merge import keyed_rank_order, merge_runs, save_array
from curriculum.validation import (
    check_domain_ids,
    check_store_array,
    check_tokens_file,
    load_store_array,
    read_store_meta,
)

STORE_FORMAT = 2
LEGACY_FORMAT = 1
MANIFEST = "manifest.json"
LEGACY_META = "meta.json"
SPLITS = ("train", "val")
OPEN_SHARDS = 256  # memory maps kept open at once (each holds a file descriptor)
QUINTILES = 5  # quality fifths, as the evaluation and the plan report bin `score_quantiles`


def quintile_of(quantiles: np.ndarray) -> np.ndarray:
    """Quintile 0..4 of within-domain quantiles in (0, 1) (`TokenSplit.score_quantiles`); 4 is the best fifth."""
    return np.minimum((np.asarray(quantiles) * QUINTILES).astype(np.int64), QUINTILES - 1)


def store_marker(root: str | Path) -> Path | None:
    """The file that makes ``root`` a finished store (its manifest, or a legacy meta.json), if any."""
    root = Path(root)
    return next((p for p in (root / MANIFEST, root / LEGACY_META) if p.is_file()), None)


def is_complete_store(root: str | Path) -> bool:
    """Whether ``root`` holds a finished store (its manifest, or a legacy meta.json)."""
    return store_marker(root) is not None


@dataclass(frozen=True)
class Segment:
    """A run of a split's global ids stored contiguously in one shard folder."""

    start: int  # first global id
    length: int
    folder: Path  # the shard's split folder
    row0: int  # first row inside that folder
    domain: int


class Column:
    """A per-sequence array of a split, gathered from the shards on indexing (never loaded whole)."""

    def __init__(self, split: "TokenSplit", name: str):
        self.split, self.name = split, name

    def __len__(self) -> int:
        return len(self.split)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.split), *self.split.row_shape(self.name))

    @property
    def dtype(self) -> np.dtype:
        return self.split.token_dtype if self.name == "tokens" else np.dtype(np.float32)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self.split.gather(self.name, np.arange(*index.indices(len(self))))
        if np.isscalar(index):
            return self.split.gather(self.name, np.array([index], dtype=np.int64))[0]
        return self.split.gather(self.name, np.asarray(index, dtype=np.int64))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class DomainScores:
    """One domain's sequence scores (local index 0..n-1), lazy, with its sorted orders."""

    def __init__(self, split: "TokenSplit", domain: int):
        self.split, self.domain = split, domain
        self.start, stop = split.domain_range(domain)
        self.n = stop - self.start

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self.split.score[self.start + np.arange(*index.indices(self.n))]
        return self.split.score[self.start + np.asarray(index, dtype=np.int64)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def rank_order(self, descending: bool, key: int) -> np.ndarray:
        """Local indices by score (ties by a keyed shuffle), as `stable_rank_order` would give."""
        return self.split.rank_order(self.domain, descending, key)


class TokenSplit:
    """Read side of one split over its segments; see the module docstring."""

    def __init__(
        self,
        segments: list[Segment],
        seq_len: int,
        token_dtype: str,
        domain_names: list[str],
        orders_dir: Path,
        split: str,
        order_files: dict[str, dict[str, Any]] | None = None,
    ):
        self.segments = segments
        self.seq_len = seq_len
        self.token_dtype = np.dtype(token_dtype)
        self.domain_names = domain_names
        self.orders_dir = orders_dir
        self.split = split
        self.order_files = order_files or {}
        self._starts = np.array([s.start for s in segments], dtype=np.int64)
        self._n = segments[-1].start + segments[-1].length if segments else 0
        counts = np.zeros(len(domain_names), dtype=np.int64)
        for s in segments:
            counts[s.domain] += s.length
        self.domain_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._open = lru_cache(maxsize=OPEN_SHARDS)(self._open_uncached)
        self.score = Column(self, "score")
        self.tokens = Column(self, "tokens")

    def __len__(self) -> int:
        return self._n

    def row_shape(self, name: str) -> tuple[int, ...]:
        return (self.seq_len,) if name == "tokens" else ()

    def check_files(self) -> None:
        """Each folder's tokens.bin size and score.npy header match the manifest's counts (stat and a
        header read per shard: damage is reported when the store opens, not mid-run)."""
        rows: dict[Path, int] = {}
        for s in self.segments:
            rows[s.folder] = max(rows.get(s.folder, 0), s.row0 + s.length)
        for folder, n in rows.items():
            check_tokens_file(folder / "tokens.bin", n, self.seq_len * self.token_dtype.itemsize)
            check_store_array(folder / "score.npy", "f", n)

    def _open_uncached(self, folder: Path, name: str) -> np.ndarray:
        if name == "score":
            return load_store_array(folder / "score.npy", "f", mmap=True)
        path = folder / "tokens.bin"
        rows = path.stat().st_size // (self.seq_len * self.token_dtype.itemsize)
        if rows == 0:
            return np.zeros((0, self.seq_len), dtype=self.token_dtype)
        return np.memmap(path, dtype=self.token_dtype, mode="r", shape=(rows, self.seq_len))

    def gather(self, name: str, ids: np.ndarray) -> np.ndarray:
        """Rows of array ``name`` for global ids (reads each shard in sorted row order)."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self._n):
            raise IndexError(f"sequence ids must lie in [0, {self._n})")
        out = np.empty((len(ids), *self.row_shape(name)), dtype=Column(self, name).dtype)
        if not ids.size:
            return out
        # One sort by global id groups the ids by segment, each group already in row order: O(n log n),
        # not a pass over all ids per segment touched (a window of a large domain touches every shard).
        order = np.argsort(ids, kind="stable")
        ordered = ids[order]
        seg = np.searchsorted(self._starts, ordered, side="right") - 1
        cuts = (np.flatnonzero(np.diff(seg)) + 1).tolist()
        for a, b in zip([0, *cuts], [*cuts, len(ids)]):
            segment = self.segments[seg[a]]
            local = ordered[a:b] - segment.start + segment.row0
            out[order[a:b]] = self._open(segment.folder, name)[local]
        return out

    # ------------------------------------------------------------------ the API training uses
    @property
    def domain(self) -> np.ndarray:
        """Domain index per sequence (built from the segment table; small stores and tests only)."""
        return np.repeat(np.arange(len(self.domain_names), dtype=np.int16), np.diff(self.domain_offsets))

    def domain_range(self, index: int) -> tuple[int, int]:
        return int(self.domain_offsets[index]), int(self.domain_offsets[index + 1])

    def domain_scores(self, index: int) -> DomainScores:
        return DomainScores(self, index)

    def sequences(self, ids: np.ndarray) -> np.ndarray:
        """Token rows for global sequence ids, as int64 [len(ids), seq_len] (in the ids' order)."""
        return self.gather("tokens", ids).astype(np.int64)

    def locate(self, sequence_id: int) -> tuple[Path, int]:
        """(shard split folder, row inside it) of a global sequence id."""
        if not 0 <= sequence_id < self._n:
            raise IndexError(f"sequence id {sequence_id} outside [0, {self._n})")
        segment = self.segments[int(np.searchsorted(self._starts, sequence_id, side="right") - 1)]
        return segment.folder, sequence_id - segment.start + segment.row0

    def documents_of(self, sequence_id: int) -> pa.Table:
        """The documents (domain, id, score, tokens) packed into one sequence, in packing order."""
        folder, row = self.locate(sequence_id)
        offsets = load_store_array(folder / "doc_offsets.npy", "i", mmap=True)
        index = load_store_array(folder / "doc_index.npy", "i", mmap=True)
        rows = np.asarray(index[offsets[row] : offsets[row + 1]])
        return pq.read_table(folder / "documents.parquet").take(pa.array(rows))

    # ------------------------------------------------------------------ sorted orders
    def _domain_runs(self, domain: int) -> list[np.ndarray]:
        return [self._open(s.folder, "score")[s.row0 : s.row0 + s.length] for s in self.segments if s.domain == domain]

    def score_quantiles(self, domain: int, scores: np.ndarray) -> np.ndarray:
        """Within-domain quality quantile in (0, 1) of each score (ties share their mean rank), by
        binary search in the domain's sorted shard runs: O(len(scores) x shards x log), never the
        whole domain; comparable across domains scored on different scales."""
        start, stop = self.domain_range(domain)
        values = np.asarray(scores, dtype=np.float32)  # the store's own precision: equal scores tie
        below = np.zeros(len(values), dtype=np.int64)
        at_or_below = np.zeros(len(values), dtype=np.int64)
        for run in self._domain_runs(domain):
            below += np.searchsorted(run, values, side="left")
            at_or_below += np.searchsorted(run, values, side="right")
        return ((below + at_or_below - 1) / 2 + 0.5) / max(stop - start, 1)

    def score_range(self, domain: int) -> tuple[float, float] | None:
        """(lowest, highest) sequence score of a domain, from its sorted runs' ends."""
        runs = [run for run in self._domain_runs(domain) if len(run)]
        if not runs:
            return None
        return float(min(run[0] for run in runs)), float(max(run[-1] for run in runs))

    def ascending_order(self, domain: int) -> tuple[np.ndarray, bool]:
        """(local indices in ascending score order, whether any scores tie): the saved merge when the
        store has one (memory-mapped), else merged now."""
        name = self.domain_names[domain]
        saved = self.order_files.get(name)
        start, stop = self.domain_range(domain)
        if saved is not None:
            path = self.orders_dir.parent / saved["file"]
            return load_store_array(path, "i", stop - start, mmap=True), bool(saved["ties"])
        out = np.empty(stop - start, dtype=np.int64)
        ties = merge_runs(self._domain_runs(domain), out)
        return out, ties

    def rank_order(self, domain: int, descending: bool, key: int) -> np.ndarray:
        """A domain's rank order with keyed ties, computed once per key and memory-mapped after."""
        ascending, ties = self.ascending_order(domain)
        if not ties:  # the merge is already the unique order
            return ascending[::-1] if descending else ascending
        name = self.domain_names[domain]
        path = self.orders_dir / "keyed" / f"{self.split}-{name}-{'desc' if descending else 'asc'}-{key:016x}.npy"
        if path.is_file():  # a cache of this process or an earlier one: its header and length are checked
            return load_store_array(path, "i", len(ascending), mmap=True)
        start = int(self.domain_offsets[domain])

        def scores_along(a: int, b: int) -> np.ndarray:
            return self.score[start + np.asarray(ascending[a:b])]

        def fill(out: np.ndarray) -> None:
            keyed_rank_order(ascending, scores_along, out, descending, key)

        try:
            save_array(path, fill, len(ascending))
        except OSError:  # a read-only store: keep the order in memory for this process
            order = np.empty(len(ascending), dtype=np.int64)
            fill(order)
            return order
        return np.load(path, mmap_mode="r")


class TokenStore:
    """A complete store folder: manifest, tokenizer path and the train / val splits."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if (self.root / MANIFEST).is_file():
            self.meta: dict[str, Any] = read_store_meta(self.root / MANIFEST, (STORE_FORMAT,))
        elif (self.root / LEGACY_META).is_file():
            self.meta = read_store_meta(self.root / LEGACY_META, (LEGACY_FORMAT,))
        else:
            hint = (
                " (an interrupted `prepare` leaves shards without a manifest; run `currimix prepare` "
                "again and it finishes the missing units)"
                if self.root.exists()
                else ""
            )
            raise UserError(
                f"{str(self.root)!r} is not a complete token store: no {MANIFEST}{hint}; run `currimix prepare` first"
            )
        self.seq_len: int = self.meta["seq_len"]
        self.domain_names: list[str] = list(self.meta["domains"])
        self.eos_id: int = self.meta["eos_id"]
        self.vocab_size: int = self.meta["vocab_size"]
        orders = self.meta.get("orders", {})
        self.splits = {
            split: TokenSplit(
                self._segments(split),
                self.seq_len,
                self.meta["token_dtype"],
                self.domain_names,
                self.root / "orders",
                split,
                orders.get(split),
            )
            for split in SPLITS
        }
        for split in self.splits.values():
            split.check_files()
        for name, entry in orders.get("train", {}).items():  # headers first: a clearer message than a checksum
            start, stop = self.train.domain_range(self.domain_names.index(name))
            check_store_array(self.root / entry["file"], "i", stop - start)
        self._check_sampled()

    @property
    def checksums(self) -> dict[str, dict[str, Any]] | None:
        """{store-relative path: size and checksums} written by `prepare`; None for older stores."""
        return self.meta.get("checksums")

    def read_files(self) -> list[str]:
        """Store-relative paths of the files training reads: tokens and scores of every shard, merged orders."""
        names = [
            f"shards/{shard['name']}/{split}/{name}"
            for shard in self.meta.get("shards", [])
            for split in SPLITS
            if shard["splits"][split]["sequences"]  # what `_segments` reads
            for name in ("tokens.bin", "score.npy")
        ]
        return names + [entry["file"] for entry in self.meta.get("orders", {}).get("train", {}).values()]

    def _check_sampled(self) -> None:
        """Sizes and sampled blocks of the files training reads (a few hundred KiB per shard): a file
        rewritten with other bytes is refused here, not trained on. A store without checksums (format 1,
        or written before they existed) still opens, with a note: refusing it would force a rebuild of
        every existing store, and its sizes and headers are still checked above."""
        if self.checksums is None:
            _note_once(
                f"note: token store {str(self.root)!r} has no checksums (written by an older currimix), so damage "
                "that keeps file sizes is not detected; `currimix prepare --overwrite` rebuilds it with them"
            )
            return
        problems = check_sampled(self.root, self.checksums, self.read_files())
        if problems:
            raise UserError(
                f"token store {str(self.root)!r} is damaged: {len(problems)} file(s) changed since `prepare` wrote "
                f"them; run `currimix store verify {self.root}` for a full check and `currimix prepare --overwrite` "
                "to rebuild the store:",
                problems,
            )

    def _segments(self, split: str) -> list[Segment]:
        segments, start = [], 0
        if self.meta["format"] == LEGACY_FORMAT:  # one folder, domains contiguous in meta order
            domain = load_store_array(self.root / split / "domain.npy", "i")
            check_domain_ids(domain, len(self.domain_names), self.root / split / "domain.npy")
            counts = np.bincount(domain.astype(np.int64), minlength=len(self.domain_names))
            row = 0
            for d, name in enumerate(self.domain_names):
                n = int(self.meta["stats"][split][name]["sequences"])
                if n != counts[d]:
                    raise UserError(
                        f"{self.root / split / 'domain.npy'} has {counts[d]} sequences of {name!r}, meta.json says "
                        f"{n}; the store is damaged, run `currimix prepare --overwrite` to rebuild it"
                    )
                if n:
                    segments.append(Segment(start, n, self.root / split, row, d))
                start, row = start + n, row + n
            return segments
        index = {name: d for d, name in enumerate(self.domain_names)}
        for shard in self.meta["shards"]:  # already in (domain, unit) order
            n = int(shard["splits"][split]["sequences"])
            if n:
                segments.append(
                    Segment(start, n, self.root / "shards" / shard["name"] / split, 0, index[shard["domain"]])
                )
                start += n
        return segments

    @property
    def train(self) -> TokenSplit:
        return self.splits["train"]

    @property
    def val(self) -> TokenSplit:
        return self.splits["val"]

    @property
    def tokenizer_path(self) -> Path:
        return self.root / "tokenizer"

    @property
    def shard_count(self) -> int:
        return len(self.meta.get("shards", [None]))

    def domain_stats(self, split: str = "train") -> dict[str, dict[str, Any]]:
        return {name: self.meta["stats"][split][name] for name in self.domain_names}


def verify_store(root: str | Path, on_file: Any = None) -> tuple[int, list[str]]:
    """(files checked, ``path why`` per damaged file): every file the manifest lists, read whole and
    compared with its size and SHA-256 (``on_file(name, size)`` after each, for progress). The
    manifest itself is checked first (schema, layout digest); a store without checksums cannot be
    verified and says so."""
    root = Path(root)
    if not (root / MANIFEST).is_file():
        TokenStore(root)  # the same message as any command: no manifest, or a format-1 store
        raise UserError(
            f"token store {str(root)!r} is a format-1 store, which has no checksums to verify against; "
            "`currimix prepare --overwrite` rebuilds it in the current format"
        )
    meta = read_store_meta(root / MANIFEST, (STORE_FORMAT,))
    checksums = meta.get("checksums")
    if checksums is None:
        raise UserError(
            f"token store {str(root)!r} has no checksums (written by an older currimix), so it cannot be verified "
            "(opening it still checks sizes and headers); `currimix prepare --overwrite` rebuilds it with them"
        )
    return len(checksums), verify_all(root, checksums, on_file)


_NOTED: set[str] = set()


def _note_once(message: str) -> None:
    """A note on stderr, once per process (every rank and every open of a store would repeat it)."""
    if message not in _NOTED and os.environ.get("RANK", "0") == "0":
        _NOTED.add(message)
        print(message, file=sys.stderr)
