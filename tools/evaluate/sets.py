"""Evaluation sets opened for measuring: which sequences, their domain and source, and their bytes.

A token store holds tokens only, so bits per byte needs the text's size: each evaluated sequence's
predicted tokens (all but the first) are decoded once with the store's tokenizer and their UTF-8
bytes counted, when the set is opened (a cache per set, reused by every evaluation of a run and by
every model `currimix eval` compares). Special tokens (the document separator) decode to no bytes;
their loss still counts, as it does for every token-level metric. A set's store must use the same
tokenizer as the model (checked here against a reference tokenizer folder).

Sources: a domain read from several `sources` gets a per-source figure; the store records which
unit of work (hence which source) packed each shard (`units.json`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curriculum.errors import UserError
from curriculum.store.reader import TokenSplit, TokenStore
from curriculum.tokenizer import load_tokenizer
from tools.evaluate.config import EvalSetConfig


@dataclass
class EvalSet:
    """One evaluation set, ready to measure: for each evaluated sequence its split, id, domain, source and bytes."""

    name: str
    store: TokenStore
    parts: list[tuple[TokenSplit, np.ndarray]]  # (split, ids) in evaluation order
    domain: np.ndarray  # domain index of each evaluated sequence (concatenated over parts)
    source: np.ndarray  # index into source_names, -1 when a domain has one source
    source_names: list[str]  # "<domain>/<source index>"
    n_bytes: np.ndarray | None  # UTF-8 bytes of each sequence's predicted tokens; None without bits per byte

    @property
    def domain_names(self) -> list[str]:
        return self.store.domain_names

    def __len__(self) -> int:
        return len(self.domain)


def tokenizer_digest(folder: str | Path) -> str | None:
    """A hash of a tokenizer folder's vocabulary and merges (tokenizer.json's model), None when there is none."""
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        model = json.loads(path.read_text()).get("model", {})
    except (OSError, json.JSONDecodeError, AttributeError):
        raise UserError(f"{str(path)!r} is not a readable tokenizer.json") from None
    return hashlib.sha256(json.dumps(model, sort_keys=True).encode()).hexdigest()[:16]


def check_same_tokenizer(store: TokenStore, reference: str | Path, what: str) -> None:
    """Refuse a store whose tokenizer is not ``reference`` (the model's): its losses would mean nothing."""
    mine, theirs = tokenizer_digest(store.tokenizer_path), tokenizer_digest(reference)
    if mine is not None and theirs is not None and mine != theirs:
        raise UserError(
            f"token store {str(store.root)!r} was tokenized with another tokenizer than {what} "
            f"({reference}): prepare it with tokenizer.path set to that tokenizer folder"
        )


def sample_ids(split: TokenSplit, per_domain: int | None) -> dict[int, np.ndarray]:
    """Each domain's evaluated ids: all, or ``per_domain`` evenly spaced (the split is in score order,
    so the first N would measure only the lowest-quality text)."""
    out = {}
    for d in range(len(split.domain_names)):
        start, stop = split.domain_range(d)
        n = stop - start if per_domain is None else min(per_domain, stop - start)
        if n:
            out[d] = np.unique(np.linspace(start, stop - 1, n).round().astype(np.int64))
    return out


def source_of_segments(store: TokenStore, split: TokenSplit) -> dict[int, int]:
    """{segment start id: source index} from the store's units (format 2 stores), else {}."""
    units_file = store.root / "units.json"
    if not units_file.is_file():
        return {}
    try:
        units = {u["name"]: int(u["source"]) for u in json.loads(units_file.read_text())}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return {}
    return {seg.start: units[seg.folder.parent.name] for seg in split.segments if seg.folder.parent.name in units}


def sequence_sources(store: TokenStore, split: TokenSplit, ids: np.ndarray) -> np.ndarray:
    """The source index of each id (-1 where unknown)."""
    by_start = source_of_segments(store, split)
    if not by_start or not len(ids):
        return np.full(len(ids), -1, dtype=np.int64)
    starts = np.array([seg.start for seg in split.segments], dtype=np.int64)
    seg = np.searchsorted(starts, ids, side="right") - 1
    return np.array([by_start.get(int(starts[s]), -1) for s in seg], dtype=np.int64)


def count_bytes(split: TokenSplit, ids: np.ndarray, tokenizer, chunk: int = 256) -> np.ndarray:
    """UTF-8 bytes of each sequence's predicted tokens (tokens[1:]), decoded with ``tokenizer``."""
    out = np.zeros(len(ids), dtype=np.int64)
    for start in range(0, len(ids), chunk):
        rows = split.sequences(ids[start : start + chunk])[:, 1:].tolist()
        texts = tokenizer.batch_decode(rows, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        out[start : start + chunk] = [len(t.encode("utf-8")) for t in texts]
    return out


def open_eval_set(
    name: str,
    config: EvalSetConfig,
    training_store: str | Path | None,
    *,
    bits_per_byte: bool = True,
    per_domain: int | None = None,
    reference_tokenizer: str | Path | None = None,
) -> EvalSet | None:
    """Open set ``name``: its store (or ``training_store``), its sequences (capped by the set's and by
    ``per_domain``, the smaller), their sources and, with ``bits_per_byte``, their bytes. None when the
    set reads the training store and its split is empty (a store without validation sequences)."""
    root = config.store or training_store
    if root is None:
        raise UserError(f"evaluation.sets.{name}: no store given and no training store to fall back on")
    store = TokenStore(root)
    if reference_tokenizer is not None:
        check_same_tokenizer(store, reference_tokenizer, "the model")
    split_name = config.resolved_split()
    splits = ["train", "val"] if split_name == "all" else [split_name]
    caps = [c for c in (config.sequences_per_domain, per_domain) if c is not None]
    cap = min(caps) if caps else None
    tokenizer = load_tokenizer(store.tokenizer_path) if bits_per_byte else None
    parts, domains, sources, n_bytes = [], [], [], []
    for split in (store.splits[s] for s in splits):
        chosen = sample_ids(split, cap)
        if not chosen:
            continue
        ids = np.concatenate(list(chosen.values()))
        parts.append((split, ids))
        domains.append(np.concatenate([np.full(len(v), d, dtype=np.int64) for d, v in chosen.items()]))
        sources.append(sequence_sources(store, split, ids))
        if tokenizer is not None:
            n_bytes.append(count_bytes(split, ids, tokenizer))
    if not parts:
        if config.store is None:  # the training store has no such sequences (val_fraction 0): nothing to measure
            return None
        where = f"store {str(store.root)!r}, split {split_name!r}"
        raise UserError(f"evaluation.sets.{name}: {where} holds no sequences to evaluate")
    domain = np.concatenate(domains)
    source = np.concatenate(sources)
    # A per-source figure only where a domain has more than one source (else it is the domain's).
    names: dict[tuple[int, int], int] = {}
    labels: list[str] = []
    per_domain_sources = {d: set(source[domain == d].tolist()) for d in np.unique(domain).tolist()}
    flat = np.full(len(source), -1, dtype=np.int64)
    for i, (d, s) in enumerate(zip(domain.tolist(), source.tolist())):
        if s < 0 or len(per_domain_sources[d]) < 2:
            continue
        if (d, s) not in names:
            names[(d, s)] = len(labels)
            labels.append(f"{store.domain_names[d]}/source{s}")
        flat[i] = names[(d, s)]
    return EvalSet(name, store, parts, domain, flat, labels, np.concatenate(n_bytes) if n_bytes else None)
