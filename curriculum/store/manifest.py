"""The schema of a token store's ``manifest.json`` (and of a format-1 ``meta.json``), checked at open.

The manifest says how to read the shards' bytes (``seq_len``, ``token_dtype``, ``vocab_size``,
``eos_id``) and how many sequences each holds, so a hand edit reinterprets the data rather than
failing: ``token_dtype: int16`` reads the same bytes as other ids, ``vocab_size: 0`` builds an
empty embedding. Every field is therefore validated here (types, bounds, cross-field rules: the
dtype `prepare` writes for that vocabulary, per-domain stats equal to the shards' sums, order
and checksum paths inside the store), and `prepare` also writes ``layout_digest``, a SHA-256 over
the fields that describe the bytes: an edit that is still well-formed (``vocab_size: 300`` ->
``100``) is reported as an edit instead of surfacing later as an IndexError in the embedding.
Informational keys (timings, scorer names, the data fingerprint) are not checked.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from curriculum.registry import validation_problems

SPLITS = ("train", "val")
# The fields that describe the bytes of the store; `layout_digest` covers exactly these.
LAYOUT_KEYS = ("format", "seq_len", "token_dtype", "eos_id", "vocab_size", "domains", "shards", "orders", "checksums")
Count = Annotated[int, Field(ge=0, le=1 << 62)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SplitStats(_Strict):
    """What one split of a shard (or of a whole domain) holds."""

    documents: Count
    sequences: Count
    tokens: Count
    dropped_tokens: Count
    score_min: float | None = Field(None, allow_inf_nan=False)
    score_max: float | None = Field(None, allow_inf_nan=False)


class LegacyStats(BaseModel):
    """A format-1 store's per-domain stats: only the sequence count is read."""

    model_config = ConfigDict(extra="ignore", strict=True)
    sequences: Count


class ShardEntry(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]*$", max_length=200)
    domain: str
    splits: dict[Literal["train", "val"], SplitStats]


class OrderEntry(_Strict):
    file: str
    ties: bool


class FileChecksum(_Strict):
    size: Count
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    sampled: str = Field(pattern=r"^[0-9a-f]{64}$")


class StoreMeta(BaseModel):
    """The fields every store format has (a format-1 ``meta.json``)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    format: int
    seq_len: int = Field(ge=1, le=1 << 24)
    token_dtype: Literal["uint16", "uint32"]
    eos_id: int = Field(ge=0)
    vocab_size: int = Field(ge=1, le=1 << 32)
    domains: list[str] = Field(min_length=1)
    stats: dict[Literal["train", "val"], dict[str, LegacyStats]]

    @model_validator(mode="after")
    def _consistent(self) -> "StoreMeta":
        if len(set(self.domains)) != len(self.domains):
            raise ValueError(f"domains {self.domains} repeat a name")
        if self.eos_id >= self.vocab_size:
            raise ValueError(f"eos_id {self.eos_id} is not below vocab_size {self.vocab_size}")
        fits = "uint16" if self.vocab_size <= 1 << 16 else "uint32"
        if self.token_dtype != fits:
            raise ValueError(
                f"token_dtype {self.token_dtype!r} does not go with vocab_size {self.vocab_size} "
                f"(`prepare` stores such ids as {fits!r}); one of them was edited, so the tokens would be misread"
            )
        for split in SPLITS:
            if set(self.stats.get(split, {})) != set(self.domains):
                raise ValueError(f"stats.{split} should have one entry per domain {self.domains}")
        return self


class Manifest(StoreMeta):
    """A format-2 ``manifest.json``."""

    format: Literal[2]
    stats: dict[Literal["train", "val"], dict[str, SplitStats]]
    shards: list[ShardEntry]
    orders: dict[Literal["train"], dict[str, OrderEntry]] = {}
    checksums: dict[str, FileChecksum] | None = None
    layout_digest: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _shards_add_up(self) -> "Manifest":
        names = [s.name for s in self.shards]
        if len(set(names)) != len(names):
            raise ValueError("two shards have the same name")
        keys = ("documents", "sequences", "tokens")
        totals = {(split, d, k): 0 for split in SPLITS for d in self.domains for k in keys}
        for shard in self.shards:  # one pass: stores have thousands of shards
            for split, counts in shard.splits.items():
                for k in keys:
                    totals[split, shard.domain, k] = totals.get((split, shard.domain, k), 0) + getattr(counts, k)
        for (split, domain, key), total in totals.items():
            stated = getattr(self.stats.get(split, {}).get(domain), key, None)
            if stated != total:
                raise ValueError(f"stats.{split}.{domain}.{key} is {stated}, its shards hold {total}")
        for domain, entry in self.orders.get("train", {}).items():
            if domain not in self.domains or entry.file != f"orders/train/{domain}.npy":
                raise ValueError(f"orders.train.{domain} should be the file 'orders/train/{domain}.npy' of a domain")
        for name in self.checksums or {}:  # strings, not pathlib: a store lists tens of thousands of files
            if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in name.split("/")):
                raise ValueError(f"checksums names {name!r}, which is not a plain path inside the store")
        return self


def layout_digest(meta: dict[str, Any]) -> str:
    """SHA-256 of the manifest fields that describe the store's bytes (`LAYOUT_KEYS`)."""
    layout = {key: meta.get(key) for key in LAYOUT_KEYS}
    return hashlib.sha256(json.dumps(layout, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def manifest_problems(meta: dict[str, Any]) -> list[str]:
    """``key.path: why`` for each problem of a parsed manifest / meta.json (empty when it is sound)."""
    model = Manifest if meta.get("format") == 2 else StoreMeta
    try:
        model.model_validate(meta)
    except ValidationError as exc:
        return validation_problems(exc, meta, top="(the whole file)")
    digest = meta.get("layout_digest")
    if digest is not None and digest != layout_digest(meta):
        return [
            "layout_digest: the fields that describe the shards' bytes (seq_len, token_dtype, eos_id, vocab_size, "
            "domains, shards, orders, checksums) were changed after `prepare` wrote them, so the tokens would be "
            "misread"
        ]
    return []
