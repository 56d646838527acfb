"""`prepare`: documents per domain -> scored, tokenized, score-ordered packed token store.

Steps per domain: read the sources (`datasets`, arrow-backed), score every document, hold out a
deterministic validation subset (hash of the document id), tokenize (batched; Rust threads, or
`num_proc` worker processes), then stream documents in ascending score order into the packer.
Everything is written into a temporary folder next to the target and renamed into place only
when complete, so an interrupted run never leaves a store that looks finished.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import datasets
import numpy as np
from tqdm.auto import tqdm

from curriculum.documents import load_domain, resolve_files
from curriculum.errors import UserError
from curriculum.scorers import build_scorer
from curriculum.store import SPLITS, SplitWriter, TokenStore, write_meta
from curriculum.tokenizer import load_tokenizer, train_bpe
from curriculum.validation import check_unique_ids, is_token_store
from recipes.config import Recipe

BATCH_DOCS = 1000


@dataclass
class PreparedDomain:
    dataset: datasets.Dataset  # columns: id, text, score, is_val, tiebreak
    scorer: str


def check_inputs(recipe: Recipe) -> None:
    """Every source path and the tokenizer folder exist (all problems reported together)."""
    problems = []
    for name, domain in recipe.data.domains.items():
        for i, source in enumerate(domain.sources):
            try:
                resolve_files(source)
            except UserError as exc:
                problems.append(f"data.domains.{name}.sources.{i}.path: {exc}")
    if recipe.tokenizer.path and not Path(recipe.tokenizer.path).is_dir():
        problems.append(f"tokenizer.path: folder {recipe.tokenizer.path!r} does not exist")
    if problems:
        raise UserError(f"cannot prepare {recipe.name!r}:", problems)


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


def annotate(
    batch: dict[str, list], indices: list[int], domain: str, scores: np.ndarray, fraction: float
) -> dict[str, object]:
    """Score, validation flag and tie-break key of a batch (batch by batch: no column of Python
    strings is ever held whole in memory)."""
    return {
        "score": scores[indices],
        "is_val": val_mask(domain, batch["id"], fraction),
        "tiebreak": id_tiebreak(batch["id"]),
    }


def load_and_score(recipe: Recipe, cache_dir: str) -> dict[str, PreparedDomain]:
    out = {}
    for name, domain in recipe.data.domains.items():
        ds = load_domain(domain.sources, domain=name, cache_dir=cache_dir, num_proc=recipe.data.num_proc)
        if len(ds) == 0:
            raise UserError(f"data.domains.{name}: the sources hold no documents")
        check_unique_ids(ds, f"data.domains.{name}")
        if domain.scorer is None:
            scores, scorer_name = np.zeros(len(ds)), "none"
        else:
            scorer = build_scorer(domain.scorer)
            scores = scorer.score_dataset(ds, num_proc=recipe.data.num_proc, desc=f"score {name}")
            scorer_name = domain.scorer.name
            if scores.shape != (len(ds),) or not np.all(np.isfinite(scores)):
                raise AssertionError(f"scorer {scorer_name} returned a bad score array for {name}")
        ds = ds.select_columns(["id", "text"]).map(
            annotate,
            batched=True,
            with_indices=True,
            fn_kwargs={"domain": name, "scores": scores, "fraction": recipe.data.val_fraction},
            new_fingerprint=f"annotate-{name}-{uuid.uuid4().hex}",  # never hash the score array
            desc=f"split {name}",
        )
        out[name] = PreparedDomain(ds, scorer_name)
    return out


def tokenizer_texts(domains: dict[str, PreparedDomain], budget_bytes: int) -> Iterator[str]:
    """Round-robin training texts from every domain's train split, up to ``budget_bytes``."""
    iters = [
        iter(d.dataset.filter(lambda is_val: not is_val, input_columns="is_val").iter(batch_size=256))
        for d in domains.values()
    ]
    used = 0
    while iters and used < budget_bytes:
        for it in list(iters):
            batch = next(it, None)
            if batch is None:
                iters.remove(it)
                continue
            for text in batch["text"]:
                if used >= budget_bytes:
                    return
                used += len(text.encode("utf-8", "replace"))
                yield text


