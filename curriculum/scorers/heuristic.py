"""`heuristic` scorer: document-quality rules (Gopher, FineWeb, and our own) as one continuous score.

Four kinds of rule (`RULES` in `curriculum.scorers.heuristic_rules`; each cites its source and
cut, ``ours`` marks our own cuts):

- published rules with their published cuts: Gopher's quality and repetition rules, FineWeb's
  line rules (terminal punctuation, short lines, line breaks, duplicated-line characters);
- ratios after C4 / RedPajama-v2 signals and five spam / advertising markers, whose cuts are
  ours (the markers were added after a spam ROC-AUC had been seen; BENCHMARKS.md has the
  history of every rule and what had been measured by then). The e-mail address marker is off
  by default and the URL ratio at half weight: both fire about as often on ham as on spam;
- character-level damage, ours: the share of letter words found in a vocabulary (wordfreq's
  100k most frequent words of ``language``), doubled words, sentences starting in lowercase, and
  mojibake (ftfy's badness). Without them the repetition rules made letter noise look *better*
  (it breaks repeated n-grams); their cuts and weights were chosen on the tune half of
  `benchmarks/corruption.py`, never on the human-label sets;
- order damage, ours: numbered items (list items, verses) that do not count up
  (`item_number_disorder_ratio`, chosen the same way; it sees shuffled *numbered* text only,
  not shuffled prose).

Instead of a pass/fail cut, every rule contributes a *soft penalty*

    penalty = softplus((lo - value) / scale) + softplus((value - hi) / scale)   (capped)

which is ~0 well inside the accepted range, ln 2 at the threshold and grows linearly past it, so
documents are ordered by *how far* they are from failing rather than split into two piles.
Count rules (word count) are compared in log space. The score is minus the weighted sum of
penalties (weights: `Rule.weight`, overridable per rule; higher score = better).

This module is the scorer: `HeuristicConfig`, the soft penalties (`rule_penalties`) and
`HeuristicScorer`. The rules table is `curriculum.scorers.heuristic_rules`; every rule's raw
value per document (`rule_values`, for inspection too) and the notes on its speed are in
`curriculum.scorers.heuristic_features`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from curriculum.registry import StrictModel
from curriculum.scorers.base import Scorer
from curriculum.scorers.heuristic_features import rule_values
from curriculum.scorers.heuristic_rules import RULE_NAMES, RULES
from curriculum.scorers.registry import SCORERS

_DEFAULT_WEIGHTS: dict[str, float] = {r.name: r.weight for r in RULES}


class HeuristicConfig(StrictModel):
    name: Literal["heuristic"] = "heuristic"
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Per-rule weight overrides "
        "(default: each rule's own weight, 1 for most; 0 switches a rule off). Keys: rule names, see "
        "`currimix score list`.",
    )
    softness: float = Field(
        1.0,
        gt=0,
        le=100,
        description="Multiplies every rule's penalty scale: larger "
        "= smoother ordering inside the accepted ranges, smaller = closer to pass/fail.",
    )
    max_penalty: float = Field(
        4.0,
        gt=0,
        le=100,
        description="Cap on one rule's penalty, so one badly failed rule cannot outweigh all the others.",
    )
    language: str = Field(
        "en",
        description="Language of the word vocabulary for `valid_word_ratio` (a wordfreq code: en, de, "
        "fr, ...); the other rules are language-independent or English-only as published.",
    )
    max_chars: int = Field(
        500_000,
        ge=1000,
        le=2_000_000,
        description="Rules look at the first N characters "
        "of a document (bounds time and memory on huge documents; at most 2M so one "
        "document's words fit the vectorised n-gram rules' 20-bit positions).",
    )

    @field_validator("language")
    @classmethod
    def _known_language(cls, language: str) -> str:
        if language != "en":
            import wordfreq

            known = sorted(wordfreq.available_languages("large"))
            if language not in known:
                raise ValueError(f"wordfreq has no large word list for {language!r}; choose from {known}")
        return language

    @field_validator("weights")
    @classmethod
    def _known_rules(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(RULE_NAMES))
        if unknown:
            raise ValueError(f"unknown rules {unknown}; choose from {list(RULE_NAMES)}")
        bad = {k: v for k, v in weights.items() if not (math.isfinite(v) and v >= 0)}
        if bad:
            raise ValueError(f"rule weights must be finite and >= 0, got {bad}")
        return weights


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def rule_penalties(
    values: dict[str, np.ndarray], *, softness: float = 1.0, max_penalty: float = 4.0
) -> dict[str, np.ndarray]:
    """Each rule's soft penalty (>= 0, ~0 well inside its range, ln 2 at a threshold)."""
    out = {}
    for rule in RULES:
        value = np.asarray(values[rule.name], dtype=np.float64)
        if rule.log:
            value = np.log1p(value)
        penalty = np.zeros_like(value)
        scale = rule.scale * softness
        for bound, sign in ((rule.lo, -1.0), (rule.hi, 1.0)):
            if bound is not None:
                limit = math.log1p(bound) if rule.log else bound
                penalty += _softplus(sign * (value - limit) / scale)
        out[rule.name] = np.minimum(penalty, max_penalty)
    return out


@SCORERS.register("heuristic", HeuristicConfig)
class HeuristicScorer(Scorer):
    """Minus the weighted sum of soft rule penalties (see the module docstring)."""

    summary = "Gopher/FineWeb rules + our own (spam, damaged text) as a continuous score (no model)"

    def rule_values(self, texts: list[str]) -> dict[str, np.ndarray]:
        return rule_values(texts, max_chars=self.config.max_chars, language=self.config.language)

    def score_batch(self, batch: dict[str, list[Any]]) -> np.ndarray:
        penalties = rule_penalties(
            self.rule_values(batch["text"]), softness=self.config.softness, max_penalty=self.config.max_penalty
        )
        total = np.zeros(len(batch["text"]))
        for name, penalty in penalties.items():
            total += self.config.weights.get(name, _DEFAULT_WEIGHTS[name]) * penalty
        return -total
