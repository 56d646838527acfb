"""The atomic-write helpers (`curriculum.files`) on real files and folders: the temp-name scheme the
stale-temp cleaner parses, replacing an existing file, and a failed write leaving the old final
intact and no temp behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from curriculum.files import atomic_path, temp_name, write_atomic, write_json_atomic


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_temp_name_is_hidden_beside_the_final_and_names_this_process(tmp_path: Path) -> None:
    final = tmp_path / "sub" / "data.store"
    names = {temp_name(final) for _ in range(50)}
    assert len(names) == 50  # unique per call
    for tmp in names:
        assert tmp.parent == final.parent
        assert re.fullmatch(rf"\.data\.store\.tmp-{os.getpid()}-[0-9a-f]{{8}}", tmp.name)


def test_the_stale_temp_cleaner_reads_the_temp_names(tmp_path: Path) -> None:
    from curriculum.store.prepare.folders import remove_stale_temp_folders

    root = tmp_path / "store"
    live = temp_name(root)  # this process: still running, so kept
    live.mkdir()
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / temp_name(root).name.replace(f"-{os.getpid()}-", f"-{dead_pid.stdout.strip()}-")
    dead.mkdir()
    remove_stale_temp_folders(root)
    assert live.is_dir() and not dead.exists()


def test_write_atomic_writes_and_replaces_leaving_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "new" / "out.txt"
    assert write_atomic(path, "first\n") == path  # the folder is created
    assert path.read_text() == "first\n"
    write_atomic(path, b"\x00second")
    assert path.read_bytes() == b"\x00second"
    write_atomic(path, "é")
    assert path.read_bytes() == "é".encode()
    assert os.listdir(path.parent) == ["out.txt"]


def test_write_json_atomic_matches_json_dumps(tmp_path: Path) -> None:
    data = {"b": [1, 2.5, None], "a": {"z": "ü", "y": True}}
    path = tmp_path / "x.json"
    write_json_atomic(path, data)
    assert path.read_text() == json.dumps(data, indent=2)  # no trailing newline, keys as given
    write_json_atomic(path, data, indent=1, sort_keys=True)
    assert path.read_text() == json.dumps(data, indent=1, sort_keys=True)
    write_json_atomic(path, data, indent=None)
    assert path.read_text() == json.dumps(data)
    assert json.loads(path.read_text()) == data
    assert os.listdir(tmp_path) == ["x.json"]


def test_atomic_path_file_replaces_on_success(tmp_path: Path) -> None:
    final = tmp_path / "f.bin"
    final.write_text("old")
    with atomic_path(final) as tmp:
        assert not tmp.exists() and tmp.parent == tmp_path
        tmp.write_text("new")
        assert final.read_text() == "old"  # nothing visible until the body is done
    assert final.read_text() == "new"
    assert os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_path_file_failure_keeps_the_old_final(tmp_path: Path, error: BaseException) -> None:
    final = tmp_path / "f.txt"
    final.write_text("old")
    with pytest.raises(type(error)):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise error
    assert final.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_path_folder_replaces_on_success(tmp_path: Path) -> None:
    final = tmp_path / "model"
    with atomic_path(final) as tmp:
        (tmp / "deep").mkdir(parents=True)
        (tmp / "deep" / "w.bin").write_bytes(b"123")
    assert (final / "deep" / "w.bin").read_bytes() == b"123"
    assert _hidden(tmp_path) == []


def test_atomic_path_folder_failure_keeps_the_old_final_and_removes_the_tree(tmp_path: Path) -> None:
    final = tmp_path / "model"
    final.mkdir()
    (final / "keep.txt").write_text("old")
    with pytest.raises(ValueError, match="midway"):
        with atomic_path(final) as tmp:
            (tmp / "a" / "b").mkdir(parents=True)
            (tmp / "a" / "b" / "half.bin").write_bytes(b"\0" * 100)
            raise ValueError("midway")
    assert sorted(p.name for p in final.iterdir()) == ["keep.txt"]
    assert (final / "keep.txt").read_text() == "old"
    assert os.listdir(tmp_path) == ["model"]


def test_atomic_path_a_failed_rename_removes_the_temp(tmp_path: Path) -> None:
    final = tmp_path / "model"
    final.mkdir()
    (final / "keep.txt").write_text("old")  # a folder is not replaced over a non-empty one
    with pytest.raises(OSError):
        with atomic_path(final) as tmp:
            tmp.mkdir()
            (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["keep.txt"]
    assert os.listdir(tmp_path) == ["model"]


def test_atomic_path_body_that_creates_nothing_fails_cleanly(tmp_path: Path) -> None:
    final = tmp_path / "out.json"
    with pytest.raises(FileNotFoundError):
        with atomic_path(final):
            pass
    assert os.listdir(tmp_path) == []
