"""Per-domain validation loss of any model folder on a token store (`currimix eval`)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from curriculum.errors import UserError
from curriculum.store import TokenStore
from recipes.evaluation import evaluate_domains


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
