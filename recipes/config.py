"""The recipe schema: one typed, strict, documented YAML file describes a whole run.

Sections: data (domains, their sources and scorers, the token store), tokenizer, model, mixture,
curriculum, schedule (LR), training, checkpoint, averaging. Unknown keys, impossible values and
unknown registry names are all reported at once with their key paths (`load_recipe`). Every
registered scorer, mixer, ordering and LR schedule is selected by its ``name:``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import Field, ValidationError, model_validator

from curriculum.documents import SourceConfig
from curriculum.errors import UserError
from curriculum.order import ORDERINGS
from curriculum.registry import StrictModel
from curriculum.scorers import SCORERS
from mixers import MIXERS, DomainInfo, build_mixer
from recipes.schedules import SCHEDULES

ScorerSpec = SCORERS.config_union()
MixerSpec = MIXERS.config_union()
OrderingSpec = ORDERINGS.config_union()
ScheduleSpec = SCHEDULES.config_union()


class DomainConfig(StrictModel):
    sources: list[SourceConfig] = Field(min_length=1, description="Where the domain's documents come from.")
    scorer: ScorerSpec | None = Field(
        None,
        description="How to score documents for quality (higher = better); "
        "None gives every document score 0 (orderings by score then fall back to "
        "a seeded shuffle).",
    )


class TokenizerConfig(StrictModel):
    path: str | None = Field(
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
    domains: dict[str, DomainConfig] = Field(min_length=1, description="Domains by name, each with its sources.")
    store: str | None = Field(
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
        description="Worker processes for reading, scoring and "
        "tokenizing (None: one process; the tokenizer itself is multi-threaded).",
    )

    @model_validator(mode="after")
    def _domain_names(self) -> "DataConfig":
        bad = [n for n in self.domains if not n or not n.replace("_", "").replace("-", "").isalnum()]
        if bad:
            raise ValueError(f"domain names must be letters, digits, '-' or '_': {bad}")
        return self


class MoEConfig(StrictModel):
    num_experts: int = Field(8, ge=2, description="Experts per MoE layer.")
    top_k: int = Field(2, ge=1, description="Experts each token is routed to.")
    aux_loss_coef: float = Field(0.01, ge=0, description="Weight of the router load-balancing loss.")
    backend: Literal["auto", "megablocks", "transformers"] = Field(
        "auto",
        description="Expert computation: `megablocks` (dropless grouped-GEMM kernels; needs the `moe` "
        "extra, a CUDA GPU and bf16), `transformers` (its own experts, every device), or `auto` "
        "(megablocks when installed and training on CUDA, else transformers). The weights are "
        "transformers' layout either way, so checkpoints move between backends.",
    )


class ModelConfig(StrictModel):
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
    rope_theta: float = Field(10000.0, gt=0, description="RoPE base.")
    init_std: float = Field(0.02, gt=0, description="Std of the normal weight init.")
    moe: MoEConfig | None = Field(None, description="Mixture-of-experts MLPs (pure PyTorch on every device).")
    extra: dict[str, Any] = Field(default_factory=dict, description="Any other transformers config keys.")
    init_from: str | None = Field(
        None,
        description="Start from the weights of this local model folder "
        "instead of a random init (its config wins over the fields above).",
    )

    @model_validator(mode="after")
    def _heads(self) -> "ModelConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
        if self.num_kv_heads and self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} is not divisible by num_kv_heads={self.num_kv_heads}")
        if self.moe and self.moe.top_k > self.moe.num_experts:
            raise ValueError("moe.top_k must not exceed moe.num_experts")
        return self


class MixtureConfig(StrictModel):
    mixer: MixerSpec = Field(
        default_factory=lambda: MIXERS.parse({"name": "static"}),
        description="The domain-weight schedule w_d(t) (static, temperature, upsample, ...).",
    )
    realise: Literal["sample", "weight"] = Field(
        "sample",
        description="`sample`: batches follow the mixture (upsampling). `weight`: batches follow the "
        "natural (token-proportional) mix and each domain's loss is scaled by target/natural (upweighting).",
    )
    max_epochs: dict[str, float] = Field(
        default_factory=dict,
        description="Cap on passes over a domain, e.g. "
        "{default: 4, math: 8}; a plan that needs more is refused (or warned).",
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
    order: OrderingSpec = Field(
        default_factory=lambda: ORDERINGS.parse({"name": "random"}),
        description="How each domain's sequences are ordered (random, ascending, ...).",
    )
    per_domain: dict[str, OrderingSpec] = Field(default_factory=dict, description="Orderings for given domains.")
    past_epoch: Literal["reshuffle", "repeat", "stop"] = Field(
        "reshuffle",
        description="After a domain's epoch: draw the next epoch's order afresh (random parts only), "
        "repeat the same order, or refuse plans that need a second epoch.",
    )


class TrainingConfig(StrictModel):
    steps: int = Field(ge=1, description="Optimizer steps in the run.")
    global_batch_size: int = Field(ge=1, description="Sequences per optimizer step, over all processes.")
    micro_batch_size: int = Field(
        ge=1,
        description="Sequences per forward pass per process; gradient accumulation = global / (micro x processes).",
    )
    weight_decay: float = Field(0.1, ge=0, description="AdamW decoupled weight decay (matrices only).")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas.")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    grad_clip: float | None = Field(1.0, gt=0, description="Clip the global gradient norm; None = off.")
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
    log_batch_ids: bool = Field(
        False,
        description="Record each step's global batch (sequence ids) in the "
        "metrics log (for debugging and tests; large).",
    )
    peak_flops: float | None = Field(
        None, gt=0, description="Peak FLOP/s of one device for MFU; None guesses from the GPU name (no MFU on CPU)."
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
    every_steps: int | None = Field(
        None, ge=1, description="Steps between resumable checkpoints; None = only at the end."
    )
    keep_last: int = Field(2, ge=1, description="Complete checkpoints to keep (older ones are deleted).")


class AveragingConfig(StrictModel):
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
    method: Literal["ema", "sma", "wma", "explicit"] = Field(
        "ema", description="Weights of the average: EMA, uniform (SMA), linear (WMA) or an explicit list."
    )
    alpha: float = Field(0.2, gt=0, lt=1, description="EMA alpha: w_i ~ (1-alpha)^(K-i), newest heaviest.")
    ema_form: Literal["normalized", "recursive"] = Field(
        "normalized",
        description="EMA convention: `normalized` w_i ~ (1-alpha)^(K-i) summing to 1; `recursive` "
        "the recursion seeded from the oldest snapshot (heavier oldest). See tools/average_weights.py.",
    )
    weights: list[float] | None = Field(None, description="Explicit weights, oldest first (method: explicit).")

    @model_validator(mode="after")
    def _window(self) -> "AveragingConfig":
        if self.snapshots is None:
            return self
        if self.method == "explicit" and (self.weights is None or len(self.weights) != self.snapshots):
            raise ValueError(f"method=explicit needs `weights` with {self.snapshots} entries (one per snapshot)")
        if self.snapshots > 1 and self.every_steps is None and self.over_phase is None:
            raise ValueError("give `every_steps` or `over_phase` to place more than one snapshot")
        return self


class Recipe(StrictModel):
    """A complete run: data, model, mixture, curriculum, LR, training, checkpoints, averaging."""

    name: str = Field(
        description="Run name; the default run folder is `runs/<name>`. (A recipe file may also "
        "start with `extends: <preset or file>` to inherit everything it does not set.)"
    )
    seed: int = Field(0, ge=0, description="Seeds model init, shuffles and the data order.")
    run_dir: str | None = Field(None, description="Output folder of `train`; default `runs/<name>`.")
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


# ----------------------------------------------------------------------------------- loading


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as exc:
        raise UserError(f"--set {item!r}: the value is not valid YAML ({exc})") from None
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply dotted ``a.b.c=value`` overrides (values parsed as YAML; list items by index)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        path, value = _parse_override(item)
        node: Any = raw
        for i, part in enumerate(path[:-1]):
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise UserError(
                        f"--set {item!r}: {'.'.join(path[: i + 1])} is not an index of a {len(node)}-item list"
                    )
                node = node[int(part)]
            else:
                if node.get(part) is None:
                    node[part] = {}
                elif not isinstance(node[part], (dict, list)):
                    raise UserError(f"--set {item!r}: {'.'.join(path[: i + 1])} is a value, not a section")
                node = node[part]
        last = path[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise UserError(f"--set {item!r}: {last} is not an index of a {len(node)}-item list")
            node[int(last)] = value
        else:
            node[last] = value
    return raw


def format_validation_error(error: ValidationError) -> list[str]:
    """One line per problem: ``key.path: message`` (discriminator tags dropped from the path)."""
    lines = []
    for err in error.errors():
        loc = [str(p) for p in err["loc"]]
        # Discriminated unions add the tag (e.g. `static`) to the path; it only confuses users.
        loc = [
            p
            for i, p in enumerate(loc)
            if not (i > 0 and loc[i - 1] in {"mixer", "order", "scorer", "schedule"} and p in _TAGS)
        ]
        where = ".".join(loc) or "(recipe)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (not part of the schema; check the spelling)"
        elif err["type"] == "union_tag_invalid":
            message = (
                f"unknown name {err['input'].get('name') if isinstance(err['input'], dict) else err['input']!r}; "
                f"choose one of: {err['ctx']['expected_tags']}"
            )
        elif err["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{where}: {message}")
    return lines


_TAGS = set(SCORERS.names()) | set(MIXERS.names()) | set(ORDERINGS.names()) | set(SCHEDULES.names())


def recipe_from_dict(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    """Validate a recipe mapping, reporting every problem at once."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: a recipe is a YAML mapping, got {type(raw).__name__}")
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        problems = format_validation_error(exc)
        raise UserError(f"{source} has {len(problems)} problem(s):", problems) from None
    problems = check_semantics(recipe)
    if problems:
        raise UserError(f"{source} has {len(problems)} problem(s):", problems)
    return recipe


