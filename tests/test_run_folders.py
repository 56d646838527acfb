"""One run per folder and no training on garbage, on the tiny real run: the lock, refusing to train
over a run, ``--overwrite`` keeping the old run aside, the non-finite guard (stop and skip), NaN
checkpoints, marker schema, and a full disk while saving."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from curriculum.errors import UserError
from curriculum.locks import folder_lock
from recipes.cli import app
from tests.conftest import recipe_dict
from tools.train import checkpointer, pretrain
from tools.train.checkpoint import MARKER_FILE, file_manifest, read_marker, resume_point
from tools.train.trackers import read_metrics

runner = CliRunner()


def _recipe_file(corpus: Path, store: Path, run_dir: Path, folder: Path, **training) -> Path:
    """The finished_run fixture's recipe (4 steps, checkpoints and snapshots at 2 and 4)."""
    raw = recipe_dict(
        corpus,
        run_dir,
        store,
        training={"steps": 4, "eval_every_steps": None, "eval_sequences_per_domain": 2, **training},
        checkpoint={"every_steps": 2, "keep_last": 3},
        averaging={"snapshots": 2, "every_steps": 2, "weights": {"name": "sma"}},
    )
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    shutil.copytree(finished_run, tmp_path / "run")
    return tmp_path / "run"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_train_on_a_locked_run_folder_exits_2_naming_the_holder(
    corpus_dir: Path, tiny_store: Path, run_copy: Path, tmp_path: Path
) -> None:
    recipe = _recipe_file(corpus_dir, tiny_store, run_copy, tmp_path)
    before = _files(run_copy)
    with folder_lock(run_copy, "train", "run folder", inside=True):  # what a running `train` holds
        result = runner.invoke(app, ["train", str(recipe), "--resume", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert f"pid {os.getpid()}" in result.output and "`currimix train`" in result.output
    assert "Traceback" not in result.output
    assert _files(run_copy) == before


def test_a_refused_train_never_removes_the_folder_the_holder_is_creating(
    corpus_dir: Path, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "new" / "run"
    recipe = _recipe_file(corpus_dir, tiny_store, run_dir, tmp_path)
    created: list[bool] = []
    writable = checkpointer.check_run_dir_writable

    def holder_starts_meanwhile(path: Path) -> None:  # the holder creates the folder while we start
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "recipe.yaml").write_text("the holder's")
        created.append(True)
        writable(path)

    monkeypatch.setattr(checkpointer, "check_run_dir_writable", holder_starts_meanwhile)
    with folder_lock(run_dir, "train", "run folder", inside=True):
        result = runner.invoke(app, ["train", str(recipe), "--no-progress"])
        assert result.exit_code == 2 and "in use by" in result.output
        # Refused before touching the folder; had it gone on, a failed start would have removed it.
        assert not created or (run_dir / "recipe.yaml").read_text() == "the holder's"


@pytest.mark.slow
def test_two_concurrent_train_processes_on_one_folder_exactly_one_runs(
    corpus_dir: Path, tiny_store: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    recipe = _recipe_file(corpus_dir, tiny_store, run_dir, tmp_path, steps=20_000, log_every_steps=1000)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "recipes.cli", "train", str(recipe), "--no-progress"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lock = run_dir / ".currimix.lock"
        deadline = time.monotonic() + 300
        while not (lock.is_file() and f'"pid": {first.pid}' in lock.read_text()):
            assert first.poll() is None and time.monotonic() < deadline, "the first train never took the lock"
            time.sleep(0.2)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert first.poll() is None  # the first one still runs
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 2, second.stderr
    message = " ".join(second.stderr.split())
    assert f"is in use by `currimix train` (pid {first.pid} on host" in message and "Traceback" not in message


def test_train_without_resume_refuses_a_finished_run(
    corpus_dir: Path, tiny_store: Path, run_copy: Path, tmp_path: Path
) -> None:
    recipe = _recipe_file(corpus_dir, tiny_store, run_copy, tmp_path)
    before = _files(run_copy)
    result = runner.invoke(app, ["train", str(recipe), "--no-progress"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "already holds a run" in text and "--resume" in text and "--overwrite" in text
    assert _files(run_copy) == before


@pytest.mark.slow
def test_overwrite_keeps_the_old_run_aside_until_the_first_checkpoint(
    corpus_dir: Path, tiny_store: Path, run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (run_copy / "notes.txt").write_text("mine")  # not a run artifact: --overwrite leaves it alone
    recipe = _recipe_file(corpus_dir, tiny_store, run_copy, tmp_path)
    seen: list[tuple[int, bool]] = []
    save = checkpointer.save_checkpoint

    def spy(acc, run_dir, step, *args, **kwargs):
        seen.append((step, any(run_dir.glob(".previous-run-*"))))
        return save(acc, run_dir, step, *args, **kwargs)

    monkeypatch.setattr(checkpointer, "save_checkpoint", spy)
    result = runner.invoke(app, ["train", str(recipe), "--overwrite", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert seen == [(2, True), (4, False)]  # kept aside until the new run had a checkpoint, then removed
    assert not list(run_copy.glob(".previous-run-*"))
    assert (run_copy / "notes.txt").read_text() == "mine"
    configs = [json.loads(line) for line in (run_copy / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("event") == "config" for r in configs) == 1  # one run's records, not two
    assert read_marker(run_copy / "final")["step"] == 4


def test_overwrite_puts_the_old_run_back_when_the_new_one_fails_before_a_checkpoint(
    corpus_dir: Path, tiny_store: Path, run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = _recipe_file(corpus_dir, tiny_store, run_copy, tmp_path)
    before = _files(run_copy)

    def fail(*args, **kwargs):
        raise UserError("simulated failure before the first checkpoint")

    monkeypatch.setattr(checkpointer, "save_checkpoint", fail)
    result = runner.invoke(app, ["train", str(recipe), "--overwrite", "--no-progress"])
    assert result.exit_code == 2 and "simulated failure" in result.output
    assert "was put back" in result.output
    assert _files(run_copy) == before


def test_resume_and_overwrite_together_and_stop_after_below_one_are_refused(
    corpus_dir: Path, tiny_store: Path, run_copy: Path, tmp_path: Path
) -> None:
    recipe = _recipe_file(corpus_dir, tiny_store, run_copy, tmp_path)
    result = runner.invoke(app, ["train", str(recipe), "--resume", "--overwrite", "--no-progress"])
    assert result.exit_code == 2 and "give one of them" in result.output
    for value in ("0", "-3"):
        result = runner.invoke(app, ["train", str(recipe), "--stop-after", value, "--no-progress"])
        assert result.exit_code == 2 and "--stop-after" in result.output, result.output
    with pytest.raises(UserError, match="--stop-after"):
        pretrain.train(_load(recipe), stop_after_steps=0)


def _load(path: Path):
    from recipes.loading import load_recipe

    return load_recipe(path, [])


def _nan_from_step(monkeypatch: pytest.MonkeyPatch, first: int, last: int | None = None) -> None:
    """Losses of the steps ``first``..``last`` (0-based, whole batch) become NaN."""
    accumulate = pretrain.accumulate_gradients

    def poisoned(run, data, tally, guard=None):
        if data.step >= first and (last is None or data.step <= last):
            original = pretrain.sequence_losses
            pretrain.sequence_losses = lambda logits, tokens: original(logits, tokens) * torch.nan
            try:
                return accumulate(run, data, tally, guard)
            finally:
                pretrain.sequence_losses = original
        return accumulate(run, data, tally, guard)

    monkeypatch.setattr(pretrain, "accumulate_gradients", poisoned)


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_naming_step_domains_and_ids_and_saves_nothing_after_it(
    corpus_dir: Path, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    recipe = _recipe_file(corpus_dir, tiny_store, run_dir, tmp_path, log_every_steps=2)
    _nan_from_step(monkeypatch, 2)
    result = runner.invoke(app, ["train", str(recipe), "--no-progress"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "the loss is not finite at step 2" in text and "domain(s)" in text and "sequence ids" in text
    assert "code" in text or "prose" in text or "web" in text
    assert (run_dir / "checkpoints" / "step_00000002").is_dir()  # before the NaN: kept
    assert not (run_dir / "checkpoints" / "step_00000004").exists()  # nothing saved from NaN weights
    assert not (run_dir / "snapshots" / "step_00000004").exists() and not (run_dir / "final").exists()
    assert all(r.get("loss") is not None for r in read_metrics(run_dir))  # no NaN record was logged


@pytest.mark.slow
def test_skip_mode_skips_and_counts_bad_steps_and_ends_with_finite_weights(
    corpus_dir: Path, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    recipe = _recipe_file(
        corpus_dir, tiny_store, run_dir, tmp_path, on_nonfinite="skip", log_every_steps=2, log_batch_ids=True
    )
    _nan_from_step(monkeypatch, 1, 1)
    result = runner.invoke(app, ["train", str(recipe), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "step skipped" in result.output and "at step 1" in result.output
    records = read_metrics(run_dir)
    assert records[-1]["nonfinite/skipped_total"] == 1
    assert [r["nonfinite/skipped_steps"] for r in records if "nonfinite/skipped_steps" in r] == [1, 0]
    assert [len(r["batch_ids"]) for r in records if "batch_ids" in r] == [8, 16]  # the skipped batch is not logged
    assert all(r["loss"] is not None for r in records if "batch_ids" in r)
    weights = load_file(run_dir / "final" / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())


def test_skip_mode_still_stops_when_every_step_of_an_interval_is_bad(
    corpus_dir: Path, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    recipe = _recipe_file(corpus_dir, tiny_store, run_dir, tmp_path, on_nonfinite="skip", log_every_steps=2)
    _nan_from_step(monkeypatch, 0)
    result = runner.invoke(app, ["train", str(recipe), "--no-progress"])
    assert result.exit_code == 2 and "skipping cannot help" in " ".join(result.output.split())


def _poison_checkpoint(folder: Path) -> None:
    weights = load_file(folder / "model.safetensors")
    weights = {k: torch.full_like(v, float("nan")) for k, v in weights.items()}
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    marker = json.loads((folder / MARKER_FILE).read_text())
    marker["files"] = file_manifest(folder)  # a checkpoint whose checksums match its NaN weights
    (folder / MARKER_FILE).write_text(json.dumps(marker))


def test_a_nan_checkpoint_is_refused_on_resume_instead_of_training_on(
    corpus_dir: Path, tiny_store: Path, run_copy: Path, tmp_path: Path
) -> None:
    recipe = _recipe_file(corpus_dir, tiny_store, run_copy, tmp_path, steps=6)
    for folder in (run_copy / "checkpoints").glob("step_*"):
        _poison_checkpoint(folder)
    result = runner.invoke(app, ["train", str(recipe), "--resume", "--ignore-plan-mismatch", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "holds non-finite weights" in " ".join(result.output.split())
    assert not (run_copy / "checkpoints" / "step_00000006").exists()


def test_marker_fields_are_validated_and_a_step_past_the_plan_is_not_resumed(run_copy: Path, capfd) -> None:
    newest = run_copy / "checkpoints" / "step_00000004"
    marker = json.loads((newest / MARKER_FILE).read_text())
    fingerprint = marker["plan_fingerprint"]
    for bad, phrase in (("4", "step"), (True, "step"), (-1, "step")):
        (newest / MARKER_FILE).write_text(json.dumps({**marker, "step": bad}))
        with pytest.raises(UserError, match=phrase):
            read_marker(newest)
    (newest / MARKER_FILE).write_text(json.dumps({**marker, "files": {"x": {"bytes": "many"}}}))
    with pytest.raises(UserError, match="files.x"):
        read_marker(newest)
    (newest / MARKER_FILE).write_text(json.dumps({**marker, "step": 9}))
    assert resume_point(run_copy, fingerprint, False, total_steps=4)[0] == 2  # the edited one is skipped
    assert "says step 9 but its folder is step_00000004" in capfd.readouterr().err
    # Edited step *and* renamed folder: the step lies past the plan's end; the resume falls back.
    (newest / MARKER_FILE).write_text(json.dumps({**marker, "step": 999}))
    newest.rename(run_copy / "checkpoints" / "step_00000999")
    step, folder = resume_point(run_copy, fingerprint, False, total_steps=4)
    assert step == 2 and folder.name == "step_00000002"
    assert "past the end of this recipe's plan (4 steps)" in capfd.readouterr().err


def test_a_full_disk_while_saving_a_checkpoint_is_a_message_and_leaves_no_half_checkpoint(
    corpus_dir: Path, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    recipe = _recipe_file(corpus_dir, tiny_store, run_dir, tmp_path)
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if "step_00000004" in str(f):  # the second checkpoint: write half, then fail as torch does
            Path(f).write_bytes(b"\0" * 64)
            raise RuntimeError(
                "[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0\n"
                "PytorchStreamWriter failed writing file data/0: file write failed"
            )
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    result = runner.invoke(app, ["train", str(recipe), "--no-progress"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "could not write the checkpoint of step 4" in text and "file write failed" in text
    assert "GB free" in text and "--resume" in text
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000002"]  # no temp folder
    assert read_marker(run_dir / "checkpoints" / "step_00000002")["step"] == 2
