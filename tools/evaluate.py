"""Per-domain validation loss of a model on a token store (used by `train` and `currimix eval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from curriculum.errors import UserError
from curriculum.store import TokenSplit, TokenStore
from recipes.losses import sequence_losses


def eval_sequence_ids(split: TokenSplit, per_domain: int) -> dict[int, np.ndarray]:
    """A fixed, evenly spaced sample of each domain's sequences (the split is in score order, so
    taking the first N would measure only the lowest-quality text)."""
    out = {}
    for d in range(len(split.domain_names)):
        start, stop = split.domain_range(d)
        n = min(per_domain, stop - start)
        if n:
            out[d] = np.unique(np.linspace(start, stop - 1, n).round().astype(np.int64))
    return out


@torch.no_grad()
def evaluate_domains(
    model: PreTrainedModel,
    split: TokenSplit,
    *,
    per_domain: int,
    micro_batch_size: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    autocast: Callable[[], object] | None = None,
) -> dict[str, float]:
    """Mean per-sequence loss for each domain of ``split``; ranks share the work when ``reduce`` sums."""
    was_training = model.training
    model.eval()
    n_domains = len(split.domain_names)
    sums = torch.zeros(n_domains, dtype=torch.float64, device=device)
    counts = torch.zeros(n_domains, dtype=torch.float64, device=device)
    for d, ids in eval_sequence_ids(split, per_domain).items():
        mine = ids[rank::world_size]
        for start in range(0, len(mine), micro_batch_size):
            tokens = torch.from_numpy(split.sequences(mine[start : start + micro_batch_size])).to(device)
            with autocast() if autocast else torch.autocast(device.type, enabled=False):
                logits = model(input_ids=tokens).logits
            losses = sequence_losses(logits, tokens)
            sums[d] += losses.sum().double()
            counts[d] += len(losses)
    if reduce is not None:
        sums, counts = reduce(sums), reduce(counts)
    model.train(was_training)
    return {name: float(sums[d] / counts[d]) for d, name in enumerate(split.domain_names) if counts[d] > 0}


def evaluate_folder(
    model_dir: str | Path,
    store_dir: str | Path,
    *,
    split: str = "val",
    per_domain: int = 64,
    micro_batch_size: int = 8,
    device: str = "auto",
) -> dict[str, float]:
    """Per-domain loss of a saved model folder (anything `from_pretrained` loads) on a store split."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{str(model_dir)!r} is not a model folder (no config.json)")
    store = TokenStore(store_dir)
    if split not in store.splits:
        raise UserError(f"split must be one of {sorted(store.splits)}, got {split!r}")
    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True, dtype=torch.float32).to(dev)
    if model.config.vocab_size < store.vocab_size:
        raise UserError(
            f"model {str(model_dir)!r} has a vocabulary of {model.config.vocab_size}, the store's "
            f"tokenizer {store.vocab_size}: they were not trained together"
        )
    return evaluate_domains(
        model, store.splits[split], per_domain=per_domain, micro_batch_size=micro_batch_size, device=dev
    )
