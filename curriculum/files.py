"""Atomic writes: every file or folder the tools write goes first to a hidden temp name beside its
final name, then one rename puts it in place, so a reader (or a kill) never sees half a file where
a complete one is expected.

- `temp_name`: the temp-name scheme, ``.<name>.tmp-<pid>-<8 hex>``: unique across processes
  and hosts, and naming its process, so `curriculum.store.prepare.folders` can tell a killed
  process's leftovers from a running one's. `shared_temp_name` (``.<name>.tmp``) is the one other:
  for a folder all ranks of a distributed save write together (checkpoints), under the run's lock.
- `atomic_path`: a context manager yielding that temp path for the body to create (a file or a
  folder); renamed onto the final name when the body succeeds, removed when anything fails.
- `write_atomic` / `write_json_atomic`: a whole file (text, bytes, or an object as JSON) at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator


def temp_name(final: Path) -> Path:
    """A hidden temp path beside ``final``, ``.<name>.tmp-<pid>-<hex>``: named by this process, so the
    next local `prepare` can tell a killed process's leftovers apart (`curriculum.store.prepare.folders`)."""
    return final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def shared_temp_name(final: Path) -> Path:
    """``.<name>.tmp`` beside ``final``: the temp name every rank of a distributed save computes alike
    (a checkpoint folder is written by all ranks at once, so `temp_name`'s pid cannot be in it). Only
    for writers that hold the folder's lock; a leftover is replaced by the next save of that name."""
    return final.parent / f".{final.name}.tmp"


def _remove(path: Path) -> None:
    """Remove ``path`` (a file, a link or a folder tree) if it is there; never raises."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield `temp_name` (``final``) for the body to create as a file or a folder; ``os.replace`` it
    onto ``final`` when the body succeeds, remove it (file or tree) when the body or the rename fails.

    ``final``'s folder must exist. A file replaces an existing file; a folder replaces only a missing
    or empty folder (``os.replace``), so a body that replaces a folder moves the old one away last."""
    final = Path(final)
    tmp = temp_name(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` (its folder created if needed) through `atomic_path`; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def write_json_atomic(path: Path, obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write ``obj`` as ``json.dumps(obj, indent=indent, sort_keys=sort_keys)`` (no trailing newline)
    through `write_atomic`; returns ``path``."""
    return write_atomic(path, json.dumps(obj, indent=indent, sort_keys=sort_keys))
