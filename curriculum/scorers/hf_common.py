"""Shared plumbing of the transformers-model scorers (`hf_lm`, `hf_classifier`).

Loading strictly from a local folder (never a hub), device/dtype choice, and token-budget
batching: documents are sorted by length so each batch pads little, and a batch holds at most
``batch_tokens`` tokens so long documents cannot blow up memory. Scoring runs in this process
(one model, GPU when present) rather than in `Dataset.map` worker processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
from pydantic import Field

from curriculum.errors import UserError
from curriculum.registry import StrictModel
from curriculum.scorers.base import Scorer, clean_texts

SCORE_CHUNK_DOCS = 2048  # documents read from a Dataset at a time (bounds host memory)
# Text beyond max_tokens * this many characters cannot be reached by truncation at max_tokens
# for any realistic tokenizer, so it is cut before tokenizing (a 1 MB document costs nothing).
CHARS_PER_TOKEN_BOUND = 64


class HFModelFields(StrictModel):
    """Fields common to scorers that run a transformers model from a local folder."""

    path: str = Field(
        description="Local folder written by `save_pretrained` holding the model and its "
        "tokenizer (nothing is downloaded)."
    )
    max_tokens: int = Field(1024, ge=2, le=1 << 20, description="Tokens read per document (its first N).")
    batch_tokens: int = Field(16384, ge=16, description="Most (padded) tokens per forward pass.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="`auto`: CUDA when available, else CPU.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights' dtype; `auto`: bfloat16 on CUDA, float32 on CPU (faster there)."
    )


def load_pretrained(config: HFModelFields, auto_class: Any) -> tuple[Any, Any, Any]:
    """(model in eval mode on its device, tokenizer, torch device) from ``config.path``."""
    import torch
    from transformers import AutoTokenizer

    folder = Path(config.path).expanduser()
    if not (folder / "config.json").is_file():
        raise UserError(
            f"{config.path}: not a transformers model folder (no config.json); "
            "give the folder written by save_pretrained"
        )
    if config.device == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda was asked for but no CUDA device is visible; use device: auto")
    device = torch.device(
        "cuda" if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    dtype = {
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
        "auto": torch.bfloat16 if device.type == "cuda" else torch.float32,
    }[config.dtype]
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = auto_class.from_pretrained(folder, local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise UserError(f"{config.path}: cannot load the model or tokenizer: {exc}") from exc
    model.to(device).eval()
    return model, tokenizer, device


def token_batches(lengths: list[int], *, batch_tokens: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length with at most ``batch_tokens`` padded tokens."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches: list[np.ndarray] = []
    current: list[int] = []
    for i in order:
        longest = max(lengths[i], 1)  # sorted ascending: the newcomer is the longest
        if current and longest * (len(current) + 1) > batch_tokens:
            batches.append(np.asarray(current))
            current = []
        current.append(int(i))
    if current:
        batches.append(np.asarray(current))
    return batches


def score_dataset_in_process(scorer: Any, ds: datasets.Dataset, *, desc: str) -> np.ndarray:
    """Score a Dataset chunk by chunk in this process, with a progress bar."""
    from tqdm.auto import tqdm

    out = np.zeros(len(ds), dtype=np.float64)
    with tqdm(total=len(ds), desc=desc, unit="doc") as bar:
        for start in range(0, len(ds), SCORE_CHUNK_DOCS):
            chunk = ds[start : start + SCORE_CHUNK_DOCS]
            out[start : start + len(chunk["text"])] = scorer.score_batch(chunk)
            bar.update(len(chunk["text"]))
    assert np.isfinite(out).all(), "model scorer produced a non-finite score"
    return out


def reachable_texts(texts: list[Any], max_tokens: int) -> list[str]:
    """Clean texts cut to what truncation at ``max_tokens`` could ever reach."""
    return [t[: max_tokens * CHARS_PER_TOKEN_BOUND] for t in clean_texts(texts)]


def padded_batch(seqs: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    """(input_ids, attention_mask) of right-padded token lists, as CPU long tensors."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[row, : len(s)] = 1
    return ids, mask


class InProcessModelScorer(Scorer):
    """Base of the model-folder scorers: whole datasets are scored in this process (one model,
    GPU when present) instead of in `Dataset.map` worker processes."""

    def score_dataset(
        self, ds: datasets.Dataset, *, batch_size: int = 1000, num_proc: int | None = None, desc: str = "score"
    ) -> np.ndarray:
        """In-process; ``batch_size`` and ``num_proc`` are not used."""
        return score_dataset_in_process(self, ds.select_columns(["text"]), desc=desc)
