"""Checkpoint averaging on artifacts: stream K checkpoints into one `save_pretrained` folder.

`streaming` (the average itself: `average_checkpoints`), `inputs` (checkpoint layouts, opened
lazily), `select` (which checkpoints of a run folder), `writer` (atomic sharded safetensors
output). The weight presets are `recipes.averaging`, shared with the recipe's averaging section.
"""

from __future__ import annotations

from recipes.averaging import EMAWeights, ExplicitWeights, SMAWeights, WeightSpec, WMAWeights, resolve_weights
from tools.average.select import select_run_checkpoints
from tools.average.streaming import AverageReport, average_checkpoints

__all__ = [
    "AverageReport",
    "EMAWeights",
    "ExplicitWeights",
    "SMAWeights",
    "WMAWeights",
    "WeightSpec",
    "average_checkpoints",
    "resolve_weights",
    "select_run_checkpoints",
]
