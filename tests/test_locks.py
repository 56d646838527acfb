"""The folder lock (`curriculum.locks`) on its own, with real second processes: one holder at a
time, the holder named, a dead holder's lock taken over with a note, another host's refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curriculum.errors import UserError
from curriculum.locks import folder_lock, lock_path

REPO = Path(__file__).resolve().parents[1]
HOLD = (
    "import sys, time; from pathlib import Path; from curriculum.locks import folder_lock\n"
    "with folder_lock(Path(sys.argv[1]), 'train', 'run folder'):\n"
    "    print('held', flush=True); time.sleep(60)\n"
)


def _holder(folder: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_naming_the_holder(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    proc = _holder(folder)
    try:
        with pytest.raises(UserError) as err, folder_lock(folder, "train", "run folder"):
            pass
        message = str(err.value)
        assert f"pid {proc.pid} on host {socket.gethostname()}" in message and "`currimix train`" in message
        assert "in use by" in message
    finally:
        proc.kill()
        proc.wait()
    # The holder was killed (-9): the kernel released its flock, the file stays and is stale.
    assert lock_path(folder).is_file()
    with folder_lock(folder, "train", "run folder"):
        assert json.loads(lock_path(folder).read_text())["pid"] == os.getpid()
    assert not lock_path(folder).exists()


def test_a_stale_lock_is_taken_over_with_a_note(tmp_path: Path, capfd) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "store"
    lock_path(folder).write_text(
        json.dumps({"pid": dead.pid, "host": socket.gethostname(), "command": "prepare", "started": time.time()})
    )
    with folder_lock(folder, "prepare", "token store"):
        pass
    err = capfd.readouterr().err
    assert "taking over the stale lock" in err and f"pid {dead.pid}" in err


def test_another_hosts_lock_is_refused_with_how_to_remove_it(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    lock_path(folder).write_text(json.dumps({"pid": 1, "host": "elsewhere-node-7", "command": "average"}))
    with pytest.raises(UserError, match=r"on host elsewhere-node-7\), another host") as err:
        with folder_lock(folder, "average", "output folder"):
            pass
    assert str(lock_path(folder)) in str(err.value)


def test_the_lock_leaves_nothing_behind_and_locks_within_one_process_too(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "deeper" / "run"
    with folder_lock(folder, "train"):
        with pytest.raises(UserError, match=f"pid {os.getpid()}"):
            with folder_lock(folder, "train"):
                pass
    assert not (tmp_path / "new").exists()  # folders made only for the lock are removed again


def test_prepare_refuses_a_store_folder_another_prepare_holds(corpus_dir: Path, tmp_path: Path) -> None:
    from curriculum.store.prepare import prepare_store
    from recipes.loading import recipe_from_dict
    from tests.conftest import recipe_dict

    store = tmp_path / "data" / "store"
    recipe = recipe_from_dict(recipe_dict(corpus_dir, tmp_path / "run", store))
    with folder_lock(store, "prepare", "token store"):
        with pytest.raises(UserError, match="token store .* is in use by `currimix prepare`"):
            prepare_store(recipe, show_progress=False)
    assert not store.exists() and not (tmp_path / "data").exists()


def test_an_inside_lock_and_a_long_folder_name(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"
    with folder_lock(run, "train", "run folder", inside=True):
        assert lock_path(run, inside=True) == run / ".currimix.lock" and run.is_dir()
    assert not (tmp_path / "runs").exists()  # nothing was written in it: the folders made for the lock go
    long = tmp_path / ("x" * 250)  # a legal folder name whose ".<name>.lock" would not be
    with folder_lock(long, "average", "output folder"):
        assert len(lock_path(long).name) < 100 and lock_path(long).is_file()
