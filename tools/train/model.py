"""Build the transformers causal LM a recipe describes (dense Llama-style by default, or MoE).

Models are built from a config with a seeded init (never downloaded), with the attention kernel
and MoE experts backend that `tools/train/runtime.py` resolved (see `tools/train/moe.py`). `prepare_for_speed`
adds activation checkpointing and per-block `torch.compile` in place, so state-dict keys never
change. FLOPs per token and the device's peak give MFU.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

from curriculum.errors import UserError
from curriculum.paths import describe
from tools.train.config import ModelConfig
from tools.train.moe import experts_implementation

# What `from_pretrained` loads weights from (single file or sharded index), safetensors first.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

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
    if arch not in CONFIG_MAPPING:
        raise UserError(f"model.arch={arch!r} is not a transformers model type; e.g. llama, mistral, qwen2, gpt_neox")
    try:
        return AutoConfig.for_model(arch, **kwargs)
    except Exception as exc:  # transformers' own config checks: ValueError, TypeError, its strict dataclass errors
        raise UserError(transformers_refusal(cfg, exc)) from None


def transformers_refusal(cfg: ModelConfig, exc: BaseException, what: str = "model") -> str:
    """A transformers error about the model's settings as a message naming the key: ``model.extra.<key>``
    when the error names one of `model.extra`'s keys or values, else ``what``."""
    text = " ".join(line.strip() for line in str(exc).strip().splitlines()[:2]) or type(exc).__name__
    if isinstance(exc, KeyError) and exc.args:  # a lookup by value: ACT2FN["nope"], a rope type
        culprit = next((k for k, v in cfg.extra.items() if exc.args[0] in (v, k) or str(exc.args[0]) in str(v)), None)
        text = f"transformers has no {exc.args[0]!r} there"
    else:
        culprit = next((k for k in cfg.extra if k in text), None)
    where = f"model.extra.{culprit}" if culprit else what
    return f"{where}: transformers cannot build a {cfg.arch!r} model from these settings: {text}"


def check_buildable(cfg: ModelConfig, *, vocab_size: int, seq_len: int) -> None:
    """What building the model will ask of its settings, asked before any weight exists: the transformers
    config (``model.extra`` included, or ``init_from``'s config.json), the model built on the meta device
    (no memory, no time: activation names and layer shapes are looked up there), and the head counts the
    attention forward needs, which ``model.extra`` can change behind the schema's back. (A forward pass
    on the meta device is not possible: transformers' mask code reads tensor values.) Raises UserError."""
    if cfg.init_from:
        config, what = init_from_config(cfg.init_from), "model.init_from"
    else:
        config, what = build_model_config(cfg, vocab_size=vocab_size, seq_len=seq_len, eos_id=0, pad_id=None), "model"
    try:
        with torch.device("meta"):
            AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    except NotImplementedError:
        pass  # an operation without a meta kernel: nothing learned, the real build will tell
    except Exception as exc:
        raise UserError(transformers_refusal(cfg, exc, what)) from None
    positions = getattr(config, "max_position_embeddings", None)
    if cfg.init_from and isinstance(positions, int) and positions < seq_len:
        # RoPE models run past it without an error, on positions they were never trained at
        raise UserError(
            f"model.init_from: the model was made for at most {positions} positions (max_position_embeddings), "
            f"but data.seq_len is {seq_len}; use a store with seq_len <= {positions}"
        )
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None)
    if isinstance(heads, int) and isinstance(kv_heads, int) and (kv_heads < 1 or heads % kv_heads):
        key = "model.extra.num_key_value_heads" if "num_key_value_heads" in cfg.extra else what
        raise UserError(f"{key}: {heads} attention heads cannot be shared by {kv_heads} key/value heads")


