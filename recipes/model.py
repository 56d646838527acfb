"""Build the transformers causal LM a recipe describes (dense Llama-style by default, or MoE).

Models are built from a config with a seeded init (never downloaded), with the attention kernel
and MoE experts backend that `recipes/runtime.py` resolved (see `recipes/moe.py`). `prepare_for_speed`
adds activation checkpointing and per-block `torch.compile` in place, so state-dict keys never
change. FLOPs per token and the device's peak give MFU.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
)

from curriculum.errors import UserError
from recipes.config import ModelConfig
from recipes.moe import experts_implementation

# Dense architectures whose MoE twin is Mixtral (same attention, MLP swapped for routed experts).
_MOE_TWIN = {"llama": "mixtral", "mistral": "mixtral", "mixtral": "mixtral"}

# Dense bf16 peak FLOP/s per device, for MFU (vendor figures, no sparsity). The first key found in
# the device name wins, so the more specific names come first (an H100 PCIe is not an SXM H100).
PEAK_BF16_FLOPS = {
    "H100 PCIe": 756e12,
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 125e12,
    "4090": 165e12,
}


def default_intermediate_size(hidden_size: int) -> int:
    return max(64, int(round(hidden_size * 8 / 3 / 64)) * 64)


def build_model_config(
    cfg: ModelConfig, *, vocab_size: int, seq_len: int, eos_id: int, pad_id: int | None
) -> PretrainedConfig:
    """A transformers config from the recipe's model section and the tokenizer's ids."""
    arch = cfg.arch
    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads or cfg.num_heads,
        intermediate_size=cfg.intermediate_size or default_intermediate_size(cfg.hidden_size),
        max_position_embeddings=seq_len,
        tie_word_embeddings=cfg.tie_embeddings,
        rope_theta=cfg.rope_theta,
        initializer_range=cfg.init_std,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        use_cache=False,
    )
    if cfg.moe is not None:
        if arch not in _MOE_TWIN:
            raise UserError(f"model.moe is supported for arch {sorted(_MOE_TWIN)}, not {arch!r}")
        arch = _MOE_TWIN[arch]
        kwargs.update(
            num_local_experts=cfg.moe.num_experts,
            num_experts_per_tok=cfg.moe.top_k,
            router_aux_loss_coef=cfg.moe.aux_loss_coef,
            output_router_logits=True,
        )
    kwargs.update(cfg.extra)
    try:
        return AutoConfig.for_model(arch, **kwargs)
    except (ValueError, KeyError) as exc:
        raise UserError(f"model.arch={arch!r} is not a transformers model type ({exc})") from None


def build_model(
    cfg: ModelConfig,
    *,
    vocab_size: int,
    seq_len: int,
    eos_id: int,
    pad_id: int | None,
    seed: int,
    attention: str = "sdpa",
    moe_backend: str | None = None,
) -> PreTrainedModel:
    """A freshly initialised model (seeded), or the weights of ``cfg.init_from``, in fp32 (the
    master weights; bf16 is autocast) with the given attention kernel and MoE experts backend."""
    kernels: dict[str, str] = {"attn_implementation": attention}
    if moe_backend is not None:
        kernels["experts_implementation"] = experts_implementation(moe_backend)
    if cfg.init_from:
        path = Path(cfg.init_from)
        if not (path / "config.json").is_file():
            raise UserError(f"model.init_from={cfg.init_from!r} is not a model folder (no config.json)")
        return AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=torch.float32, **kernels)
    config = build_model_config(cfg, vocab_size=vocab_size, seq_len=seq_len, eos_id=eos_id, pad_id=pad_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, **kernels)
    return model


def transformer_blocks(model: PreTrainedModel) -> list[torch.nn.Module]:
    """The repeated decoder blocks (the classes transformers keeps whole when sharding)."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    return [m for m in model.modules() if type(m).__name__ in names]


def prepare_for_speed(model: PreTrainedModel, *, activation_checkpointing: bool, compile: bool) -> None:
    """Activation checkpointing and per-block ``torch.compile``, both in place.

    Compiling each block with ``Module.compile()`` (not ``torch.compile(model)``, which wraps the
    model and prefixes every state-dict key with ``_orig_mod.``) keeps checkpoints and snapshots
    identical with and without compile; repeated blocks share one compiled graph, and FSDP wraps
    the same blocks afterwards (the order torchtitan uses: checkpointing, compile, sharding).
    """
    if activation_checkpointing:
        # Non-reentrant checkpointing: works with compile, FSDP2 and inputs that need no grad.
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if compile:
        blocks = transformer_blocks(model)
        if not blocks:
            raise UserError(f"training.compile: no transformer blocks found in {type(model).__name__}")
        for block in blocks:
            block.compile()


def count_parameters(model: torch.nn.Module, *, exclude_embeddings: bool = False) -> int:
    skip = set()
    if exclude_embeddings:
        skip = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values() if id(p) not in skip)


def flops_per_token(model: PreTrainedModel, seq_len: int) -> float:
    """Training FLOPs per token: 6 x active non-embedding params + attention (12 x layers x width x seq)."""
    config = model.config
    params = count_parameters(model, exclude_embeddings=True)
    experts = getattr(config, "num_local_experts", None)
    if experts:  # only top-k of the experts' MLP weights are active per token
        mlp = 3 * config.hidden_size * config.intermediate_size * config.num_hidden_layers
        params -= mlp * (experts - config.num_experts_per_tok)
    # The output projection is a real matmul even when tied to the embedding.
    params += config.vocab_size * config.hidden_size
    return 6.0 * params + 12.0 * config.num_hidden_layers * config.hidden_size * seq_len


def peak_flops(device: torch.device, configured: float | None) -> float | None:
    """Peak FLOP/s of one device for MFU: the configured value, else a guess from the GPU name."""
    if configured:
        return configured
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)
