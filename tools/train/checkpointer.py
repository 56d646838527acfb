"""The checkpointer: the one owner of a run folder (as torchtitan's CheckpointManager owns its folder).

`Checkpointer.claim` holds the folder for one `train` (its lock, a write check, an old run kept aside
under ``overwrite`` and restored if the new one fails, the artifact folders checked, a folder this
call created removed again when the run produced nothing). Inside it the loop asks the checkpointer
for the resume point, loads it (refusing non-finite weights), writes the run files, and saves a
checkpoint, an averaging snapshot or the final model when the plan says one is due. The folder
formats themselves (atomic step folders with checksummed markers) are `tools.train.checkpoint`'s;
the rules for claiming a folder that holds a run are `tools.train.run_folder`'s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import torch
from accelerate import Accelerator

from curriculum.errors import UserError
from curriculum.files import write_atomic
from curriculum.locks import folder_lock
from curriculum.paths import describe
from tools.train.checkpoint import resume_point, save_checkpoint, save_final_model, save_snapshot
from tools.train.config import CheckpointConfig, ModelConfig, TrainingConfig
from tools.train.run_folder import PreviousRun, claim_run_folder, holds_results

# Training settings that shape the optimizer state or how it is used; a checkpoint's optimizer.bin
# restores its own values of these, so resuming under other ones would silently ignore them.
OPTIMIZER_KEYS = ("weight_decay", "betas", "eps", "grad_clip")
ARTIFACT_FOLDERS = ("checkpoints", "snapshots", "final")


def model_settings(model: ModelConfig, training: TrainingConfig) -> dict[str, object]:
    """The model section and optimizer settings as flat ``{dotted key: value}``: what a checkpoint's
    weights and optimizer state were made under. Compared key by key on resume, so a refusal can
    name exactly what changed (the plan fingerprint covers the data order and LR)."""
    flat: dict[str, object] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}", item)
        else:
            flat[prefix] = value

    walk("model", model.model_dump(mode="json"))
    dumped = training.model_dump(mode="json")
    for key in OPTIMIZER_KEYS:
        walk(f"training.{key}", dumped[key])
    return flat


def is_main_rank() -> bool:
    """Rank 0 of the launch (before any process group exists: from the launcher's RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


class Checkpointer:
    """Everything `train` does to its run folder: claim it, resume from it, save into it."""

    def __init__(self, run_dir: Path, config: CheckpointConfig, settings: dict[str, object]):
        self.run_dir = run_dir
        self.config = config
        self.settings = settings  # `model_settings`: recorded in each checkpoint, compared on resume
        self.previous: PreviousRun | None = None  # an --overwrite's old run, kept aside until safe

    @contextlib.contextmanager
    def claim(self, *, resume: bool, overwrite: bool) -> Iterator[None]:
        """Hold the run folder for the body. Rank 0 takes the folder's lock first (a `train` refused
        by it must not remove a folder the holder just made); a folder that already holds a run needs
        ``resume`` or ``overwrite`` (`tools.train.run_folder`). When the body fails, an overwritten
        run is put back and a folder this call created is removed if the run produced nothing."""
        run_dir = self.run_dir
        missing = [p for p in (run_dir, *run_dir.parents) if not p.exists()]  # before the lock creates it
        with run_folder_lock(run_dir), remove_if_left_empty(run_dir, missing):
            check_run_dir_writable(run_dir)
            self.previous = claim_run_folder(run_dir, resume=resume, overwrite=overwrite, main=is_main_rank())
            try:
                check_artifact_folders(run_dir)
                yield
            except BaseException:
                if self.previous is not None:
                    self.previous.restore()
                raise
            self._discard_previous()

    def _discard_previous(self) -> None:
        if self.previous is not None:
            self.previous.discard()
            self.previous = None

    def resume_point(
        self, acc: Accelerator, plan_fingerprint: str, total_steps: int, ignore_plan_mismatch: bool
    ) -> tuple[int, Path] | None:
        """The verified checkpoint to resume from: chosen (and reported) by rank 0, shared with the
        others so every rank loads the same one and the files are hashed once."""
        from accelerate.utils import broadcast_object_list

        choice: list[Any] = [None]
        if acc.is_main_process:
            try:
                found = resume_point(
                    self.run_dir, plan_fingerprint, ignore_plan_mismatch, self.settings, total_steps=total_steps
                )
                choice = [("ok", found[0], str(found[1])) if found else ("none",)]
            except UserError as exc:
                choice = [("error", str(exc))]
            if choice[0][0] == "none":
                # Also reached by `currimix run`, which resumes without being asked: no flag is named.
                print(f"note: no checkpoint in {self.run_dir / 'checkpoints'} yet; starting at step 0", file=sys.stderr)
        if acc.num_processes > 1:
            broadcast_object_list(choice)
        kind, *rest = choice[0]
        if kind == "error":
            raise UserError(rest[0])
        return (rest[0], Path(rest[1])) if kind == "ok" else None

    def load(self, acc: Accelerator, model: torch.nn.Module, folder: Path) -> None:
        """`load_state`, with a failure explained (a verified checkpoint that still will not load was
        written by an incompatible version, or its marker predates checksums); then refuse weights
        that are not finite."""
        try:
            acc.load_state(str(folder))
        except Exception as exc:  # torch, safetensors and pickle raise many types for a bad file
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            raise UserError(
                f"cannot load checkpoint {str(folder)!r}: {type(exc).__name__}: {first_line}; "
                "move it away to resume from an older one"
            ) from None
        check_weights_finite(acc, model, folder)

    def read_file(self, folder: Path, name: str) -> str:
        """A text file a checkpoint was saved with (`save`'s ``extra_files``; verified with the folder)."""
        path = folder / name
        if not path.is_file():
            raise UserError(
                f"checkpoint {str(folder)!r} has no {name}, which this recipe needs to resume (it was "
                "written by a run without it); resume it with the recipe that wrote it"
            )
        return path.read_text()

    def write_run_files(self, acc: Accelerator, model: Any, tokenizer: Any, recipe_yaml: str) -> None:
        """The resolved recipe and the model's config + tokenizer, for averaging and inspection (rank 0)."""
        if not acc.is_main_process:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.run_dir / "recipe.yaml", recipe_yaml)
        config_dir = self.run_dir / "model_config"
        acc.unwrap_model(model).config.save_pretrained(str(config_dir))
        tokenizer.save_pretrained(str(config_dir))

    def save(
        self, acc: Accelerator, step: int, plan_fingerprint: str, extra_files: dict[str, str] | None = None
    ) -> Path:
        """A resumable checkpoint after ``step`` steps (keeping ``checkpoint.keep_last``), with
        ``extra_files`` ({name: text}) beside the state. Once the new run can resume, an
        --overwrite's old run is no longer needed and goes."""
        folder = save_checkpoint(
            acc, self.run_dir, step, plan_fingerprint, self.config.keep_last, self.settings, extra_files
        )
        self._discard_previous()
        return folder

    def snapshot(self, acc: Accelerator, model: Any, tokenizer: Any, step: int, plan_fingerprint: str) -> Path:
        """A weights-only folder for averaging after ``step`` steps."""
        return save_snapshot(acc, model, tokenizer, self.run_dir, step, {"plan_fingerprint": plan_fingerprint})

    def final(self, acc: Accelerator, model: Any, tokenizer: Any, step: int, plan_fingerprint: str) -> Path:
        """``final/`` after the last step."""
        return save_final_model(acc, model, tokenizer, self.run_dir, step, {"plan_fingerprint": plan_fingerprint})

    def write_summary(self, acc: Accelerator, summary: dict[str, Any]) -> None:
        """``summary.json`` of a finished run (rank 0)."""
        if acc.is_main_process:
            import json

            write_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=2))


