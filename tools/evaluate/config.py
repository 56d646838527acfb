"""The `evaluation` section: which held-out sets a run is measured on, and how.

Evaluation sets are first-class: each names a token store (by default the training store) and which
of its sequences count (a split, or every sequence of a store made only of held-out text). They are
evaluated in the training loop (at `training.eval_every_steps`), by `currimix run` on the final and
averaged models, and by `currimix eval --recipe`. Every sequence of a set is evaluated unless the
set caps it. Probes are small ranked-classification sets (`tools/evaluate/probes.py`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from curriculum.config import PathText
from curriculum.paths import PLAIN_NAME
from curriculum.registry import StrictModel

# Metric prefixes the loop and the sweep already use: a set with one of these names would write over them.
RESERVED_SET_NAMES = {"bpb", "probe", "gap", "mix", "quality", "moe", "loss", "lr", "snr", "noise"}
BUILTIN_PROBES = ("python-keywords", "python-builtins", "stdlib-docstrings")


class EvalSetConfig(StrictModel):
    """One held-out evaluation set: a token store (or the training store) and which of its sequences."""

    store: PathText | None = Field(
        None,
        description="Token store folder (made by `currimix prepare`, e.g. from a recipe with only name, data and "
        "tokenizer). None = the training store.",
    )
    split: Literal["val", "train", "all"] | None = Field(
        None,
        description="Which sequences: `val`, `train`, or `all` (both splits, for a store made only of held-out "
        "text). None = `val` of the training store, `all` of another store.",
    )
    sequences_per_domain: int | None = Field(
        None, ge=1, description="Evaluate at most this many sequences per domain (evenly spaced); None = all."
    )

    def resolved_split(self) -> str:
        if self.split is not None:
            return self.split
        return "val" if self.store is None else "all"


class ProbeSetConfig(StrictModel):
    """A ranked-classification probe set: a shipped one by name, or a jsonl file of {context, choices, label}."""

    builtin: Literal[BUILTIN_PROBES] | None = Field(  # type: ignore[valid-type]
        None,
        description="A probe set built at run time from this Python installation: `python-keywords` (which "
        "keyword completes a line of stdlib code), `python-builtins` (which builtin a stdlib line calls), "
        "`stdlib-docstrings` (which function a docstring's first line belongs to).",
    )
    path: PathText | None = Field(
        None,
        description='A jsonl file, one object per line: {"context": str, "choices": [str, ...], "label": int}.',
    )
    max_examples: int = Field(200, ge=1, description="Examples used (the first N; a shipped set is built with N).")

    @model_validator(mode="after")
    def _one_source(self) -> "ProbeSetConfig":
        if (self.builtin is None) == (self.path is None):
            raise ValueError("give exactly one of `builtin` (a shipped probe set) or `path` (a jsonl file)")
        return self


class EvaluationConfig(StrictModel):
    """The `evaluation` section: held-out sets (loss and bits per byte) and probes, in the loop and after."""

    sets: dict[str, EvalSetConfig] = Field(
        default_factory=lambda: {"val": EvalSetConfig()},
        description="Evaluation sets by name (the name prefixes their metrics: `<name>/<domain>`, "
        "`bpb/<name>/<domain>`). Default: `val`, every validation sequence of the training store.",
    )
    bits_per_byte: bool = Field(
        True,
        description="Also report bits per byte per set, domain and source: the set's nats / ln 2 / the UTF-8 bytes "
        "of its evaluated tokens (decoded with the store's tokenizer), comparable across tokenizers.",
    )
    probes: dict[str, ProbeSetConfig] = Field(
        default_factory=dict,
        description="Probe sets by name: accuracy (`probe/<name>/acc`) and bits per byte of the correct answer "
        "(`probe/<name>/bpb`).",
    )
    micro_batch_size: int | None = Field(
        None, ge=1, description="Sequences per evaluation forward pass; None = training.micro_batch_size (or 8)."
    )
    in_loop: bool = Field(
        True,
        description="Evaluate the sets and probes in the training loop at training.eval_every_steps; false: only "
        "`currimix run` (final and averaged models) and `currimix eval --recipe` measure them.",
    )

    @field_validator("sets", "probes")
    @classmethod
    def _names(cls, named: dict) -> dict:
        for name in named:
            if not PLAIN_NAME.fullmatch(name) or "/" in name:
                raise ValueError(f"name {name!r} must be letters, digits, '.', '_' or '-'")
            if name in RESERVED_SET_NAMES:
                raise ValueError(
                    f"name {name!r} is a metric prefix already; choose another (not {sorted(RESERVED_SET_NAMES)})"
                )
        return named
