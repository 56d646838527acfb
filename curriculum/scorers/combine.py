"""`combine` scorer: several scores rank-normalised and averaged with weights into one.

Scores from different scorers live on unrelated scales (log-odds, log-probabilities, penalty
sums), so each part is first turned into its rank in the corpus divided by the corpus size (a
value in (0, 1], ties sharing their mean rank), then the parts are averaged with their weights.
Rank normalisation is corpus-level, so `score_dataset` (what `prepare` calls) ranks over the
whole dataset; `score_batch` can only rank within the batch it is given.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import datasets
import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator

from curriculum.errors import UserError
from curriculum.registry import StrictModel
from curriculum.scorers.base import Scorer
from curriculum.scorers.build import build_scorer
from curriculum.scorers.metrics import average_ranks
from curriculum.scorers.registry import SCORERS


class CombinePart(StrictModel):
    scorer: Any = Field(description="A scorer config, e.g. {name: heuristic} or {name: classifier, path: ...}.")
    weight: float = Field(1.0, description="Weight of this part's rank-normalised score (negative flips it).")

    @field_validator("scorer")
    @classmethod
    def _parse_scorer(cls, value: Any) -> BaseModel:
        try:
            return SCORERS.parse(value)
        except (UserError, ValidationError) as exc:
            raise ValueError(str(exc)) from None

    @field_validator("weight")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("weight must be finite")
        return value


class CombineConfig(StrictModel):
    name: Literal["combine"] = "combine"
    parts: list[CombinePart] = Field(min_length=1, description="The scorers to combine, each with a weight.")

    @field_validator("parts")
    @classmethod
    def _some_weight(cls, parts: list[CombinePart]) -> list[CombinePart]:
        if not any(p.weight != 0 for p in parts):
            raise ValueError("at least one part needs a non-zero weight")
        return parts


def rank_normalise(scores: np.ndarray) -> np.ndarray:
    """Average rank / n: in (0, 1], order-preserving, ties share a value."""
    return average_ranks(scores) / max(len(scores), 1)


@SCORERS.register("combine", CombineConfig)
class CombineScorer(Scorer):
    """Weighted mean of the parts' rank-normalised scores."""

    summary = "rank-normalise and weight several scorers into one"

    def __init__(self, config: CombineConfig):
        super().__init__(config)

        self.parts = [build_scorer(p.scorer) for p in config.parts]
        self.weights = np.array([p.weight for p in config.parts], dtype=np.float64)

    def input_columns(self) -> list[str]:
        return sorted({c for part in self.parts for c in part.input_columns()})

    def _mix(self, part_scores: list[np.ndarray]) -> np.ndarray:
        ranked = np.stack([rank_normalise(s) for s in part_scores])
        return (self.weights[:, None] * ranked).sum(0) / np.abs(self.weights).sum()

    def score_batch(self, batch: dict[str, list[Any]]) -> np.ndarray:
        return self._mix([part.score_batch(batch) for part in self.parts])

    def score_dataset(
        self, ds: datasets.Dataset, *, batch_size: int = 1000, num_proc: int | None = None, desc: str = "score"
    ) -> np.ndarray:
        if len(ds) == 0:
            return np.zeros(0, dtype=np.float64)
        scores = [
            part.score_dataset(ds, batch_size=batch_size, num_proc=num_proc, desc=f"{desc} [{p.scorer.name}]")
            for part, p in zip(self.parts, self.config.parts)
        ]
        return self._mix(scores)
