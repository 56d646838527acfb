"""The scorer protocol: documents in, one finite quality score per document out (higher = better).

A scorer is built from its validated config. Three kinds of state:

- stateless scorers (heuristic, length, field) only implement `score_batch`;
- trainable scorers (n-gram LM, linear classifier) implement `fit`, `_save_state` and
  `_load_state`; `save(folder)` writes ``scorer.json`` (name + config) beside their state, and a
  config with ``path: folder`` makes `build_scorer` load it, which is how recipes use them;
- model-folder scorers (transformers LM / classifier) load a local `save_pretrained` folder.

`score_dataset` is what `prepare` and `currimix score apply` call on a whole `datasets.Dataset`;
per-batch scorers inherit it (a parallel, progress-reporting `Dataset.map` over the columns the
scorer reads), corpus-level ones (rank-normalised `combine`) and GPU ones override it.
"""

from __future__ import annotations

import importlib
import json
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import datasets
import numpy as np
from pydantic import BaseModel, ValidationError

from curriculum.errors import UserError
from curriculum.files import atomic_path

SCORE_COLUMN = "__currimix_score"
STATE_FILE = "scorer.json"
STATE_FORMAT_VERSION = 1


def clean_texts(texts: list[Any]) -> list[str]:
    """Coerce a batch's text column to valid str: None -> "", lone surrogates -> U+FFFD.

    Documents decoded with ``errors="surrogateescape"`` carry lone surrogates, which crash
    ``str.encode`` (hashing) and Rust tokenizers; replacing them keeps every scorer total.
    """
    out = []
    for text in texts:
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        if not text.isascii():
            text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        out.append(text)
    return out


