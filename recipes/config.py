"""The recipe schema: one typed, strict, documented YAML file describes a whole run.

Sections: data (domains, their sources and scorers, the token store), tokenizer, model, mixture,
curriculum, schedule (LR), training, checkpoint, averaging. Every registered scorer, mixer,
ordering, LR schedule and averaging weighting is selected by its ``name:``. This module is the
schema only; reading YAML, ``extends``, ``--set`` overrides, presets and error reporting are in
`recipes.loading`.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from curriculum.documents import SourceConfig
from curriculum.errors import UserError
from curriculum.orders import ORDERINGS
from curriculum.orders.stream import PastEpoch, Subset
from curriculum.registry import StrictModel
from curriculum.scorers import SCORERS
from mixers import MIXERS
from recipes.averaging import WEIGHTINGS, EMAWeights
from recipes.paths import PLAIN_NAME, check_path_text
from recipes.schedules import SCHEDULES

ScorerSpec = SCORERS.config_union()
MixerSpec = MIXERS.config_union()
OrderingSpec = ORDERINGS.config_union()
ScheduleSpec = SCHEDULES.config_union()
WeightSpec = WEIGHTINGS.config_union()


def _usable_path(value: str | None) -> str | None:
    """A path field's text can reach the file system (no NUL byte, no over-long name): checked here so
    the message names the key, not a ValueError from deep inside `mkdir`."""
    if value is not None:
        try:
            check_path_text(value, "the path")
        except UserError as exc:
            raise ValueError(str(exc)) from None
    return value


PathText = Annotated[str, AfterValidator(_usable_path)]


class DomainConfig(StrictModel):
    """One domain: where its documents come from and how they are scored."""

    sources: list[SourceConfig] = Field(min_length=1, description="Where the domain's documents come from.")
    scorer: ScorerSpec | None = Field(
        None,
        description="How to score documents for quality (higher = better); "
        "None gives every document score 0 (orderings by score then fall back to "
        "a seeded shuffle).",
    )


class TokenizerConfig(StrictModel):
    """The tokenizer: a local folder, or a byte-level BPE trained on the documents at `prepare`."""

    path: PathText | None = Field(
        None,
        description="A local tokenizer folder (transformers format). None trains a "
        "byte-level BPE on the training documents and saves it with the store.",
    )
    vocab_size: int = Field(8192, ge=260, le=1_000_000, description="Vocabulary size of a trained tokenizer.")
    min_frequency: int = Field(2, ge=1, description="Minimum pair frequency when training the BPE.")
    train_bytes: int = Field(
        50_000_000,
        ge=1000,
        description="Train the tokenizer on at most this many bytes of text, taken round-robin from the domains.",
    )


class DataConfig(StrictModel):
    """The `data` section: the domains and the packed token store `prepare` writes."""

    domains: dict[str, DomainConfig] = Field(min_length=1, description="Domains by name, each with its sources.")
    store: PathText | None = Field(
        None, description="Token store folder (written by `prepare`, read by `train`); default `<run_dir>/store`."
    )
    seq_len: int = Field(1024, ge=8, le=1 << 20, description="Tokens per packed training sequence.")
    val_fraction: float = Field(
        0.02,
        ge=0,
        lt=0.5,
        description="Fraction of each domain's documents held out "
        "(chosen by a hash of the document id) for validation.",
    )
    num_proc: int | None = Field(
        None,
        ge=1,
        description="Local worker processes for `prepare`'s units of work (None: all local cores); "
        "does not change the store's contents.",
    )
    unit_bytes: int = Field(
        256 << 20,
        ge=1024,
        description="Target input bytes per unit of `prepare` work: larger uncompressed JSON-lines and "
        "line-split text files are cut into byte ranges, `datasets` folders into row ranges. Each unit packs "
        "its own sequences and drops its last partial one (kept aside in the shard's tail.bin).",
    )
    retries: int = Field(
        2,
        ge=0,
        le=100,
        description="Times a failed unit of `prepare` work is retried alone (not one failing on bad input: that error would repeat).",
    )

    @model_validator(mode="after")
    def _domain_names(self) -> "DataConfig":
        bad = [n for n in self.domains if not n or not n.replace("_", "").replace("-", "").isalnum()]
        if bad:
            raise ValueError(f"domain names must be letters, digits, '-' or '_': {bad}")
        return self


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
MAX_SEED = 2**32 - 1  # numpy's legacy seeding (np.random.seed) takes no more

RUN_NAME = PLAIN_NAME
STORE_KEYS = {"vocab_size", "bos_token_id", "eos_token_id", "pad_token_id"}
ROPE_ARCHS = {"llama", "mistral", "mixtral", "qwen2", "qwen3"}  # rotary embeddings over whole heads
# transformers config keys that `recipes.model.build_model_config` fills from the recipe's own fields.
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


class MixtureConfig(StrictModel):
    """The `mixture` section: the domain-weight schedule and how the plan realises it."""

    mixer: MixerSpec = Field(
        default_factory=lambda: MIXERS.parse({"name": "static"}),
        description="The domain-weight schedule w_d(t) (static, temperature, upsample, ...).",
    )
    realise: Literal["sample", "weight"] = Field(
        "sample",
        description="`sample`: batches follow the mixture (upsampling). `weight`: batches follow the "
        "natural (token-proportional) mix and each domain's loss is scaled by target/natural (upweighting).",
    )
    # ge=0 also refuses NaN (every comparison with NaN is false), which would otherwise disable the cap.
    max_epochs: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        description="Cap on passes over a domain, e.g. "
        "{default: 4, math: 8}; a plan that needs more is refused (or warned); `.inf` = no cap.",
    )
    on_cap: Literal["error", "warn"] = Field("error", description="What a plan over a `max_epochs` cap does.")
    resolution_steps: int = Field(
        64,
        ge=1,
        le=4096,
        description="The plan evaluates the mixer per window of "
        "this many steps (windows never straddle a phase boundary). Larger windows "
        "build faster for very long runs; resuming costs at most one window.",
    )


class CurriculumConfig(StrictModel):
    """The `curriculum` section: the order of each domain's sequences and what happens past an epoch."""

    order: OrderingSpec = Field(
        default_factory=lambda: ORDERINGS.parse({"name": "random"}),
        description="How each domain's sequences are ordered (random, ascending, ...).",
    )
    per_domain: dict[str, OrderingSpec] = Field(default_factory=dict, description="Orderings for given domains.")
    subset: Subset = Field(
        "random",
        description="Which sequences a partial pass over a domain sees (a budget under one epoch, or the "
        "last partial pass): `random` = a keyed uniform sample, so the seen data keeps the domain's quality "
        "distribution, then ordered; `top` = the highest-scoring ones (quality selection), then ordered; "
        "`prefix` = the first positions of the order over the whole domain (an ascending order then sees "
        "only the worst sequences). See curriculum/orders/stream.py.",
    )
    past_epoch: PastEpoch = Field(
        "reshuffle",
        description="Beyond one epoch: `reshuffle` = each pass ordered again with its random parts redrawn "
        "(the curriculum repeats every pass); `repeat` = the same order every pass; `sweep` = one ordered "
        "sweep over the whole multi-epoch budget, repeats placed by their score (a `random` order keeps one "
        "shuffle per pass); `stop` = refuse plans that need a second epoch.",
    )


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
    eval_sequences_per_domain: int = Field(32, ge=1, description="Validation sequences per domain per pass.")
    trackers: list[Literal["jsonl", "tensorboard"]] = Field(
        ["jsonl", "tensorboard"], description="Where metrics go (in the run folder)."
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


class AveragingConfig(StrictModel):
    """The `averaging` section: where the K weights-only snapshots are taken and how they are weighted."""

    snapshots: int | None = Field(None, ge=1, description="K weights-only snapshots to average; None = off.")
    every_steps: int | None = Field(
        None, ge=1, description="Spacing S between snapshots; None spreads them evenly over `over_phase`."
    )
    end_at: str = Field(
        "end",
        description="Where the window ends: `end` (last step), or `<phase>.start` / "
        "`<phase>.end` for a named data phase.",
    )
    over_phase: str | None = Field(
        None, description="Spread the K snapshots evenly over this phase (instead of `every_steps`)."
    )
    weights: WeightSpec = Field(
        default_factory=lambda: EMAWeights(alpha=0.2),
        description="How the snapshots are weighted, oldest first: {name: ema, alpha: 0.2} (w_i ~ "
        "(1-alpha)^(K-i), newest heaviest; `form: recursive` for the recursion), {name: sma}, {name: wma} or "
        "{name: explicit, values: [...]}; the same presets as `currimix average` (recipes/averaging.py).",
    )

    @model_validator(mode="after")
    def _window(self) -> "AveragingConfig":
        if self.snapshots is None:
            return self
        values = getattr(self.weights, "values", None)
        if values is not None and len(values) != self.snapshots:
            raise ValueError(
                f"weights.values has {len(values)} entries for {self.snapshots} snapshots (one per snapshot)"
            )
        if self.snapshots > 1 and self.every_steps is None and self.over_phase is None:
            raise ValueError("give `every_steps` or `over_phase` to place more than one snapshot")
        return self


class Recipe(StrictModel):
    """A complete run: data, model, mixture, curriculum, LR, training, checkpoints, averaging."""

    name: str = Field(
        description="Run name; the default run folder is `runs/<name>`. (A recipe file may also "
        "start with `extends: <preset or file>` to inherit everything it does not set.)"
    )
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seeds model init, shuffles and the data order (0 to 2**32 - 1)."
    )
    run_dir: PathText | None = Field(None, description="Output folder of `train`; default `runs/<name>`.")
    data: DataConfig
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    schedule: ScheduleSpec = Field(
        default_factory=lambda: SCHEDULES.parse({"name": "cosine"}), description="The LR schedule."
    )
    training: TrainingConfig
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    averaging: AveragingConfig = Field(default_factory=AveragingConfig)

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir or f"runs/{self.name}")

    @property
    def store_path(self) -> Path:
        return Path(self.data.store) if self.data.store else self.run_path / "store"

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        # The name becomes a folder (runs/<name>): one plain path component, so every output stays
        # under the folder the user chose (no `../x`, `/abs`, `a/b` or hidden names).
        if not RUN_NAME.fullmatch(name):
            raise ValueError(
                f"name {name!r} must be one plain folder name: letters, digits, '.', '_' or '-', not starting "
                "with '.' (set run_dir to choose where the run goes)"
            )
        return name

    @model_validator(mode="after")
    def _cross_refs(self) -> "Recipe":
        names = set(self.data.domains)
        unknown = sorted(set(self.curriculum.per_domain) - names)
        if unknown:
            raise ValueError(f"curriculum.per_domain names unknown domains {unknown}; domains: {sorted(names)}")
        unknown = sorted(set(self.mixture.max_epochs) - names - {"default"})
        if unknown:
            raise ValueError(f"mixture.max_epochs names unknown domains {unknown}; domains: {sorted(names)}")
        return self

    def fingerprint(self, *sections: str) -> str:
        """A short hash of the given sections (all if none), for checkpoints and caches."""
        dumped = self.model_dump(mode="json")
        picked = {k: dumped[k] for k in sections} if sections else dumped
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]

    def data_fingerprint(self) -> str:
        """The hash a token store records of what made it: the data and tokenizer sections, less
        ``data.num_proc`` and each source's ``split_timeout_s`` (how many workers ran, or how long a
        pattern may search, changes nothing in the store; the fingerprint of older recipes stays)."""
        dumped = self.model_dump(mode="json")
        data = {k: v for k, v in dumped["data"].items() if k != "num_proc"}
        for domain in data["domains"].values():
            for source in domain["sources"]:
                source.pop("split_timeout_s", None)
        return hashlib.sha256(
            json.dumps({"data": data, "tokenizer": dumped["tokenizer"]}, sort_keys=True).encode()
        ).hexdigest()[:16]
