"""Tiny real checkpoints for the averaging tests: a 2-layer Llama (hidden 32, vocab 64) saved in
every layout `currimix average` reads, plus an independent float64 reference average."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

VOCAB = 64


def tiny_config(tie: bool = False, **overrides) -> LlamaConfig:
    kw = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=64,
        tie_word_embeddings=tie,
    )
    kw.update(overrides)
    return LlamaConfig(**kw)


def tiny_model(seed: int, tie: bool = False, dtype: torch.dtype = torch.float32) -> LlamaForCausalLM:
    """A randomly initialised model; different seeds give different weights everywhere (norms too)."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config(tie))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.to(dtype).eval()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(VOCAB - 1)} | {"<unk>": VOCAB - 1}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


def save_snapshot(model: LlamaForCausalLM, folder: Path, step: int | None = None, **kwargs) -> Path:
    """A ``save_pretrained`` folder with tokenizer (and a snapshot marker when ``step`` is given)."""
    model.save_pretrained(folder, **kwargs)
    tiny_tokenizer().save_pretrained(folder)
    if step is not None:
        (folder / "currimix.json").write_text(json.dumps({"format": 1, "kind": "snapshot", "step": step}))
    return folder


def save_bin(model: LlamaForCausalLM, folder: Path) -> Path:
    """A ``pytorch_model.bin`` folder (transformers 5 no longer writes these itself)."""
    save_snapshot(model, folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # tied keys share storage here
    return folder


def save_state(model: LlamaForCausalLM, run_dir: Path, step: int) -> Path:
    """An Accelerate ``save_state`` checkpoint laid out as ``currimix train`` writes it."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    (run_dir / "model_config").mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(run_dir / "model_config")
    tiny_tokenizer().save_pretrained(run_dir / "model_config")
    folder = run_dir / "checkpoints" / f"step_{step:08d}"
    accelerator = Accelerator(cpu=True)
    try:
        accelerator.prepare(model)
        accelerator.save_state(folder)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)  # leave no process-wide state to other tests
    (folder / "currimix.json").write_text(
        json.dumps({"format": 1, "kind": "checkpoint", "step": step, "plan_fingerprint": "test"})
    )
    return folder


def save_raw(state: dict[str, torch.Tensor], like: Path, folder: Path) -> Path:
    """A folder with ``like``'s config and tokenizer but the given tensors."""
    folder.mkdir(parents=True)
    for f in like.iterdir():
        if f.suffix == ".json" and f.name != "currimix.json" or f.name.startswith("tokenizer"):
            (folder / f.name).write_bytes(f.read_bytes())
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def reference_weights(preset: str, k: int, alpha: float = 0.2, values: list[float] | None = None) -> list[float]:
    """The presets' conventions, written out directly (not through tools.average.weights)."""
    if preset == "sma":
        raw = [1.0] * k
    elif preset == "wma":
        raw = [float(i) for i in range(1, k + 1)]
    elif preset == "ema":
        raw = [(1 - alpha) ** (k - i) for i in range(1, k + 1)]
    elif preset == "ema_recursive":
        acc = [1.0] + [0.0] * (k - 1)  # run the recursion on indicator vectors
        for i in range(1, k):
            acc = [(1 - alpha) * a for a in acc]
            acc[i] += alpha
        return acc
    elif preset == "explicit":
        raw = list(values or [])
    elif preset == "explicit_raw":
        return list(values or [])
    else:
        raise ValueError(preset)
    total = math.fsum(raw)
    return [r / total for r in raw]


def reference_average(models: list[LlamaForCausalLM], weights: list[float]) -> dict[str, torch.Tensor]:
    """Weighted average in float64 of the models' in-memory state dicts (tied keys dropped as save_pretrained does)."""
    out: dict[str, torch.Tensor] = {}
    for key in models[0].state_dict():
        if key == "lm_head.weight" and models[0].config.tie_word_embeddings:
            continue
        out[key] = sum(w * m.state_dict()[key].double() for m, w in zip(models, weights))
    return out
