"""The data side's configs: the `data` section (domains, sources, scorers, the token store), the
`tokenizer` section and the `curriculum` section (per-domain orders). `prepare` takes `data` and
`tokenizer` only; the plan takes `curriculum`. The recipe schema (`recipes.config`) composes them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Protocol

from pydantic import AfterValidator, Field, model_validator

from curriculum.documents import SourceConfig
from curriculum.errors import UserError
from curriculum.orders import ORDERINGS
from curriculum.orders.stream import PastEpoch, Subset
from curriculum.paths import check_path_text
from curriculum.registry import StrictModel
from curriculum.scorers import SCORERS

ScorerSpec = SCORERS.config_union()
OrderingSpec = ORDERINGS.config_union()


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
        le=1,
        description="Fraction of each domain's documents held out "
        "(chosen by a hash of the document id) for validation; 1 = a store made only of held-out text, "
        "e.g. an evaluation set (it needs tokenizer.path: the training store's tokenizer).",
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


class StoreSections(Protocol):
    """What `prepare` reads of a recipe: its `data` and `tokenizer` sections, the store folder and a
    name for messages. `recipes.config.Recipe` is one; so is any object with these attributes (a
    recipe that only builds a store needs no other section)."""

    name: str
    data: DataConfig
    tokenizer: TokenizerConfig

    @property
    def store_path(self) -> Path: ...


def store_fingerprint(data: DataConfig, tokenizer: TokenizerConfig) -> str:
    """The hash a token store records of what made it: the data and tokenizer sections, less
    ``data.num_proc`` and each source's ``split_timeout_s`` (how many workers ran, or how long a
    pattern may search, changes nothing in the store; the fingerprint of older recipes stays)."""
    dumped = data.model_dump(mode="json")
    dumped.pop("num_proc", None)
    for domain in dumped["domains"].values():
        for source in domain["sources"]:
            source.pop("split_timeout_s", None)
    return hashlib.sha256(
        json.dumps({"data": dumped, "tokenizer": tokenizer.model_dump(mode="json")}, sort_keys=True).encode()
    ).hexdigest()[:16]
