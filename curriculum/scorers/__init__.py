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
from curriculum.scorers.base import Scorer
from curriculum.scorers.build import build_scorer, load_scorer, parse_scorer_config
from curriculum.scorers.registry import SCORERS

__all__ = ["SCORERS", "Scorer", "build_scorer", "load_scorer", "parse_scorer_config"]
