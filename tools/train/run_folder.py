"""One run per run folder: what `train` does with a folder that already holds a run.

- Without ``--resume`` or ``--overwrite``, a folder holding results (checkpoints, snapshots,
  final/, or metrics with step records) is refused: training into it would replace final/ and the
  checkpoints and append a second run's records to metrics.jsonl.
- ``--overwrite`` replaces only the run's own artifacts (`RUN_ARTIFACTS`), never other files in the
  folder (a token store kept inside it, notes). They are moved aside into ``.previous-run-<hex>``
  inside the folder first and removed once the new run has written its first checkpoint (or its
  final model); if the new run fails before that, they are put back. A kill in between leaves the
  aside folder, which the next `train` points out.

The caller holds the folder's lock (`curriculum.locks.folder_lock`) around all of this.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

from curriculum.errors import UserError

# Everything `train` (and `currimix run`'s averaging) writes into a run folder.
RUN_ARTIFACTS = (
    "checkpoints",
    "snapshots",
    "final",
    "averaged",
    "metrics.jsonl",
    "summary.json",
    "recipe.yaml",
    "model_config",
    "tensorboard",
)
ASIDE_PREFIX = ".previous-run-"


def holds_results(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run's results: checkpoints, snapshots, final/ or step records."""
    if any((run_dir / name).exists() for name in ("checkpoints", "snapshots", "final")):
        return True
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        return False
    with open(metrics, errors="replace") as lines:  # a long run's log is large: stop at the first step record
        return any('"step": ' in line.replace('"step": null', "") for line in lines)


def describe_results(run_dir: Path) -> str:
    parts = []
    for name in ("final", "checkpoints", "snapshots"):
        folder = run_dir / name
        if name == "final" and folder.exists():
            parts.append("final/")
        elif folder.is_dir():
            count = sum(1 for p in folder.glob("step_*"))
            parts.append(f"{count} {name}")
        elif os.path.lexists(folder):  # what holds_results saw: never an empty "holds a run ()"
            parts.append(f"{name} (not a folder)")
    if (run_dir / "metrics.jsonl").is_file():
        parts.append("metrics.jsonl")
    return ", ".join(parts)


class PreviousRun:
    """The artifacts of the run an ``--overwrite`` replaces, kept aside until the new run has a
    checkpoint. ``discard`` and ``restore`` are idempotent; only rank 0 makes one."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.aside: Path | None = run_dir / f"{ASIDE_PREFIX}{uuid.uuid4().hex[:8]}"
        self.aside.mkdir()
        for name in RUN_ARTIFACTS:
            if (run_dir / name).exists() or (run_dir / name).is_symlink():
                (run_dir / name).rename(self.aside / name)

    def discard(self) -> None:
        """The new run has a checkpoint: the old one goes."""
        if self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None

    def restore(self) -> None:
        """The new run failed before its first checkpoint: its artifacts go, the old ones come back."""
        if self.aside is None:
            return
        for name in RUN_ARTIFACTS:
            if (self.aside / name).exists() or (self.aside / name).is_symlink():
                new = self.run_dir / name
                if new.is_dir() and not new.is_symlink():
                    shutil.rmtree(new)
                elif new.exists() or new.is_symlink():
                    new.unlink()
                (self.aside / name).rename(new)
        shutil.rmtree(self.aside, ignore_errors=True)
        self.aside = None
        print(
            f"note: the new run failed before its first checkpoint; the previous run in {str(self.run_dir)!r} "
            "was put back as it was",
            file=sys.stderr,
        )


def claim_run_folder(run_dir: Path, *, resume: bool, overwrite: bool, main: bool) -> PreviousRun | None:
    """Check that `train` may write into ``run_dir`` (see the module docstring); with ``overwrite``
    move a previous run aside (rank 0 only, ``main``) and return it."""
    if resume and overwrite:
        raise UserError("--resume continues the run in the folder and --overwrite replaces it; give one of them")
    for left in sorted(run_dir.glob(f"{ASIDE_PREFIX}*")) if main else []:
        print(
            f"warning: {str(left)!r} holds the artifacts of a run that an interrupted `train --overwrite` "
            "set aside; move them back into the run folder or remove that folder",
            file=sys.stderr,
        )
    if resume or not holds_results(run_dir):
        return None
    if not overwrite:
        raise UserError(
            f"the run folder {str(run_dir)!r} already holds a run ({describe_results(run_dir)}). Pass --resume "
            "to continue it, --overwrite to replace it (the old run is kept aside until the new one writes its "
            "first checkpoint), or set run_dir to a new folder"
        )
    return PreviousRun(run_dir) if main else None