def check_semantics(recipe: Recipe) -> list[str]:
    """Checks that need the domain names: the mixer builds (its weights name real domains and are
    distributions). Sizes are not known before `prepare`, so every domain counts as size 1 here."""
    problems: list[str] = []
    names = tuple(recipe.data.domains)
    ones = np.ones(len(names), dtype=np.int64)
    try:
        build_mixer(recipe.mixture.mixer, DomainInfo(names, ones, ones), where="mixture.mixer")
    except UserError as exc:
        problems.append(str(exc))
    return problems


def deep_merge(base: Any, override: Any, _nested: bool = False) -> Any:
    """``override`` on top of ``base``: mappings merge key by key, anything else is replaced. A mapping
    naming a different registry entry (``name:``) replaces the base one instead of merging into it."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return copy.deepcopy(override)
    if _nested and "name" in override and override.get("name") != base.get("name"):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = deep_merge(base[key], value, True) if key in base else copy.deepcopy(value)
    return merged


def read_recipe_yaml(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The raw mapping of a recipe file, with ``extends: <preset or path>`` resolved (recursively)."""
    if not path.is_file():
        raise UserError(f"recipe {str(path)!r} does not exist")
    if path.resolve() in _chain:
        raise UserError(f"recipe {str(path)!r} extends itself through {[str(p) for p in _chain]}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"recipe {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"recipe {str(path)!r}: a recipe is a YAML mapping, got {type(raw).__name__}")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise UserError(f"recipe {str(path)!r}: `extends` names one preset or recipe file")
    parent_path = path.parent / parent if parent.endswith((".yaml", ".yml")) else preset_path(parent)
    return deep_merge(read_recipe_yaml(parent_path, _chain + (path.resolve(),)), raw)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a YAML recipe (following ``extends``), apply ``--set`` overrides and validate it."""
    path = Path(path)
    raw = apply_overrides(read_recipe_yaml(path), overrides or [])
    return recipe_from_dict(raw, source=f"recipe {str(path)!r}")


def preset_path(name: str) -> Path:
    """Path of a shipped preset (`recipes/presets/<name>.yaml`)."""
    folder = Path(__file__).parent / "presets"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        choices = sorted(p.stem for p in folder.glob("*.yaml"))
        raise UserError(f"no preset {name!r}; presets: {choices}")
    return path


def resolve_recipe_path(name_or_path: str) -> Path:
    """A recipe argument is a YAML path, or the name of a preset."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        return path
    return preset_path(name_or_path)


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json", exclude_none=False), sort_keys=False)
