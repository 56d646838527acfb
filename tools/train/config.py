"""The training side's configs: the `model`, `schedule`, `training` and `checkpoint` sections.

`build_model` takes `model`; `resolve_runtime` takes `training` and `model`; the plan takes
`schedule` and the step/batch/log/eval fields of `training`; the checkpointer takes `checkpoint`.
The recipe schema (`recipes.config`) composes them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, field_validator, model_validator

from curriculum.config import CurriculumConfig, PathText, StoreSections
from curriculum.errors import UserError
from curriculum.registry import StrictModel
from mixers.config import MixtureConfig
from tools.average.config import AveragingConfig
from tools.evaluate.config import EvaluationConfig
from tools.train.schedules import SCHEDULES

ScheduleSpec = SCHEDULES.config_union()


class MoEConfig(StrictModel):
    """Mixture-of-experts MLPs: experts per layer, routing and the load-balancing loss."""

    num_experts: int = Field(8, ge=2, description="Experts per MoE layer.")
    top_k: int = Field(2, ge=1, description="Experts each token is routed to.")
    aux_loss_coef: float = Field(
        0.01, ge=0, allow_inf_nan=False, description="Weight of the router load-balancing loss."
    )
    backend: Literal["auto", "megablocks", "transformers"] = Field(
        "auto",
        description="Expert computation: `megablocks` (dropless grouped-GEMM kernels; needs the `moe` "
        "extra, a CUDA GPU and bf16), `transformers` (its own experts, every device), or `auto` "
        "(megablocks when installed and training on CUDA, else transformers). The weights are "
        "transformers' layout either way, so checkpoints move between backends.",
    )


Beta = Annotated[float, Field(ge=0, lt=1)]
STORE_KEYS = {"vocab_size", "bos_token_id", "eos_token_id", "pad_token_id"}
ROPE_ARCHS = {"llama", "mistral", "mixtral", "qwen2", "qwen3"}  # rotary embeddings over whole heads
# transformers config keys that `tools.train.model.build_model_config` fills from the recipe's own fields.
OWN_KEYS = {
    "hidden_size": "model.hidden_size",
    "num_hidden_layers": "model.num_layers",
    "num_attention_heads": "model.num_heads",
    "num_key_value_heads": "model.num_kv_heads",
    "intermediate_size": "model.intermediate_size",
    "tie_word_embeddings": "model.tie_embeddings",
    "rope_theta": "model.rope_theta",
    "initializer_range": "model.init_std",
    "max_position_embeddings": "data.seq_len",
    "num_local_experts": "model.moe.num_experts",
    "num_experts_per_tok": "model.moe.top_k",
    "router_aux_loss_coef": "model.moe.aux_loss_coef",
}


def _not_json(value: Any, where: str = "") -> list[tuple[str, str]]:
    """(key path, what is wrong) for every value under ``value`` that JSON cannot hold faithfully."""
    if isinstance(value, dict):
        return [bad for k, v in value.items() for bad in _not_json(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list):
        return [bad for i, v in enumerate(value) for bad in _not_json(v, f"{where}.{i}")]
    if isinstance(value, float) and not math.isfinite(value):
        return [(where, f"{value} is not a finite number")]
    if value is None or isinstance(value, (str, bool, int, float)):
        return []
    return [(where, f"a YAML {type(value).__name__} is not a JSON value")]


class ModelConfig(StrictModel):
    """The `model` section: a transformers causal LM built from these fields (or a local folder)."""

    arch: str = Field(
        "llama",
        description="transformers model type built from config (llama, mistral, qwen2, "
        "gpt_neox, ...); with `moe` set, llama becomes mixtral.",
    )
    hidden_size: int = Field(512, ge=8, description="Width of the residual stream.")
    num_layers: int = Field(8, ge=1, description="Transformer blocks.")
    num_heads: int = Field(8, ge=1, description="Attention heads.")
    num_kv_heads: int | None = Field(None, ge=1, description="Key/value heads (GQA); None = num_heads.")
    intermediate_size: int | None = Field(
        None, ge=8, description="MLP width; None = about 8/3 x hidden, rounded to a multiple of 64."
    )
    tie_embeddings: bool = Field(True, description="Share input and output embeddings.")
    # Finite: an infinite init std gives infinite weights and a NaN loss at the first step.
    rope_theta: float = Field(
        10000.0, gt=1, allow_inf_nan=False, description="RoPE base (above 1, so frequencies fall across dimensions)."
    )
    init_std: float = Field(0.02, gt=0, allow_inf_nan=False, description="Std of the normal weight init.")
    moe: MoEConfig | None = Field(None, description="Mixture-of-experts MLPs (pure PyTorch on every device).")
    extra: dict[str, Any] = Field(default_factory=dict, description="Any other transformers config keys.")
    init_from: PathText | None = Field(
        None,
        description="Start from the weights of this local model folder "
        "instead of a random init (its config wins over the fields above).",
    )

    @field_validator("extra")
    @classmethod
    def _extra_values(cls, extra: dict[str, Any]) -> dict[str, Any]:
        # The extra keys land in config.json (saved with every checkpoint and model) and in the recipe's
        # fingerprint: JSON values only, and finite numbers (a NaN epsilon trains garbage silently).
        bad = [f"{key} ({why})" for key, why in _not_json(extra)]
        if bad:
            raise ValueError(
                f"model.extra takes JSON values (text, finite numbers, true/false, null, lists, mappings): {bad}"
            )
        return extra

    @model_validator(mode="after")
    def _extra_keys(self) -> "ModelConfig":
        # These come from the token store and its tokenizer; a different value would build a model
        # whose embedding does not match the tokens (a vocab smaller than the store's ids crashes).
        taken = sorted(set(self.extra) & STORE_KEYS)
        if taken:
            raise ValueError(
                f"model.extra may not set {taken}: they come from the token store and its tokenizer "
                "(change the tokenizer or data.seq_len instead)"
            )
        # A transformers key the schema already sets from its own field would silently win over it (the
        # recipe would say one width and train another): name the field to set instead.
        twins = {key: OWN_KEYS[key] for key in sorted(set(self.extra) & set(OWN_KEYS))}
        if twins:
            fields = ", ".join(f"{key} -> {field}" for key, field in twins.items())
            raise ValueError(f"model.extra sets keys the recipe has fields for; set those instead ({fields})")
        return self

    @model_validator(mode="after")
    def _heads(self) -> "ModelConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
        head_dim = self.hidden_size // self.num_heads
        if self.arch in ROPE_ARCHS and "head_dim" not in self.extra and head_dim % 2:
            # transformers refuses it only when it builds the model (RoPE rotates pairs of dimensions)
            raise ValueError(
                f"hidden_size={self.hidden_size} / num_heads={self.num_heads} gives heads of {head_dim} dimensions; "
                f"{self.arch}'s rotary embedding needs an even number"
            )
        if self.num_kv_heads and self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} is not divisible by num_kv_heads={self.num_kv_heads}")
        if self.moe and self.moe.top_k > self.moe.num_experts:
            raise ValueError("moe.top_k must not exceed moe.num_experts")
        return self


class TrainingConfig(StrictModel):
    """The `training` section: steps, batch sizes, optimizer, precision, logging and evaluation."""

    steps: int = Field(ge=1, description="Optimizer steps in the run.")
    global_batch_size: int = Field(ge=1, description="Sequences per optimizer step, over all processes.")
    micro_batch_size: int = Field(
        ge=1,
        description="Sequences per forward pass per process; gradient accumulation = global / (micro x processes).",
    )
    # The optimizer settings carry the bounds torch.optim.AdamW enforces (and finiteness, which it does
    # not), so a bad value is a key-named message when the recipe loads, not an error at the first step.
    weight_decay: float = Field(
        0.1, ge=0, allow_inf_nan=False, description="AdamW decoupled weight decay (matrices only)."
    )
    betas: tuple[Beta, Beta] = Field((0.9, 0.95), description="AdamW betas, each in [0, 1).")
    eps: float = Field(1e-8, gt=0, allow_inf_nan=False, description="AdamW epsilon.")
    grad_clip: float | None = Field(
        1.0, gt=0, allow_inf_nan=False, description="Clip the global gradient norm; None = off."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="`bf16`: torch.autocast to bfloat16 around forward and loss, fp32 master weights, "
        "gradients and optimizer state. `auto`: bf16 on CUDA, fp32 on CPU (where bf16 is slower).",
    )
    compile: bool = Field(
        False,
        description="torch.compile each transformer block in place (state-dict keys unchanged, so "
        "checkpoints resume with or without it; worth it on GPUs only).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train; `auto` = CUDA if present.")
    attention: Literal["auto", "sdpa", "flash_attention_2", "eager"] = Field(
        "auto",
        description="Attention kernel (transformers `attn_implementation`): `auto` = flash_attention_2 "
        "on CUDA when the flash-attn package is installed, else sdpa.",
    )
    activation_checkpointing: bool = Field(
        False, description="Recompute each block's activations in the backward pass (less memory, ~30% more compute)."
    )
    fused_cross_entropy: bool = Field(
        False,
        description="Fuse the output projection with the cross-entropy (liger-kernel, CUDA only): the "
        "[tokens x vocab] logits are never materialised, which matters for large vocabularies.",
    )
    prefetch: bool = Field(
        True,
        description="Gather the next step's tokens from the memory-mapped store in a background thread "
        "while the current step runs (batches are identical either way).",
    )
    distributed: Literal["auto", "ddp", "fsdp"] = Field(
        "auto",
        description="Multi-process strategy under `accelerate launch`: `auto` follows the accelerate "
        "config / launch flags (DDP unless it says FSDP), `fsdp` shards parameters, gradients and "
        "optimizer state per transformer block (FSDP2), `ddp` forces replication. CPU runs use DDP.",
    )
    log_every_steps: int = Field(10, ge=1, description="Steps between log lines / tracker records.")
    eval_every_steps: int | None = Field(
        None, ge=1, description="Steps between validation passes; None = at the end only."
    )
    eval_sequences_per_domain: int | None = Field(
        None,
        ge=1,
        description="Cap on the sequences per domain of each evaluation set in the loop's passes (evenly "
        "spaced); None = every sequence of each set (see the `evaluation` section).",
    )
    trackers: list[Literal["jsonl", "tensorboard", "wandb", "mlflow"]] = Field(
        ["jsonl", "tensorboard"],
        description="Where metrics go: jsonl and tensorboard in the run folder; wandb (WANDB_MODE=offline keeps it "
        "local) and mlflow (MLFLOW_TRACKING_URI, else <run_dir>/mlruns) need the `trackers` extra.",
    )

    @field_validator("trackers")
    @classmethod
    def _trackers_once(cls, trackers: list[str]) -> list[str]:
        # Two jsonl trackers append every record twice to the one metrics.jsonl.
        twice = sorted({name for name in trackers if trackers.count(name) > 1})
        if twice:
            raise ValueError(f"{twice} listed more than once; name each tracker once")
        return trackers

    log_batch_ids: bool = Field(
        False,
        description="Record each step's global batch (sequence ids) in the "
        "metrics log (for debugging and tests; large).",
    )
    peak_flops: float | None = Field(
        None, gt=0, description="Peak FLOP/s of one device for MFU; None guesses from the GPU name (no MFU on CPU)."
    )
    on_nonfinite: Literal["stop", "skip"] = Field(
        "stop",
        description="A non-finite loss or gradient norm: `stop` ends the run within one log interval, naming the "
        "step, domains and sequence ids, before anything is saved from it; `skip` skips such steps (no update; "
        "counted in the log; costs one device sync per step) and still stops when a whole log interval is skipped.",
    )

    @model_validator(mode="after")
    def _batches(self) -> "TrainingConfig":
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(
                f"global_batch_size={self.global_batch_size} is not a multiple of "
                f"micro_batch_size={self.micro_batch_size}"
            )
        return self


class CheckpointConfig(StrictModel):
    """The `checkpoint` section: how often resumable checkpoints are written and how many are kept."""

    every_steps: int | None = Field(
        None, ge=1, description="Steps between resumable checkpoints; None = only at the end."
    )
    keep_last: int = Field(2, ge=1, description="Complete checkpoints to keep (older ones are deleted).")


class TrainSections(StoreSections, Protocol):
    """What training reads of a recipe: the sections the plan, the model, the optimizer and the
    checkpointer take, the store it trains on, its run folder, and the recipe itself as YAML for the
    run folder. `recipes.config.Recipe` is one. (No `tokenizer`: the store brings its own.)"""

    seed: int
    model: ModelConfig
    mixture: MixtureConfig
    curriculum: CurriculumConfig
    schedule: ScheduleSpec
    training: TrainingConfig | None
    checkpoint: CheckpointConfig
    averaging: AveragingConfig
    evaluation: EvaluationConfig

    @property
    def run_path(self) -> Path: ...

    def to_yaml(self) -> str: ...


def training_section(spec: StoreSections) -> TrainingConfig:
    """``spec.training``, or a message saying which commands need it: a recipe that only builds a
    store (`prepare`) may leave it out."""
    training = getattr(spec, "training", None)
    if training is None:
        raise UserError(
            f"recipe {spec.name!r} has no `training` section: `train`, `plan`, `run` and `sweep` need one "
            "(at least training.steps, training.global_batch_size and training.micro_batch_size); "
            "`prepare` does not"
        )
    return training