# ---------------------------------------------------------------------------- run-folder checks


@contextlib.contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """The run folder's lock, held by rank 0 (`curriculum.locks`); a path that cannot hold it (a
    file where a folder should be) is reported like an unwritable run folder."""
    if not is_main_rank():
        yield
        return
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(folder_lock(run_dir, "train", "run folder", inside=True))
    except OSError as exc:
        raise UserError(f"cannot write to the run folder {str(run_dir)!r}: {exc.strerror or exc}") from None
    with stack:
        yield


def check_run_dir_writable(run_dir: Path) -> None:
    """Fail before any work when the run folder cannot be created or written."""
    probe = run_dir / f".write-test-{os.getpid()}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to the run folder {str(run_dir)!r}: {exc.strerror or exc}") from None


def check_artifact_folders(run_dir: Path) -> None:
    """The folders a run writes into are folders (or absent): a file named ``checkpoints`` would
    otherwise fail the first save, after the training it took, as if the disk were full."""
    for name in ARTIFACT_FOLDERS:
        path = run_dir / name
        if os.path.lexists(path) and not path.is_dir():
            raise UserError(
                f"{str(path)!r} is {describe(path)}, where the run keeps its {name} folder; move it away or remove it"
            )


@contextlib.contextmanager
def remove_if_left_empty(run_dir: Path, missing: list[Path] | None = None) -> Iterator[None]:
    """When the body fails, remove ``run_dir`` (and parents) if this call created it and the run
    produced nothing: a failed start leaves no empty run folder behind to confuse the next one.
    ``missing``: the folders that did not exist when the call began (default: now)."""
    if missing is None:
        missing = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    try:
        yield
    except BaseException:
        if missing and is_main_rank() and run_dir.is_dir() and not holds_results(run_dir):
            shutil.rmtree(missing[-1], ignore_errors=True)  # the outermost folder this call created
        raise


def check_weights_finite(acc: Accelerator, model: torch.nn.Module, folder: Path) -> None:
    """A resumed checkpoint whose weights hold NaN or inf would train on to garbage: refuse it,
    naming the first such tensor (one pass over the weights and one reduction, once per resume;
    every rank decides the same, also when only some FSDP shards are bad)."""
    names, counts = [], []
    for name, param in model.named_parameters():
        local = param.to_local() if hasattr(param, "to_local") else param  # FSDP2: this rank's shard
        names.append((name, local.numel()))
        counts.append((~torch.isfinite(local.detach())).sum())
    local_counts = torch.stack(counts).cpu() if counts else torch.zeros(0)
    total = acc.reduce(local_counts.sum().to(acc.device).reshape(1), reduction="sum")
    if not int(total.item()):
        return
    first = next(((n, size, int(c)) for (n, size), c in zip(names, local_counts) if c), None)
    where = f"{first[2]} of {first[1]} values of {first[0]} are NaN or inf" if first else "on another process's shard"
    raise UserError(
        f"checkpoint {str(folder)!r} holds non-finite weights ({where}): training from it would only spread "
        "them. Resume from an older checkpoint (move this one away)"
    )
