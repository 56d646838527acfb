"""Run-folder artifacts: resumable checkpoints and weights-only averaging snapshots, written atomically.

Layout under the run folder::

    checkpoints/step_00000100/   Accelerate `save_state` + currimix.json (step, plan fingerprint)
    snapshots/step_00000100/     `save_pretrained` folder (weights, config, tokenizer) + currimix.json
    final/                       the model after the last step, as a `save_pretrained` folder
    model_config/                config.json and tokenizer of the run's model

Everything is written to a dot-prefixed temp folder and renamed into place once complete, and
`currimix.json` (the marker of completeness) is written last. The step lives in that file: folders
are never parsed for it. The marker also lists every file of the folder with its size and SHA-256,
so a resume verifies a checkpoint before loading it and falls back to the newest one that verifies
(`resume_point`); a checkpoint records the model and optimizer settings it was written under, and a
resume under different ones is refused, naming the keys. Files get the permissions the umask gives
(safetensors writes 0600 temp files; they are opened up to match everything else).

Markers are read through a schema (`RunMarker`): a marker whose fields have the wrong type is
reported as damaged, never trusted; on resume so is a checkpoint whose step disagrees with its
``step_<N>`` folder name (`save_checkpoint` names it after the step) or lies past the plan's end. A write that fails (a full disk: `torch.save` raises
RuntimeError, safetensors its own error) removes the temp folder and says so (`WriteFailed`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from accelerate import Accelerator
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from curriculum.errors import UserError
from curriculum.files import shared_temp_name

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


RUN_KINDS = ("checkpoint", "snapshot", "final")


class FileEntry(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class RunMarker(BaseModel):
    """The fields of a checkpoint's, snapshot's or final model's ``currimix.json`` that currimix
    reads. Strict types (a step of ``"4"`` or ``4.0`` is damage, not a step); unknown extra fields
    are kept, so a newer currimix may add some."""

    model_config = ConfigDict(strict=True, extra="allow")
    format: int | None = Field(None, ge=1)
    kind: str
    step: int = Field(ge=0)
    time: float | None = None
    plan_fingerprint: str | None = None
    settings: dict[str, Any] | None = None
    files: dict[str, FileEntry] | None = None


def read_marker(folder: Path) -> dict | None:
    """The folder's ``currimix.json`` as a dict, or None when it has none.

    A marker of a run artifact (kind checkpoint, snapshot or final) must fit `RunMarker`; otherwise
    it is a `UserError` naming the field."""
    path = folder / MARKER_FILE
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
        raise UserError(f"{path} is not valid JSON ({exc}); it should hold the run's step and kind") from None
    if not isinstance(marker, dict):
        raise UserError(f"{path} should hold a JSON object with 'step' and 'kind'")
    if marker.get("kind") in RUN_KINDS:
        _check_run_marker(path, marker)
    return marker


def _check_run_marker(path: Path, marker: dict) -> None:
    # JSON numbers like 1.0 arrive as floats; strict mode refuses them for the int fields, but
    # accepts ints for the float `time` field only after the coercion below.
    data = dict(marker)
    if isinstance(data.get("time"), int) and not isinstance(data.get("time"), bool):
        data["time"] = float(data["time"])
    try:
        RunMarker.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()[:10]]
        raise UserError(f"{path} is damaged (its fields do not fit a {marker['kind']} marker):", problems) from None


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
        if marker and marker.get("format") == FORMAT and marker.get("kind") in RUN_KINDS:
            found.append((marker["step"], folder))
    return sorted(found)


class WriteFailed(UserError):
    """Writing a checkpoint or model folder failed (full disk, quota, permissions); nothing half
    written is left."""


@contextlib.contextmanager
def removed_on_failure(tmp: Path, final: Path, what: str, main: bool = True) -> Iterator[None]:
    """Remove ``tmp`` when the body fails; a failure to write (an OSError, and the RuntimeError
    `torch.save` and the error safetensors raise on a full disk) becomes a `WriteFailed` naming
    ``final`` and the free space, so a full disk is a message, not a traceback or a half folder."""
    try:
        yield
    except BaseException as exc:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        if not _is_write_failure(exc):
            raise
        reason = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.strerror else str(exc)
        reason = (reason.splitlines() or [type(exc).__name__])[-1].strip()[:300]
        try:
            free = f"{shutil.disk_usage(final.parent if final.parent.exists() else Path.cwd()).free / 1e9:.2f} GB free"
        except OSError:
            free = "free space unknown"
        raise WriteFailed(
            f"could not write the {what} {str(final)!r}: {type(exc).__name__}: {reason} ({free} there). Nothing half "
            "written was kept and older checkpoints are untouched; free some space (or fix the permissions) "
            "and continue with `currimix train RECIPE --resume`"
        ) from None


def _is_write_failure(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, UserError) or not isinstance(exc, Exception):
        return False
    text = str(exc).lower()
    # torch: "PytorchStreamWriter failed writing file data/0: file write failed";
    # safetensors: "Error while serializing: IoError(Os { code: 28, kind: StorageFull, ... })".
    return any(word in text for word in ("write failed", "failed writing", "ioerror", "no space", "storagefull"))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normalise_permissions(folder: Path) -> None:
    """Give every file and folder under ``folder`` the mode the umask gives new files (0644/0755 for
    the usual 022): safetensors writes weights through 0600 temp files, tempfile makes 0700 folders."""
    mask = _umask()
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


HASH_CHUNK = 8 << 20


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in chunks. Cost: one extra read of each checkpoint at save and at
    resume; 0.36 GB/s was measured on the shared 2-core dev box at load ~11 (2026-11-29), i.e. about
    45 s for the 16 GB checkpoint (weights + AdamW state) of a 1B-parameter model."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """{relative path: {bytes, sha256}} of every file under ``folder`` but the marker."""
    return {
        path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size, "sha256": file_digest(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MARKER_FILE
    }


def verify_folder(folder: Path) -> str | None:
    """Why ``folder`` does not match the file list in its marker, or None when every file does.

    Sizes are compared first (cheap; catches truncation and missing files), then checksums."""
    try:
        marker = read_marker(folder)
    except UserError as exc:
        return str(exc)
    if marker is None:
        return f"no {MARKER_FILE}"
    files = marker.get("files")
    if files is None:
        return None  # written before markers listed files: nothing to verify against
    if not isinstance(files, dict) or not files:
        return f"{MARKER_FILE} has no usable file list"
    try:  # any kind of marker: its list is read below, so it must have the list's shape
        files = {name: FileEntry.model_validate(entry).model_dump() for name, entry in files.items()}
    except ValidationError as exc:
        return f"{MARKER_FILE} has a damaged file list ({exc.errors()[0]['msg']})"
    outside = [n for n in files if Path(n).is_absolute() or ".." in Path(n).parts or not n]
    if outside:  # a marker lists only the folder's own files; never read (or hash) one elsewhere
        return f"{MARKER_FILE} lists files outside its folder: {outside[:3]}"
    problems = []
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != expected.get("bytes"):
            problems.append(f"{name} has {path.stat().st_size} bytes, the marker says {expected.get('bytes')}")
    if problems:
        return "; ".join(problems)
    for name, expected in files.items():
        if file_digest(folder / name) != expected.get("sha256"):
            problems.append(f"{name} does not match its checksum (damaged after writing)")
    return "; ".join(problems) or None


def _finish(
    accelerator: Accelerator, tmp: Path, final: Path, marker: dict[str, Any], files: dict[str, Any] | None = None
) -> None:
    """Rank 0 lists every file with size and checksum in the marker (``files``, when the caller
    already has that list for exactly these files), writes it last and renames the temp folder into
    place."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        normalise_permissions(tmp)
        record = {"format": FORMAT, "time": time.time(), **marker, "files": files or file_manifest(tmp)}
        (tmp / MARKER_FILE).write_text(json.dumps(record, indent=2))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    accelerator.wait_for_everyone()


