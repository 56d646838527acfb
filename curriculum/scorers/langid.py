"""`langid` scorer: the share of a document written in the wanted language(s), by Google's CLD2.

The language filter every web pipeline starts with (CCNet, RefinedWeb and FineWeb keep pages
whose language-ID score for the target language passes a cut, e.g. FineWeb's 0.65). Here the
score is continuous, so a curriculum can order by it or a recipe can filter on it:

    score = (percent of the text CLD2 assigns to one of ``languages``) / 100,  in [0, 1]

CLD2 (through ``pycld2``) was chosen over py3langid (langid.py's model) and lingua by measured
accuracy and speed on a hand-labelled English / not-English set from the shared corpus:
accuracy 0.997 vs 0.980 / 0.989, ~11,000 docs/s vs ~800 / ~17 (`benchmarks/langid_choice.py`,
BENCHMARKS.md). CLD2 refuses control characters ("invalid UTF-8"), so they are replaced by
spaces first; a document it still refuses scores 0.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from curriculum.registry import StrictModel
from curriculum.scorers.base import Scorer, clean_texts, optional_module
from curriculum.scorers.registry import SCORERS

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufdd0-\ufdef\ufffe\uffff]")


class LangidConfig(StrictModel):
    name: Literal["langid"] = "langid"
    languages: list[str] = Field(
        default_factory=lambda: ["en"],
        min_length=1,
        description="Accepted languages as CLD2 codes (ISO 639-1 mostly: en, de, fr, zh, zh-Hant, ...); "
        "the score is the share of the text in any of them.",
    )
    max_chars: int = Field(
        20_000, ge=100, description="Characters of each document given to CLD2 (its first N); bounds time."
    )

    @field_validator("languages")
    @classmethod
    def _known(cls, languages: list[str]) -> list[str]:
        known = _cld2_codes()
        if known is not None:
            unknown = sorted(set(languages) - known)
            if unknown:
                raise ValueError(f"unknown CLD2 language codes {unknown}; e.g. {sorted(known)[:12]} ...")
        return languages


def _cld2_codes() -> set[str] | None:
    try:
        import pycld2
    except ImportError:
        return None  # checked again, with the install hint, when the scorer is built
    return {code for _, code in pycld2.LANGUAGES} | {"un"}


@SCORERS.register("langid", LangidConfig)
class LangidScorer(Scorer):
    """Share of the text in the accepted languages (CLD2), in [0, 1]."""

    summary = "language ID (CLD2): share of the text in the wanted languages"

    def __init__(self, config: LangidConfig):
        super().__init__(config)
        self._cld2 = optional_module("pycld2", scorer="langid", package="pycld2")
        self._accepted = frozenset(config.languages)

    def _share(self, text: str) -> float:
        text = _CONTROL.sub(" ", text[: self.config.max_chars])
        try:
            _, _, details = self._cld2.detect(text)
        except self._cld2.error:
            return 0.0
        return sum(percent for _, code, percent, _ in details if code in self._accepted) / 100.0

    def score_batch(self, batch: dict[str, list[Any]]) -> np.ndarray:
        return np.array([self._share(t) for t in clean_texts(batch["text"])], dtype=np.float64)
