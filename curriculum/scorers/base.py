"""The scorer protocol: documents in, one finite quality score per document out (higher = better)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import datasets
import numpy as np
from pydantic import BaseModel

SCORE_COLUMN = "__currimix_score"


class Scorer(ABC):
    """Base class of every scorer.

    A scorer is built from its config (``Scorer(config)``). Scorers with fitted state (n-gram
    models, classifiers) implement `fit`, `save` and `load`; the rest inherit no-ops.
    `score_dataset` is what `prepare` and `currimix score` call; per-batch scorers only
    implement `score_batch`, corpus-level ones (rank normalisation) override `score_dataset`.
    """

    trainable: ClassVar[bool] = False

    def __init__(self, config: BaseModel):
        self.config = config

    @abstractmethod
    def score_batch(self, batch: dict[str, list[Any]]) -> np.ndarray:
        """Scores for a columnar batch (at least a ``text`` column); float64, finite, one per row."""

    def score_dataset(self, ds: datasets.Dataset, *, batch_size: int = 1000, num_proc: int | None = None,
                      desc: str = "score") -> np.ndarray:
        """Scores for every row of ``ds`` in order (float64 array of len(ds))."""
        if len(ds) == 0:
            return np.zeros(0, dtype=np.float64)
        scored = ds.map(lambda b: {SCORE_COLUMN: self.score_batch(b).astype(np.float64)}, batched=True,
                        batch_size=batch_size, num_proc=num_proc, desc=desc, remove_columns=ds.column_names)
        return np.asarray(scored[SCORE_COLUMN], dtype=np.float64)

    def fit(self, positives: list[str], negatives: list[str] | None = None) -> None:
        """Learn state from example documents (trainable scorers only)."""
        raise NotImplementedError(f"{type(self).__name__} has nothing to fit")

    def save(self, folder: Path) -> None:
        """Write fitted state to ``folder`` (stateless scorers write nothing)."""

    def load_state(self, folder: Path) -> None:
        """Read fitted state written by `save`."""