def save_checkpoint(
    accelerator: Accelerator,
    run_dir: Path,
    step: int,
    plan_fingerprint: str,
    keep_last: int,
    settings: dict[str, Any] | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """A resumable checkpoint after ``step`` completed steps; keeps the newest ``keep_last``.
    ``extra_files`` ({name: text}, e.g. a mixture controller's state) are written beside the state
    by rank 0 and checksummed in the marker like every other file.

    ``settings`` (the model and optimizer settings, `tools.train.plan.model_settings`) go into the
    marker so a resume under a different model is refused by name, not by a state-dict error."""
    parent = run_dir / "checkpoints"
    final = step_folder(parent, step)
    tmp = shared_temp_name(final)
    with removed_on_failure(tmp, final, f"checkpoint of step {step}", accelerator.is_main_process):
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        if accelerator.is_main_process:
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text)
        marker = {"kind": "checkpoint", "step": step, "plan_fingerprint": plan_fingerprint}
        if settings is not None:
            marker["settings"] = settings
        _finish(accelerator, tmp, final, marker)
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
    tmp = shared_temp_name(final)
    state = accelerator.get_state_dict(model)  # gathers sharded (FSDP) weights; all ranks take part
    with removed_on_failure(
        tmp, final, f"{marker['kind']} model of step {marker['step']}", accelerator.is_main_process
    ):
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
    snapshot_marker = read_marker(snapshot)
    if snapshot_marker is None:
        return save_model_folder(accelerator, model, tokenizer, final, marker)
    tmp = shared_temp_name(final)
    with removed_on_failure(tmp, final, f"final model of step {step}", accelerator.is_main_process):
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(snapshot, tmp, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(MARKER_FILE))
        # The same files (links), so the snapshot's list of sizes and checksums holds: no second read.
        _finish(accelerator, tmp, final, marker, files=snapshot_marker.get("files"))
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


