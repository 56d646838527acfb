"""Scorers from their configs: validate a ``{name: ..., ...}`` config, build it (loading a fitted
scorer's state), or load a fitted scorer from its folder. Importing this module imports the package,
whose modules register every scorer in `SCORERS`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from curriculum.errors import UserError
from curriculum.registry import validation_problems
from curriculum.scorers.base import Scorer, read_state_meta
from curriculum.scorers.registry import SCORERS


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
