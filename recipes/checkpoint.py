"""Run-folder artifacts: resumable checkpoints and weights-only averaging snapshots, written atomically.

Layout under the run folder::

    checkpoints/step_00000100/   Accelerate `save_state` + currimix.json (step, plan fingerprint)
    snapshots/step_00000100/     `save_pretrained` folder (weights, config, tokenizer) + currimix.json
    final/                       the model after the last step, as a `save_pretrained` folder
    model_config/                config.json and tokenizer of the run's model

Everything is written to a dot-prefixed temp folder and renamed into place once complete, and
`currimix.json` (the marker of completeness) is written last. The step lives in that file: folders
are never parsed for it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from curriculum.errors import UserError

FORMAT = 1
MARKER_FILE = "currimix.json"  # marks a folder complete; `currimix average` selects run folders by it
STEP_NAME = re.compile(r"step_(\d+)")


class _TiedWeightsNotice(logging.Filter):
    """Accelerate warns on every save that a tied `lm_head.weight` was dropped; transformers re-ties
    it on load (a test checks), so the warning is noise in every checkpoint."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor" not in record.getMessage()


logging.getLogger("accelerate.utils.other").addFilter(_TiedWeightsNotice())


def step_folder(parent: Path, step: int) -> Path:
    return parent / f"step_{step:08d}"


def read_marker(folder: Path) -> dict | None:
    """The folder's ``currimix.json`` as a dict, or None when it has none."""
    path = folder / MARKER_FILE
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); it should hold the run's step and kind") from None
    if not isinstance(marker, dict):
        raise UserError(f"{path} should hold a JSON object with 'step' and 'kind'")
    return marker


def checkpoint_step(folder: Path) -> tuple[int | None, str | None]:
    """(step, note): the step from ``currimix.json``, else from a ``step_<digits>`` folder name.

    The note says when the name was used, so callers can report it; (None, None) when neither exists.
    """
    marker = read_marker(folder)
    if marker is not None and "step" in marker:
        step = marker["step"]
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise UserError(f"{folder / MARKER_FILE}: 'step' must be a non-negative integer, got {step!r}")
        return step, None
    match = STEP_NAME.fullmatch(folder.name)
    if match:
        note = f"{folder}: no 'step' in {MARKER_FILE}; step {int(match.group(1))} read from the folder name"
        return int(match.group(1)), note
    return None, None


def complete_folders(parent: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint or snapshot under ``parent``, oldest first."""
    found = []
    for folder in parent.glob("step_*") if parent.is_dir() else []:
        try:
            marker = read_marker(folder)
        except UserError as exc:
            logging.getLogger(__name__).warning("skipping %s: %s", folder, exc)
            continue
        if marker and marker.get("format") == FORMAT and isinstance(marker.get("step"), int):
            found.append((marker["step"], folder))
    return sorted(found)


def _finish(accelerator: Accelerator, tmp: Path, final: Path, marker: dict[str, Any]) -> None:
    """Rank 0 writes the marker and renames the temp folder into place."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / MARKER_FILE).write_text(json.dumps({"format": FORMAT, "time": time.time(), **marker}, indent=2))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    accelerator.wait_for_everyone()


def save_checkpoint(accelerator: Accelerator, run_dir: Path, step: int, plan_fingerprint: str, keep_last: int) -> Path:
    """A resumable checkpoint after ``step`` completed steps; keeps the newest ``keep_last``."""
    parent = run_dir / "checkpoints"
    final = step_folder(parent, step)
    tmp = parent / f".{final.name}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    _finish(accelerator, tmp, final, {"kind": "checkpoint", "step": step, "plan_fingerprint": plan_fingerprint})
    if accelerator.is_main_process:
        for _, old in complete_folders(parent)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save_snapshot(
    accelerator: Accelerator,
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    run_dir: Path,
    step: int,
    extra: dict[str, Any],
) -> Path:
    """A weights-only `save_pretrained` folder after ``step`` completed steps (for averaging)."""
    return save_model_folder(
        accelerator,
        model,
        tokenizer,
        step_folder(run_dir / "snapshots", step),
        {"kind": "snapshot", "step": step, **extra},
    )


def save_model_folder(
    accelerator: Accelerator, model: Any, tokenizer: PreTrainedTokenizerBase, final: Path, marker: dict[str, Any]
) -> Path:
    """Write a `save_pretrained` folder (weights, config, tokenizer) atomically; all ranks call this."""
    tmp = final.parent / f".{final.name}.tmp"
    state = accelerator.get_state_dict(model)  # gathers sharded (FSDP) weights; all ranks take part
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        unwrapped: PreTrainedModel = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(str(tmp), state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    _finish(accelerator, tmp, final, marker)
    return final


def save_final_model(
    accelerator: Accelerator,
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    run_dir: Path,
    step: int,
    extra: dict[str, Any],
) -> Path:
    """``run_dir/final`` after the last step. When a snapshot of that step was just written (the
    usual end of an averaging window) its files are hard-linked instead of gathering and writing
    the same weights again; the folders' contents are the same either way."""
    final = run_dir / "final"
    marker = {"kind": "final", "step": step, **extra}
    snapshot = step_folder(run_dir / "snapshots", step)
    if read_marker(snapshot) is None:
        return save_model_folder(accelerator, model, tokenizer, final, marker)
    tmp = final.parent / f".{final.name}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(snapshot, tmp, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(MARKER_FILE))
    _finish(accelerator, tmp, final, marker)
    return final


def _link_or_copy(source: str, target: str) -> None:
    # Weight files are never modified in place, so sharing them is safe; links fail across devices.
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    found = complete_folders(run_dir / "checkpoints")
    return found[-1] if found else None


def resume_point(run_dir: Path, plan_fingerprint: str, ignore_mismatch: bool) -> tuple[int, Path] | None:
    """The newest complete checkpoint, refusing one written under a different plan."""
    found = latest_checkpoint(run_dir)
    if found is None:
        return None
    step, folder = found
    saved = read_marker(folder).get("plan_fingerprint")
    if saved != plan_fingerprint and not ignore_mismatch:
        raise UserError(
            f"checkpoint {str(folder)!r} was written under plan {saved}, this recipe gives plan "
            f"{plan_fingerprint}: the data order or LR would change mid-run. Restore the original "
            "recipe, or pass --ignore-plan-mismatch to continue anyway (the data seen from here on "
            "will differ from the original plan)"
        )
    return step, folder
