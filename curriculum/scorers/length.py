"""`length` scorer: log document length, the baseline every quality scorer has to beat.

Longer documents are, on average, better web documents (on the DCLM human labels length alone
reaches a ROC-AUC near 0.76), so a scorer that does not beat this is mostly measuring length.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from curriculum.registry import StrictModel
from curriculum.scorers.base import Scorer, clean_texts
from curriculum.scorers.registry import SCORERS


class LengthConfig(StrictModel):
    name: Literal["length"] = "length"
    unit: Literal["chars", "words"] = Field("chars", description="Count characters or whitespace-separated words.")


@SCORERS.register("length", LengthConfig)
class LengthScorer(Scorer):
    """log(1 + length); monotone in length, so only its order matters."""

    summary = "log document length (the baseline)"

    def score_batch(self, batch: dict[str, list[Any]]) -> np.ndarray:
        texts = clean_texts(batch["text"])
        if self.config.unit == "chars":
            lengths = [len(t) for t in texts]
        else:
            lengths = [len(t.split()) for t in texts]
        return np.log1p(np.asarray(lengths, dtype=np.float64))
