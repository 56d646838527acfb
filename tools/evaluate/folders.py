"""Validation loss of any model folder on a token store: per domain (`currimix eval`) and by quality
quintile of the held-out sequences (the sweep's metrics)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from curriculum.errors import UserError
from curriculum.store.reader import TokenStore
from tools.evaluate.domains import evaluate_domains, evaluate_quality


def eval_device(device: str) -> torch.device:
    """``auto``, ``cpu`` or ``cuda`` (``cuda:N``) as a device this machine has."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu" and device.split(":")[0] != "cuda":
        raise UserError(f"--device {device!r}: choose auto, cpu or cuda")
    if device != "cpu" and not torch.cuda.is_available():
        raise UserError(f"--device {device!r}: this machine (or this torch build) has no CUDA device; use cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:  # "cuda:x"
        raise UserError(f"--device {device!r}: {exc}") from None


def load_for_eval(
    model_dir: str | Path, store: TokenStore, device: str = "auto"
) -> tuple[torch.nn.Module, torch.device]:
    """A saved model folder (anything `from_pretrained` loads) in fp32 on ``device``, checked against the store.

    A folder currimix wrote (a snapshot, final/, an average) carries a marker listing its files'
    sizes and checksums: they are verified first, so damaged weights are named, never evaluated."""
    from tools.train.checkpoint import MARKER_FILE, verify_folder

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{str(model_dir)!r} is not a model folder (no config.json)")
    dev = eval_device(device)
    if (model_dir / MARKER_FILE).is_file():
        damage = verify_folder(model_dir)
        if damage:
            raise UserError(f"model folder {str(model_dir)!r} is damaged: {damage}")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True, dtype=torch.float32)
    except Exception as exc:  # transformers/safetensors raise OSError, ValueError, RuntimeError, SafetensorError
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        reason = lines[0] if lines else type(exc).__name__
        raise UserError(
            f"model folder {str(model_dir)!r} cannot be loaded ({reason}); its config.json or weights are "
            "damaged or do not belong together"
        ) from None
    model = model.to(dev)
    if model.config.vocab_size < store.vocab_size:
        raise UserError(
            f"model {str(model_dir)!r} has a vocabulary of {model.config.vocab_size}, the store's "
            f"tokenizer {store.vocab_size}: they were not trained together"
        )
    return model, dev


def _split(store: TokenStore, split: str):
    if split not in store.splits:
        raise UserError(f"split must be one of {sorted(store.splits)}, got {split!r}")
    return store.splits[split]


def evaluate_folder(
    model_dir: str | Path,
    store_dir: str | Path,
    *,
    split: str = "val",
    per_domain: int = 64,
    micro_batch_size: int = 8,
    device: str = "auto",
) -> dict[str, float]:
    """Per-domain loss of a saved model folder on a store split."""
    store = TokenStore(store_dir)
    data = _split(store, split)
    model, dev = load_for_eval(model_dir, store, device)
    return evaluate_domains(model, data, per_domain=per_domain, micro_batch_size=micro_batch_size, device=dev)


def evaluate_folder_quality(
    model_dir: str | Path,
    store_dir: str | Path,
    *,
    splits: tuple[str, ...] = ("val",),
    per_domain: int = 256,
    micro_batch_size: int = 8,
    device: str = "auto",
) -> dict[str, dict[str, dict[str, float]]]:
    """Per-domain and per-quality-quintile loss of a model folder on each of ``splits`` (loaded once)."""
    store = TokenStore(store_dir)
    data = {name: _split(store, name) for name in splits}
    model, dev = load_for_eval(model_dir, store, device)
    return {
        name: evaluate_quality(model, part, per_domain=per_domain, micro_batch_size=micro_batch_size, device=dev)
        for name, part in data.items()
    }