def check_replaceable(root: Path, overwrite: bool) -> None:
    """Refuse to touch an existing ``data.store`` unless asked, and even then unless it is a currimix
    token store (its meta.json says so) or an empty folder: never the user's own files."""
    blocker = next((p for p in root.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserError(f"data.store {str(root)!r} cannot be created: {str(blocker)!r} is a file, not a folder")
    if not root.exists():
        return
    if not overwrite:
        raise UserError(f"token store {str(root)!r} already exists; pass --overwrite to rebuild it")
    if root.is_dir() and (is_token_store(root) or not any(root.iterdir())):
        return
    raise UserError(
        f"data.store {str(root)!r} is not a currimix token store (no store meta.json in it), so --overwrite will "
        "not replace it: it may hold your own files. Point data.store at a new folder, or move that one away"
    )


def remove_stale_temp_folders(root: Path) -> None:
    """Remove the hidden temp and trash folders that killed `prepare` runs left beside ``root``.

    A temp folder is named ``.<store>.tmp-<pid>-<hex>``; one whose process is gone is stale (one
    from a still-running prepare of the same store is left alone)."""
    for folder in root.parent.glob(f".{glob.escape(root.name)}.*-*"):
        kind, _, rest = folder.name[len(root.name) + 2 :].partition("-")
        if kind not in ("tmp", "old") or not folder.is_dir():
            continue
        pid = rest.split("-")[0]
        if kind == "tmp" and pid.isdigit() and _process_alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_store(recipe: Recipe, *, overwrite: bool = False, show_progress: bool = True) -> TokenStore:
    """Build the recipe's token store; returns it opened. Refuses to replace one unless ``overwrite``."""
    root = recipe.store_path
    check_replaceable(root, overwrite)
    check_inputs(recipe)
    root.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_folders(root)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    started = time.time()
    if not show_progress:
        datasets.disable_progress_bars()
    try:
        tmp.mkdir()
        domains = load_and_score(recipe, cache_dir=str(tmp / "hf_cache"))
        if recipe.tokenizer.path:
            tokenizer = load_tokenizer(recipe.tokenizer.path)
        else:
            tokenizer = train_bpe(
                tokenizer_texts(domains, recipe.tokenizer.train_bytes),
                recipe.tokenizer.vocab_size,
                recipe.tokenizer.min_frequency,
            )
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        vocab_size = len(tokenizer)
        token_dtype = np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)
        writers = {
            split: SplitWriter(tmp / split, recipe.data.seq_len, token_dtype, tokenizer.eos_token_id)
            for split in SPLITS
        }

        backend = tokenizer.backend_tokenizer  # the Rust tokenizer: batched, multi-threaded, no length warnings

        def tokenize(batch: dict[str, list]) -> dict[str, list]:
            return {"input_ids": [e.ids for e in backend.encode_batch(batch["text"], add_special_tokens=False)]}

        for name, prepared in domains.items():
            tokenized = prepared.dataset.map(
                tokenize,
                batched=True,
                batch_size=BATCH_DOCS,
                num_proc=recipe.data.num_proc,
                remove_columns=["text"],
                desc=f"tokenize {name}",
            )
            columns = tokenized.with_format("numpy")  # numeric columns straight from arrow
            is_val = np.asarray(columns["is_val"], dtype=bool)
            scores = np.asarray(columns["score"], dtype=np.float64)
            ties = np.asarray(columns["tiebreak"], dtype=np.int64)
            for split, writer in writers.items():
                rows = np.flatnonzero(is_val == (split == "val"))
                order = rows[np.lexsort((ties[rows], scores[rows]))]  # ascending score, hashed tie-break
                writer.begin_domain(name)
                bar = tqdm(total=len(order), desc=f"pack {name}/{split}", unit="doc", disable=not show_progress)
                for start in range(0, len(order), BATCH_DOCS):
                    batch = tokenized.select(order[start : start + BATCH_DOCS])
                    writer.add_documents(batch["id"], batch["input_ids"], np.asarray(batch["score"]))
                    bar.update(len(batch))
                bar.close()
                writer.end_domain()
        for writer in writers.values():
            writer.close()
        empty = [n for n, s in writers["train"].stats.items() if s.sequences == 0]
        if empty:
            raise UserError(
                f"domains {empty} have fewer than {recipe.data.seq_len} training tokens; "
                "add documents or lower data.seq_len"
            )
        shutil.rmtree(tmp / "hf_cache", ignore_errors=True)
        write_meta(
            tmp,
            seq_len=recipe.data.seq_len,
            token_dtype=token_dtype.name,
            eos_id=tokenizer.eos_token_id,
            vocab_size=vocab_size,
            domains=list(domains),
            stats={split: w.stats for split, w in writers.items()},
            extra={
                "scorers": {n: d.scorer for n, d in domains.items()},
                "data_fingerprint": recipe.fingerprint("data", "tokenizer"),
                "seconds": round(time.time() - started, 1),
            },
        )
        if root.exists():
            trash = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
            root.rename(trash)
            tmp.rename(root)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return TokenStore(root)
