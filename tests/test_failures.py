"""Failure guarantees that a table row cannot show: no network whatever the environment, a disk
that fails mid-run, leftovers of killed runs, permissions, partial empty texts, two processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from recipes.cli import app
from tests.conftest import REPO, recipe_dict
from tests.launch import needs_accelerate, run_command, two_cpu_ranks

runner = CliRunner()

# Runs the CLI in a fresh interpreter whose every connection attempt is recorded and refused; the
# process exits 99 when there was any (libraries swallow the refusal, the record remains).
GUARD = textwrap.dedent(
    """
    import os, sys
    attempts = []
    def hook(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
            attempts.append((event, repr(args)[:100]))
            raise OSError("network blocked by the test guard")
    sys.addaudithook(hook)
    sys.argv = ["currimix"] + sys.argv[1:]
    from recipes.cli import app
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    if attempts:
        sys.stderr.write(f"NETWORK ATTEMPTS: {attempts}\\n")
        os._exit(99)
    sys.exit(code)
    """
)


@pytest.mark.slow
def test_prepare_never_touches_the_network_even_when_the_caller_allows_it(corpus_dir: Path, tmp_path: Path) -> None:
    """datasets reports every load_dataset to a download counter unless offline; the CLI forces offline
    mode whatever HF_HUB_OFFLINE / HF_DATASETS_OFFLINE say (here: 0, i.e. online)."""
    raw = recipe_dict(corpus_dir, tmp_path / "run", tmp_path / "store")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "guard.py").write_text(GUARD)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
    }
    env.pop("HF_UPDATE_DOWNLOAD_COUNTS", None)
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "guard.py"), "prepare", str(tmp_path / "recipe.yaml"), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NETWORK ATTEMPTS" not in proc.stderr
    assert (tmp_path / "store" / "manifest.json").is_file()


def test_importing_the_cli_imports_no_hub_library() -> None:
    """The offline switches must be set before datasets / huggingface_hub are first imported."""
    code = "import sys, recipes.cli; print(sorted(m for m in ('datasets', 'huggingface_hub', 'transformers') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip() == "[]", out.stderr


def test_offline_switches_hold_for_libraries_imported_before_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-process caller (a notebook) that imported datasets online still gets an offline CLI."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    runner.invoke(app, ["presets"])
    assert datasets.config.HF_HUB_OFFLINE is True and huggingface_hub.constants.HF_HUB_OFFLINE is True
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_checkpoint_folder_that_becomes_unwritable_mid_run_is_one_clear_error(
    corpus_dir: Path, tiny_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Tests run as root here, so the disk refusing is simulated where the checkpoint is written.)"""
    import accelerate

    def refuse(self, output_dir: str, **kwargs) -> None:
        raise PermissionError(13, "Permission denied", str(Path(output_dir) / "model.safetensors"))

    monkeypatch.setattr(accelerate.Accelerator, "save_state", refuse)
    raw = recipe_dict(corpus_dir, tmp_path / "run", tiny_store)
    raw["training"].update(steps=4, eval_every_steps=None)
    raw["checkpoint"] = {"every_steps": 1}
    raw["averaging"] = {"snapshots": None}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["train", str(tmp_path / "recipe.yaml"), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, PermissionError)
    assert "Permission denied" in result.output and "step_00000001" in result.output
    assert "Traceback" not in result.output


def test_prepare_removes_temp_folders_of_killed_runs_only(tmp_path: Path) -> None:
    from curriculum.store.prepare import remove_stale_temp_folders

    store = tmp_path / "store"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = [
        tmp_path / f".store.tmp-{dead.stdout.strip()}-0a1b2c3d",
        tmp_path / ".store.tmp-0a1b2c3d",
        tmp_path / ".store.old-0a1b2c3d",
    ]
    live = tmp_path / f".store.tmp-{os.getppid()}-0a1b2c3d"  # a running prepare of the same store
    other = tmp_path / ".other.tmp-1-0a1b2c3d"
    for folder in [*stale, live, other]:
        folder.mkdir()
        (folder / "tokens.bin").write_bytes(b"x")
    remove_stale_temp_folders(store)
    assert not any(f.exists() for f in stale)
    assert live.exists() and other.exists()


def test_averaged_output_has_the_same_permissions_as_everything_else(finished_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "avg"
    snaps = sorted((finished_run / "snapshots").iterdir())
    result = runner.invoke(app, ["average", *map(str, snaps), "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask  # tempfile.mkdtemp alone gives 0700
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o666 & ~mask}
    weights = finished_run / "snapshots" / snaps[-1].name / "model.safetensors"
    assert weights.stat().st_mode & 0o777 == 0o666 & ~mask  # safetensors alone writes 0600


def test_some_empty_texts_are_dropped_with_a_warning(capfd) -> None:
    import datasets

    from curriculum.validation import drop_empty_documents

    ds = datasets.Dataset.from_dict({"text": ["a b", "", "  \n", "c"], "id": ["1", "2", "3", "4"]})
    kept = drop_empty_documents(ds, "data source 'x.jsonl'")
    assert kept["id"] == ["1", "4"]
    assert "dropped 2 of 4 documents with empty or null text" in capfd.readouterr().err


def test_unique_ids_are_checked_without_holding_them_in_a_set() -> None:
    import datasets

    from curriculum.errors import UserError
    from curriculum.validation import check_unique_ids

    check_unique_ids(datasets.Dataset.from_dict({"id": [str(i) for i in range(1000)]}), "d", batch_size=64)
    with pytest.raises(UserError, match="'7' x2"):
        check_unique_ids(datasets.Dataset.from_dict({"id": [str(i) for i in range(1000)] + ["7"]}), "d", batch_size=64)


@pytest.mark.multiprocess
@needs_accelerate
@pytest.mark.slow
def test_two_processes_with_a_batch_that_does_not_divide_give_one_message(
    corpus_dir: Path, tiny_store: Path, tmp_path: Path
) -> None:
    raw = recipe_dict(corpus_dir, tmp_path / "run", tiny_store)
    raw["training"].update(device="cpu", global_batch_size=4, micro_batch_size=4)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(raw))
    proc = run_command(two_cpu_ranks("train", str(tmp_path / "recipe.yaml"), "--no-progress"), tmp_path, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert output.count("must be a multiple of micro_batch_size (4) x processes (2)") == 1, output[-3000:]
    assert "recipes/" not in "".join(line for line in output.splitlines() if line.startswith('  File "')), output[
        -3000:
    ]
    assert not (tmp_path / "run").exists()  # no empty run folder left behind
