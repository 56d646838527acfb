"""Quality scorers: one module per family, each registered by name in `SCORERS`.

Built in: ``length`` (baseline), ``heuristic`` (Gopher/C4/FineWeb rules), ``ngram`` (KN n-gram
LM), ``hf_lm`` (local causal LM), ``classifier`` (fastText-style linear), ``hf_classifier`` (local
sequence classifier), ``field`` (a precomputed column), ``combine`` (rank-normalised mix), ``langid`` (CLD2 language
share) and ``kenlm`` (KenLM perplexity, CCNet-style; ARPA model from ``lmplz`` or our trainer).

`build_scorer(config)` makes a ready scorer: a trainable scorer whose config names ``path:`` (a
folder written by `currimix score fit` / `Scorer.save`) comes back with its fitted state loaded.
`load_scorer(folder)` does the same from the folder alone. Importing this package registers
every built-in scorer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from curriculum.errors import UserError
from curriculum.registry import validation_problems
from curriculum.scorers import (  # noqa: F401  (each import registers its scorer)
    classifier,
    combine,
    field,
    heuristic,
    hf_classifier,
    hf_lm,
    kenlm_lm,
    langid,
    length,
    ngram,
)
from curriculum.scorers.base import Scorer, read_state_meta
from curriculum.scorers.registry import SCORERS

__all__ = ["SCORERS", "Scorer", "build_scorer", "load_scorer", "parse_scorer_config"]


def parse_scorer_config(config: BaseModel | dict[str, Any]) -> BaseModel:
    """Validate a ``{name: ..., ...}`` dict into its scorer config, as a UserError listing every problem."""
    try:
        return SCORERS.parse(config)
    except ValidationError as exc:
        problems = validation_problems(exc, config if isinstance(config, dict) else None)
        raise UserError(f"invalid {getattr(config, 'get', lambda _k: None)('name')} scorer config", problems) from None


def build_scorer(config: BaseModel | dict[str, Any]) -> Scorer:
    """A ready scorer from its config (a validated model or a plain ``{name: ..., ...}`` dict).

    Trainable scorers load their fitted state from ``config.path`` when it is set.
    """
    cfg = parse_scorer_config(config)
    scorer = SCORERS.build(cfg)
    path = getattr(cfg, "path", None)
    if scorer.trainable and path is not None:
        scorer.load_state(Path(path))
    return scorer


def load_scorer(folder: str | Path) -> Scorer:
    """The fitted scorer saved in ``folder`` (its ``scorer.json`` names the scorer)."""
    meta = read_state_meta(Path(folder))
    if meta["scorer"] not in SCORERS.names():
        raise UserError(f"{folder}: saved scorer {meta['scorer']!r} is unknown; choose one of {SCORERS.names()}")
    return build_scorer({"name": meta["scorer"], "path": str(folder)})