def resume_point(
    run_dir: Path,
    plan_fingerprint: str,
    ignore_mismatch: bool,
    settings: dict[str, Any] | None = None,
    total_steps: int | None = None,
) -> tuple[int, Path] | None:
    """The newest checkpoint that verifies, refusing one written under a different plan or model.

    Checkpoints whose files do not match their marker (truncated, overwritten, missing) are skipped
    with a message naming them and why. None when the run has no checkpoint at all; a UserError when
    it has some but none verifies, so a damaged run never silently starts again from step 0. A
    checkpoint whose step lies past ``total_steps`` (the plan's end) does not belong to this plan
    and is skipped like a damaged one (resuming "after the end" would only write final/).
    """
    parent = run_dir / "checkpoints"
    found = complete_folders(parent)
    listed = {folder for _, folder in found}
    # step_* folders only appear by a rename after their marker was written; one without a valid
    # marker was damaged afterwards and is reported, never silently ignored.
    skipped = [
        f"{folder}: {verify_folder(folder) or f'its {MARKER_FILE} is not a checkpoint marker this currimix reads'}"
        for folder in sorted(parent.glob("step_*") if parent.is_dir() else [])
        if folder not in listed
    ]
    if not found and not skipped:
        return None
    for step, folder in reversed(found):
        problem = verify_folder(folder)
        if problem is None and folder.name != step_folder(parent, step).name:
            # `save_checkpoint` names the folder after the step; a difference means an edit.
            problem = f"{MARKER_FILE} says step {step} but its folder is {folder.name} (edited or renamed)"
        if problem is None and total_steps is not None and step > total_steps:
            problem = f"its step {step} is past the end of this recipe's plan ({total_steps} steps)"
        if problem is None:
            break
        skipped.append(f"{folder} (step {step}): {problem}")
    if not found or problem is not None:
        raise UserError(
            f"--resume: no checkpoint in {run_dir / 'checkpoints'} verifies, so there is nothing safe to "
            "resume from (starting again from step 0 would discard the run). Move the damaged "
            "checkpoints away to start over:",
            skipped,
        )
    for line in skipped:
        print(f"warning: skipped checkpoint {line}; resuming from step {step} instead", file=sys.stderr)
    marker = read_marker(folder) or {}
    check_settings(folder, marker.get("settings"), settings)
    saved = marker.get("plan_fingerprint")
    if saved != plan_fingerprint and not ignore_mismatch:
        raise UserError(
            f"checkpoint {str(folder)!r} was written under plan {saved}, this recipe gives plan "
            f"{plan_fingerprint}: the data order or LR would change mid-run. Restore the original "
            "recipe, or pass --ignore-plan-mismatch to continue anyway (the data seen from here on "
            "will differ from the original plan)"
        )
    return step, folder


def check_settings(folder: Path, saved: dict[str, Any] | None, current: dict[str, Any] | None) -> None:
    """Refuse to load a checkpoint written under other model or optimizer settings, naming the keys."""
    if saved is None or current is None:
        return
    keys = sorted(set(saved) | set(current))
    differ = [
        f"{k}: checkpoint {saved.get(k, '<unset>')!r}, recipe {current.get(k, '<unset>')!r}"
        for k in keys
        if saved.get(k, "<unset>") != current.get(k, "<unset>")
    ]
    if differ:
        raise UserError(
            f"checkpoint {str(folder)!r} was written with other model/optimizer settings; its weights and "
            "optimizer state do not fit this recipe. Restore these values (or train into a new run_dir):",
            differ,
        )
