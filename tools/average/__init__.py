"""Checkpoint averaging on artifacts: stream K checkpoints into one `save_pretrained` folder.

`streaming` (the average itself: `average_checkpoints`), `inputs` (checkpoint layouts, opened
lazily), `select` (which checkpoints of a run folder), `writer` (atomic sharded safetensors
output). The weight presets are `tools.average.weights`, shared with the recipe's averaging section.
"""

from __future__ import annotations

from tools.average.select import select_run_checkpoints
from tools.average.streaming import AverageReport, average_checkpoints
from tools.average.weights import EMAWeights, ExplicitWeights, SMAWeights, WeightSpec, WMAWeights, resolve_weights

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
