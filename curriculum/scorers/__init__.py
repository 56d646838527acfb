"""Quality scorers: one module per family, each registered by name in `SCORERS`.

`build_scorer(config)` makes a ready scorer (loading fitted state when the config names a folder).
Importing this package registers every built-in scorer.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from curriculum.scorers import field  # noqa: F401  (registers)
from curriculum.scorers.base import Scorer
from curriculum.scorers.registry import SCORERS

__all__ = ["SCORERS", "Scorer", "build_scorer"]


def build_scorer(config: BaseModel | dict[str, Any]) -> Scorer:
    """A scorer from its config (a validated model or a plain ``{name: ..., ...}`` dict)."""
    return SCORERS.build(SCORERS.parse(config))
