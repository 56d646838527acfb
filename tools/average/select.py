"""Which checkpoints of a run to average: steps from ``currimix.json``, ``--last K`` / ``--every S``.

A run folder written by ``currimix train`` holds ``snapshots/step_*/`` (weights-only
``save_pretrained`` folders) and ``checkpoints/step_*/`` (Accelerate ``save_state`` folders),
each with a ``currimix.json`` naming its ``kind`` and ``step``. The step comes from that file;
only a folder without one falls back to its ``step_<digits>`` name, and that is reported.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from curriculum.errors import UserError
from tools.train.checkpoint import MARKER_FILE, checkpoint_step, read_marker

log = logging.getLogger(__name__)

KIND_OF_SOURCE = {"snapshots": "snapshot", "checkpoints": "checkpoint"}


def select_run_checkpoints(
    run_dir: Path,
    last: int | None = None,
    every: int | None = None,
    source: Literal["snapshots", "checkpoints"] = "snapshots",
) -> list[Path]:
    """Folders of ``run_dir/<source>`` to average, oldest first.

    ``every=S`` keeps the steps divisible by S; ``last=K`` then keeps the K newest. Folders whose
    ``currimix.json`` names another kind (e.g. an earlier average) and hidden or unfinished
    folders (no marker and no ``step_<digits>`` name) are skipped.
    """
    if source not in KIND_OF_SOURCE:
        raise UserError(f"unknown checkpoint source {source!r}; choose one of: {', '.join(KIND_OF_SOURCE)}")
    for name, value in (("last", last), ("every", every)):
        if value is not None and value < 1:
            raise UserError(f"--{name} must be at least 1, got {value}")
    base = Path(run_dir) / source
    if not base.is_dir():
        raise UserError(f"{base} does not exist; is {run_dir} a run folder written by `currimix train`?")

    by_step: dict[int, Path] = {}
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        marker = read_marker(folder)
        if marker is not None and marker.get("kind") not in (None, KIND_OF_SOURCE[source]):
            log.info("skipping %s: its %s says kind %r", folder, MARKER_FILE, marker.get("kind"))
            continue
        step, note = checkpoint_step(folder)
        if step is None:
            continue
        if note:
            log.warning(note)
        if step in by_step:
            raise UserError(f"two folders claim step {step}: {by_step[step]} and {folder}")
        by_step[step] = folder

    steps = sorted(by_step)
    if every is not None:
        steps = [s for s in steps if s % every == 0]
    if last is not None:
        steps = steps[-last:]
    if not steps:
        found = ", ".join(map(str, sorted(by_step))) or "none"
        raise UserError(f"no {source} in {base} match last={last}, every={every} (steps found: {found})")
    if last is not None and len(steps) < last:
        raise UserError(
            f"asked for the last {last} {source} but {base} has only {len(steps)} matching "
            f"(steps {', '.join(map(str, steps))}); lower --last or check --every"
        )
    return [by_step[s] for s in steps]
