"""The store folder `prepare` writes into: what it may replace, and the leftovers of killed runs.

- `check_replaceable`: an existing ``data.store`` is replaced only with ``--overwrite``, and even
  then only when it is a currimix store (finished: manifest.json or a format-1 meta.json;
  unfinished: units.json) or an empty folder: never the user's own files, and never a store
  holding an input of the same prepare (a source file, or the tokenizer it copies).
- `store_lock`: one `prepare` writes a store folder at a time (`curriculum.locks`; a job array's
  slices run side by side on purpose and take no lock).
- `remove_stale_temp_folders`: hidden temp folders (``.<name>.tmp-<pid>-<hex>``) and trash folders
  (``.<name>.old-<hex>``) that killed runs left beside the store, among its shards and beside its
  tokenizer. A temp folder whose process still runs on this host is left alone.
"""

from __future__ import annotations

import contextlib
import glob
import shutil
import uuid
from pathlib import Path
from typing import ContextManager

from curriculum.config import DataConfig, TokenizerConfig
from curriculum.documents import resolve_files
from curriculum.errors import UserError
from curriculum.locks import folder_lock, pid_alive
from curriculum.store.prepare.units import UNITS_FILE
from curriculum.store.reader import is_complete_store
from curriculum.validation import is_token_store


def is_unfinished(root: Path) -> bool:
    """Whether ``root`` holds an unfinished `prepare` (units.json, no manifest yet): one to resume."""
    return root.is_dir() and (root / UNITS_FILE).is_file() and not is_complete_store(root)


def discard(root: Path) -> None:
    """Remove the folder ``root`` by one rename to ``.<name>.old-<hex>`` first: a kill midway leaves a
    trash folder (removed by the next run), never half a store."""
    trash = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
    root.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def check_creatable(root: Path) -> None:
    """No part of the path above ``data.store`` is a regular file."""
    blocker = next((p for p in root.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserError(f"data.store {str(root)!r} cannot be created: {str(blocker)!r} is a file, not a folder")


def store_lock(root: Path, in_array: bool) -> ContextManager[None]:
    """The store folder's lock for a whole `prepare` (none for a job array's slice)."""
    if in_array:
        return contextlib.nullcontext()
    check_creatable(root)
    return folder_lock(root, "prepare", "token store")


def check_replaceable(root: Path, overwrite: bool) -> None:
    """Refuse to touch an existing ``data.store`` unless asked, and even then unless it is a currimix
    token store (finished or not) or an empty folder."""
    check_creatable(root)
    if not root.exists():
        return
    if not root.is_dir():  # --overwrite would not help: it only ever replaces a token store folder
        raise UserError(f"data.store {str(root)!r} is a file, not a token store folder; point data.store at a folder")
    if not overwrite:
        raise UserError(f"token store {str(root)!r} already exists; pass --overwrite to rebuild it")
    if root.is_dir() and (is_token_store(root) or not any(root.iterdir())):
        return
    raise UserError(
        f"data.store {str(root)!r} is not a currimix token store (no store manifest.json, meta.json or units.json "
        "in it), so --overwrite will not replace it: it may hold your own files. Point data.store at a new "
        "folder, or move that one away"
    )


def input_paths(data: DataConfig, tokenizer: TokenizerConfig) -> list[Path]:
    """Every file and folder a prepare reads (its sources' files, the tokenizer folder)."""
    paths = [Path(f) for d in data.domains.values() for s in d.sources for f in resolve_files(s)[1]]
    return paths + ([Path(tokenizer.path)] if tokenizer.path else [])


def start_folder(root: Path, overwrite: bool, inputs: list[Path] | None = None) -> None:
    """Make ``root`` ready for a (resumed) prepare: an unfinished prepare is resumed unless
    ``overwrite``; anything else that exists goes through `check_replaceable` and is moved away,
    unless it holds one of the prepare's ``inputs``."""
    if not (is_unfinished(root) and not overwrite):
        check_replaceable(root, overwrite)
        held = [
            p
            for p in inputs or []
            if root.exists() and (p.resolve() == root.resolve() or root.resolve() in p.resolve().parents)
        ]
        if held:
            raise UserError(
                f"data.store {str(root)!r} holds an input of this prepare ({str(held[0])!r}), so --overwrite "
                "would delete what it reads. Copy it out of the store first (e.g. the tokenizer folder) and "
                "point the recipe there"
            )
        if root.exists():
            discard(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_folders(root)
    if root.is_dir():
        for folder in (root, root / "shards"):
            for child in folder.glob(".*.tmp-*") if folder.is_dir() else []:
                _remove_if_stale(child, child.name[1:].split(".tmp-")[0])
    root.mkdir(parents=True, exist_ok=True)


def remove_stale_temp_folders(root: Path) -> None:
    """Remove the hidden temp and trash folders that killed `prepare` runs left beside ``root``."""
    for folder in root.parent.glob(f".{glob.escape(root.name)}.*-*"):
        _remove_if_stale(folder, root.name)


def _remove_if_stale(folder: Path, name: str) -> None:
    """``folder`` is ``.<name>.<kind>-<rest>``: trash always goes, a temp folder once its process is gone."""
    kind, _, rest = folder.name[len(name) + 2 :].partition("-")
    if kind not in ("tmp", "old") or not folder.is_dir():
        return
    pid = rest.split("-")[0]
    if kind == "tmp" and pid.isdigit() and pid_alive(int(pid)):
        return
    shutil.rmtree(folder, ignore_errors=True)