def optional_module(module: str, *, scorer: str, package: str) -> Any:
    """Import a scorer's optional dependency (the ``filters`` extra), or a UserError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"the {scorer} scorer needs {package}: pip install 'currimix[filters]' (or pip install {package})"
        ) from None


#: ``Field(json_schema_extra=FIT)`` marks config fields fixed at fit time (saved with the state).
FIT: dict[str, Any] = {"fit": True}


class Scorer(ABC):
    """Base class of every scorer (see the module docstring)."""

    trainable: ClassVar[bool] = False
    #: One line for `currimix score list`.
    summary: ClassVar[str] = ""

    def __init__(self, config: BaseModel):
        self.config = config

    # ----------------------------------------------------------------- scoring
    @abstractmethod
    def score_batch(self, batch: dict[str, list[Any]]) -> np.ndarray:
        """Scores for a columnar batch (at least a ``text`` column); float64, finite, one per row."""

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """Convenience: scores for a plain list of texts."""
        return self.score_batch({"text": list(texts)})

    def input_columns(self) -> list[str]:
        """Columns `score_batch` reads; `score_dataset` ships only these to worker processes."""
        return ["text"]

    def score_dataset(
        self, ds: datasets.Dataset, *, batch_size: int = 1000, num_proc: int | None = None, desc: str = "score"
    ) -> np.ndarray:
        """Scores for every row of ``ds`` in order (float64 array of len(ds))."""
        if len(ds) == 0:
            return np.zeros(0, dtype=np.float64)
        missing = [c for c in self.input_columns() if c not in ds.column_names]
        if missing:
            raise UserError(
                f"{self.config.name} scorer: documents have no column {missing} "  # type: ignore[attr-defined]
                f"(columns: {ds.column_names})"
            )
        view = ds.select_columns(self.input_columns())
        num_proc = num_proc if num_proc and num_proc > 1 and len(ds) > batch_size else None
        # keep_in_memory + no cache: scores are cheap to recompute and hashing a fitted model
        # for datasets' cache fingerprint would cost more than the scoring itself.
        scored = view.map(
            lambda b: {SCORE_COLUMN: self.score_batch(b).astype(np.float64)},
            batched=True,
            batch_size=batch_size,
            num_proc=num_proc,
            desc=desc,
            remove_columns=view.column_names,
            keep_in_memory=True,
            load_from_cache_file=False,
            new_fingerprint=f"currimix-score-{type(self).__name__}-{ds._fingerprint}",
        )
        scores = np.asarray(scored[SCORE_COLUMN], dtype=np.float64)
        assert scores.shape == (len(ds),) and np.isfinite(scores).all(), "scorer returned bad scores"
        return scores

    # ----------------------------------------------------------------- fitted state
    @property
    def fitted(self) -> bool:
        """Whether the scorer can score (trainable scorers: after `fit` or a load)."""
        return True

    def require_fitted(self) -> None:
        if not self.fitted:
            name = self.config.name  # type: ignore[attr-defined]
            raise UserError(
                f"{name} scorer has no fitted state: set `path:` to a folder written by "
                f"`currimix score fit {name} ...`, or call fit() first"
            )

    def fit(self, positives: list[str], negatives: list[str] | None = None) -> None:
        """Learn state from example documents (trainable scorers only)."""
        raise UserError(f"the {self.config.name} scorer has nothing to fit")  # type: ignore[attr-defined]

    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``scorer.json`` and the fitted state into ``folder`` atomically (temp folder, rename)."""
        self.require_fitted()
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()) and not overwrite:
            raise UserError(f"{folder} already exists and is not empty; choose a new folder")
        folder.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            config = self.config.model_dump(mode="json", exclude={"path"})
            meta = {"scorer": config["name"], "format_version": STATE_FORMAT_VERSION, "config": config}
            (tmp / STATE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            self._save_state(tmp)
            if folder.exists():
                shutil.rmtree(folder)
        return folder

    def load_state(self, folder: str | Path) -> None:
        """Read state written by `save`; fit-time config fields come from the folder.

        A fit-time field set explicitly in this scorer's config that disagrees with the folder is
        an error (the model was trained with the folder's value).
        """
        folder = Path(folder)
        meta = read_state_meta(folder)
        name = self.config.name  # type: ignore[attr-defined]
        if meta["scorer"] != name:
            raise UserError(f"{folder}/{STATE_FILE} holds a {meta['scorer']!r} scorer, not {name!r}")
        saved = meta["config"]
        merged = self.config.model_dump()
        for key, field in type(self.config).model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            if not extra.get("fit") or key not in saved:
                continue
            if key in self.config.model_fields_set and merged[key] != saved[key]:
                raise UserError(
                    f"{name} scorer: `{key}: {merged[key]!r}` differs from {saved[key]!r} that the "
                    f"state in {folder} was fitted with; drop `{key}` from the config or refit"
                )
            merged[key] = saved[key]
        try:
            self.config = type(self.config).model_validate(merged)
        except ValidationError as exc:
            raise UserError(f"{folder}/{STATE_FILE}: invalid saved config: {exc}") from exc
        self._load_state(folder)

    def _save_state(self, folder: Path) -> None:
        """Subclass hook: write fitted arrays into ``folder`` (which already exists)."""

    def _load_state(self, folder: Path) -> None:
        """Subclass hook: read what `_save_state` wrote."""


def read_state_meta(folder: Path) -> dict[str, Any]:
    """The parsed ``scorer.json`` of a fitted-scorer folder, with errors that name the file."""
    meta_path = Path(folder) / STATE_FILE
    if not meta_path.is_file():
        raise UserError(
            f"{folder} is not a fitted scorer folder (no {STATE_FILE}); write one with `currimix score fit`"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{meta_path}: unreadable: {exc}") from exc
    if not isinstance(meta, dict) or not {"scorer", "config", "format_version"} <= set(meta):
        raise UserError(f"{meta_path}: expected keys scorer, config, format_version")
    if meta["format_version"] != STATE_FORMAT_VERSION:
        raise UserError(
            f"{meta_path}: format_version {meta['format_version']} is not supported "
            f"(this currimix reads {STATE_FORMAT_VERSION}); refit the scorer"
        )
    return meta
