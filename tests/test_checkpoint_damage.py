"""Damaged checkpoints: every file of the newest one, garbled or truncated, is caught by the marker's
sizes and checksums; the resume falls back to the previous checkpoint, says which one it skipped
and why, and the run still ends bitwise equal to an uninterrupted one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from curriculum.errors import UserError
from recipes.loading import recipe_from_dict
from tests.conftest import losses_by_step, recipe_dict
from tools.train.checkpoint import MARKER_FILE, read_marker, verify_folder
from tools.train.pretrain import train

STEPS, EVERY, STOP = 6, 2, 4
NEWEST = f"checkpoints/step_{STOP:08d}"
FILES = ("model.safetensors", "optimizer.bin", "random_states_0.pkl", MARKER_FILE)


def _recipe(corpus: Path, store: Path, run_dir: Path, **sections):
    training = {
        "steps": STEPS,
        "eval_every_steps": None,
        "eval_sequences_per_domain": 2,
        **sections.pop("training", {}),
    }
    raw = recipe_dict(
        corpus,
        run_dir,
        store,
        training=training,
        checkpoint={"every_steps": EVERY, "keep_last": 3},
        averaging={"snapshots": None},
        **sections,
    )
    return recipe_from_dict(raw)


@pytest.fixture(scope="module")
def runs(corpus_dir: Path, tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An uninterrupted run, and one stopped after STOP steps (checkpoints at 2 and 4)."""
    base = tmp_path_factory.mktemp("damage")
    train(_recipe(corpus_dir, tiny_store, base / "full"), show_progress=False)
    train(_recipe(corpus_dir, tiny_store, base / "stopped"), stop_after_steps=STOP, show_progress=False)
    return {"full": base / "full", "stopped": base / "stopped"}


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])  # same size, other bytes
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


DAMAGE = {"garbage": _garble, "truncated": _truncate, "missing": Path.unlink}


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", FILES)
def test_damaged_newest_checkpoint_falls_back_and_ends_bitwise_equal(
    runs, corpus_dir: Path, tiny_store: Path, tmp_path: Path, capfd, name: str, damage: str
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(runs["stopped"], run_dir)
    DAMAGE[damage](run_dir / NEWEST / name)
    summary = train(_recipe(corpus_dir, tiny_store, run_dir), resume=True, show_progress=False)
    err = capfd.readouterr().err
    assert f"skipped checkpoint {run_dir / NEWEST}" in err and f"resuming from step {EVERY}" in err
    if name != MARKER_FILE:
        assert name in err  # the message names the damaged file
    assert summary["steps_done"] == STEPS
    reference, resumed = losses_by_step(runs["full"]), losses_by_step(run_dir)
    assert sorted(resumed) == list(range(STEPS))
    assert [reference[s] for s in range(STEPS)] == [resumed[s] for s in range(STEPS)]  # bitwise
    final = "final/model.safetensors"
    assert (run_dir / final).read_bytes() == (runs["full"] / final).read_bytes()
    assert verify_folder(run_dir / NEWEST) is None  # rewritten by the resumed run


def test_marker_lists_every_file_with_size_and_checksum(runs) -> None:
    folder = runs["stopped"] / NEWEST
    files = read_marker(folder)["files"]
    assert set(files) == {p.name for p in folder.iterdir() if p.name != MARKER_FILE} >= set(FILES[:3])
    for name, entry in files.items():
        assert entry["bytes"] == (folder / name).stat().st_size and len(entry["sha256"]) == 64


def test_resume_with_no_verifying_checkpoint_refuses_instead_of_starting_over(
    runs, corpus_dir: Path, tiny_store: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(runs["stopped"], run_dir)
    for folder in (run_dir / "checkpoints").iterdir():
        _truncate(folder / "optimizer.bin")
    before = (run_dir / "metrics.jsonl").read_bytes()
    with pytest.raises(UserError, match="no checkpoint in .* verifies") as caught:
        train(_recipe(corpus_dir, tiny_store, run_dir), resume=True, show_progress=False)
    assert "step_00000002" in str(caught.value) and "step_00000004" in str(caught.value)
    assert (run_dir / "metrics.jsonl").read_bytes() == before  # nothing trained, nothing logged


def test_resume_under_another_model_names_the_differing_keys(
    runs, corpus_dir: Path, tiny_store: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(runs["stopped"], run_dir)
    changed = _recipe(
        corpus_dir,
        tiny_store,
        run_dir,
        model={"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 64},
    )
    with pytest.raises(UserError, match="model/optimizer settings") as caught:
        train(changed, resume=True, show_progress=False)
    assert "model.hidden_size: checkpoint 32, recipe 64" in str(caught.value)
    # Optimizer settings live in optimizer.bin, which would silently override the recipe's.
    changed = _recipe(corpus_dir, tiny_store, run_dir, training={"betas": [0.9, 0.99]})
    with pytest.raises(UserError, match=r"training\.betas"):
        train(changed, resume=True, show_progress=False)


def test_checkpoint_files_follow_the_umask(runs) -> None:
    """safetensors writes 0600 files; everything in a run folder gets the same mode as the rest."""
    modes = {p.stat().st_mode & 0o777 for p in runs["full"].rglob("*") if p.is_file()}
    assert len(modes) == 1, modes


def test_markers_are_json_with_the_step(runs) -> None:
    marker = json.loads((runs["stopped"] / NEWEST / MARKER_FILE).read_text())
    assert marker["step"] == STOP and marker["kind"] == "checkpoint" and "model.hidden_size" in marker["settings"]


def test_a_legacy_checkpoint_that_will_not_load_is_a_message(
    runs, corpus_dir: Path, tiny_store: Path, tmp_path: Path
) -> None:
    """Markers written before file lists cannot be verified; a damaged file then fails in load_state,
    which is reported with the folder and the way out instead of a traceback."""
    run_dir = tmp_path / "run"
    shutil.copytree(runs["stopped"], run_dir)
    for folder in (run_dir / "checkpoints").iterdir():
        marker = json.loads((folder / MARKER_FILE).read_text())
        marker.pop("files")
        (folder / MARKER_FILE).write_text(json.dumps(marker))
    _truncate(run_dir / NEWEST / "optimizer.bin")
    with pytest.raises(UserError, match="cannot load checkpoint .*step_00000004.*move it away"):
        train(_recipe(corpus_dir, tiny_store, run_dir), resume=True, show_progress=False)
