"""`field` scorer: a precomputed score read from a column of the documents."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field

from curriculum.errors import UserError
from curriculum.registry import StrictModel
from curriculum.scorers.base import Scorer
from curriculum.scorers.registry import SCORERS


class FieldScorerConfig(StrictModel):
    name: Literal["field"] = "field"
    field: str = Field("score", description="Column holding a numeric score (higher = better unless `negate`).")
    negate: bool = Field(False, description="Use minus the value (for columns where lower is better, e.g. perplexity).")
    missing: float | None = Field(
        None, description="Score for rows where the field is missing or not finite; None makes such rows an error."
    )


@SCORERS.register("field", FieldScorerConfig)
class FieldScorer(Scorer):
    """Reads ``config.field`` from each document; dotted names reach into nested records."""

    summary = "a precomputed score read from a column (dotted names reach into records)"

    def input_columns(self) -> list[str]:
        return [self.config.field.split(".")[0]]

    def score_batch(self, batch: dict[str, list[Any]]) -> np.ndarray:
        head, *rest = self.config.field.split(".")
        if head not in batch:
            raise UserError(f"field scorer: documents have no column {head!r} (columns: {sorted(batch)})")
        out = np.empty(len(batch[head]), dtype=np.float64)
        for i, value in enumerate(batch[head]):
            for key in rest:
                value = value.get(key) if isinstance(value, dict) else None
            try:
                number = float(value)  # bools and numeric strings are accepted on purpose
            except (TypeError, ValueError):
                number = math.nan
            if not math.isfinite(number):
                if self.config.missing is None:
                    raise UserError(
                        f"field scorer: row {i} of a batch has {self.config.field}={value!r}, "
                        "not a finite number; set `missing:` to give such rows a score"
                    )
                number = self.config.missing
            out[i] = -number if self.config.negate else number
        return out
