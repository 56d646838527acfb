"""Any model folder measured: on evaluation sets and probes (`currimix eval`, `currimix run`), and by
quality quintile of the held-out sequences (the sweep's metrics)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from curriculum.errors import UserError
from curriculum.store.reader import TokenStore
from tools.evaluate.config import EvaluationConfig
from tools.evaluate.domains import evaluate_quality
from tools.evaluate.evaluator import Evaluator


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
    model_dir: str | Path, store: TokenStore | None, device: str = "auto"
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
    if store is not None and model.config.vocab_size < store.vocab_size:
        raise UserError(
            f"model {str(model_dir)!r} has a vocabulary of {model.config.vocab_size}, the store's "
            f"tokenizer {store.vocab_size}: they were not trained together"
        )
    return model, dev


def _split(store: TokenStore, split: str):
    if split not in store.splits:
        raise UserError(f"split must be one of {sorted(store.splits)}, got {split!r}")
    return store.splits[split]


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


def model_tokenizer(model_dir: Path, fallback: Path) -> Path:
    """The tokenizer a model folder carries (currimix saves it beside the weights), else ``fallback``."""
    return model_dir if (model_dir / "tokenizer.json").is_file() else fallback


def evaluate_folders(
    model_dirs: list[str | Path],
    config: EvaluationConfig,
    *,
    training_store: str | Path | None = None,
    per_domain: int | None = None,
    micro_batch_size: int = 8,
    device: str = "auto",
) -> dict[str, dict[str, float]]:
    """``{model folder: metrics}`` of ``config``'s sets and probes (every sequence unless ``per_domain``).

    The sets are opened once (their byte counts computed once) and measured on each model; every set's
    store must share the first model's tokenizer (the one it carries, else the first set's store's)."""
    dirs = [Path(m) for m in model_dirs]
    first_store = next((s.store for s in config.sets.values() if s.store), None) or training_store
    fallback = Path(first_store) / "tokenizer" if first_store else dirs[0]
    tokenizer_dir = model_tokenizer(dirs[0], fallback)
    if not (tokenizer_dir / "tokenizer.json").is_file() and not (tokenizer_dir / "tokenizer_config.json").is_file():
        raise UserError(f"no tokenizer for {str(dirs[0])!r}: the model folder carries none and no store gives one")
    out: dict[str, dict[str, float]] = {}
    evaluator: Evaluator | None = None
    for model_dir in dirs:
        model, dev = load_for_eval(model_dir, None, device)
        if evaluator is None:
            max_len = int(getattr(model.config, "max_position_embeddings", 0) or 1 << 20)
            evaluator = Evaluator.open(
                config,
                training_store=training_store,
                tokenizer_dir=tokenizer_dir,
                max_len=max_len,
                per_domain=per_domain,
            )
        for eval_set in evaluator.sets:
            if model.config.vocab_size < eval_set.store.vocab_size:
                raise UserError(
                    f"model {str(model_dir)!r} has a vocabulary of {model.config.vocab_size}, evaluation set "
                    f"{eval_set.name!r} (store {str(eval_set.store.root)!r}) {eval_set.store.vocab_size}: "
                    "they were not made with one tokenizer"
                )
        if (model_dir / "tokenizer.json").is_file() and model_dir != tokenizer_dir:
            from tools.evaluate.sets import tokenizer_digest

            if tokenizer_digest(model_dir) != tokenizer_digest(tokenizer_dir):
                raise UserError(f"model {str(model_dir)!r} carries another tokenizer than {str(dirs[0])!r}")
        out[str(model_dir)] = evaluator.measure(model, micro_batch_size=micro_batch_size, device=dev)
    return out