def init_from_config(folder: str) -> PretrainedConfig:
    """The config of the model folder ``model.init_from`` names, checked to be a loadable causal LM."""
    path = Path(folder)
    where = f"model.init_from={folder!r}"
    if not path.is_dir():
        raise UserError(f"{where} is {describe(path)}, not a model folder (written by `save_pretrained`)")
    if not (path / "config.json").is_file():
        raise UserError(f"{where} is not a model folder (no config.json)")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise UserError(f"{where} has no weights ({' or '.join(WEIGHT_FILES)})")
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{where}: its config.json cannot be read by transformers: {first}") from None
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise UserError(f"{where} holds a {config.model_type!r} model, which is not a causal language model")
    return config


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
        return load_init_from(cfg.init_from, vocab_size, kernels)
    check_fits_in_memory(cfg, vocab_size)
    config = build_model_config(cfg, vocab_size=vocab_size, seq_len=seq_len, eos_id=eos_id, pad_id=pad_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, **kernels)
        except (MemoryError, RuntimeError) as exc:  # "DefaultCPUAllocator: can't allocate memory"
            if not isinstance(exc, MemoryError) and "allocat" not in str(exc):
                raise
            raise UserError(
                f"model: {estimated_parameters(cfg, vocab_size):,} parameters (about) could not be allocated in "
                "this machine's memory; lower model.hidden_size, model.num_layers or model.intermediate_size"
            ) from None
    return model


def load_init_from(folder: str, vocab_size: int, kernels: dict[str, str]) -> PreTrainedModel:
    """The weights ``model.init_from`` names, verified against the folder's marker when currimix wrote
    it, loadable, and with an embedding for every token id of the store's tokenizer (a smaller
    vocabulary fails deep in the embedding with an IndexError at the first step)."""
    from tools.train.checkpoint import MARKER_FILE, verify_folder

    where = f"model.init_from={folder!r}"
    config = init_from_config(folder)
    if (Path(folder) / MARKER_FILE).is_file():
        damage = verify_folder(Path(folder))
        if damage:
            raise UserError(f"{where} is damaged: {damage}")
    model_vocab = getattr(config, "vocab_size", None)
    if isinstance(model_vocab, int) and model_vocab < vocab_size:
        raise UserError(
            f"{where} has a vocabulary of {model_vocab} tokens, the store's tokenizer {vocab_size}: token ids "
            "past its embedding would fail; start from a model trained with this tokenizer"
        )
    try:
        return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32, **kernels)
    except Exception as exc:  # safetensors' SafetensorError, transformers' size-mismatch RuntimeError, OSError
        if is_allocation_failure(exc):
            raise
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        raise UserError(
            f"{where} cannot be loaded ({lines[0] if lines else type(exc).__name__}); its config.json or weights "
            "are damaged or do not belong together"
        ) from None


def is_allocation_failure(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))


def estimated_parameters(cfg: ModelConfig, vocab_size: int) -> int:
    """Parameters of the model the recipe's `model` section builds, from its sizes alone (no weights):
    attention, the (expert) MLPs and the embeddings; norms and biases are left out."""
    h, layers = cfg.hidden_size, cfg.num_layers
    kv_width = (cfg.num_kv_heads or cfg.num_heads) * (h // cfg.num_heads)
    mlp = 3 * h * (cfg.intermediate_size or default_intermediate_size(h)) * (cfg.moe.num_experts if cfg.moe else 1)
    return layers * (2 * h * h + 2 * h * kv_width + mlp) + vocab_size * h * (1 if cfg.tie_embeddings else 2)


def check_fits_in_memory(cfg: ModelConfig, vocab_size: int) -> None:
    """Refuse a model whose fp32 weights alone exceed this machine's memory before building it: a
    recipe asking for 10^8 layers would otherwise allocate until the kernel kills the process."""
    params = estimated_parameters(cfg, vocab_size)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: no check
        return
    if 4 * params > memory:
        raise UserError(
            f"model: about {params:,} parameters need {4 * params / 1e9:,.1f} GB in fp32 to build, more than this "
            f"machine's {memory / 1e9:,.1f} GB of memory; lower model.hidden_size ({cfg.hidden_size}), "
            f"model.num_layers ({cfg.num_layers}) or model.intermediate_size"
        )


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
