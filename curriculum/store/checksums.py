"""Checksums of a token store's files: written by `prepare`, checked cheaply at open, fully by `store verify`.

Each file gets ``{"size", "sha256", "sampled"}``: its byte count, the SHA-256 of the whole file, and
a SHA-256 of a few fixed blocks (`SAMPLED_BLOCKS` blocks of `BLOCK_BYTES` at evenly spaced offsets,
first and last included; a file no larger than those blocks is hashed whole). Opening a store
compares sizes and sampled digests of the files training reads (`tokens.bin`, `score.npy`, the
merged orders): a few hundred KiB per shard, so a file replaced by other bytes of the same size is
reported when the store opens, not as an IndexError in the embedding or as silent training on
garbage. Damage that misses every sampled block (a few flipped bytes in the middle of a large
file) is found by the full check, `currimix store verify STORE`.

Shards record their own files' checksums in ``shard.json`` when they are written (the bytes are
still in the page cache then); `prepare`'s last step gathers them, adds the orders and the
tokenizer, and writes them into the manifest as ``checksums``: {store-relative path: checksum}.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Iterable

BLOCK_BYTES = 1 << 16
SAMPLED_BLOCKS = 4
HASH_CHUNK = 1 << 22


def sampled_digest(path: str | Path, size: int) -> str:
    """SHA-256 of ``size`` (8 bytes) and `SAMPLED_BLOCKS` blocks at fixed offsets (the whole file when small)."""
    digest = hashlib.sha256(size.to_bytes(8, "little"))
    with open(path, "rb") as fh:
        if size <= BLOCK_BYTES * SAMPLED_BLOCKS:
            digest.update(fh.read())
        else:
            last = size - BLOCK_BYTES
            for k in range(SAMPLED_BLOCKS):
                digest.update(os.pread(fh.fileno(), BLOCK_BYTES, last * k // (SAMPLED_BLOCKS - 1)))
    return digest.hexdigest()


def full_digest(path: Path) -> str:
    """SHA-256 of the whole file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_checksum(path: Path) -> dict[str, Any]:
    """``{"size", "sha256", "sampled"}`` of one file."""
    size = path.stat().st_size
    return {"size": size, "sha256": full_digest(path), "sampled": sampled_digest(path, size)}


def folder_checksums(folder: Path, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Checksums of every file under ``folder``, keyed ``prefix + relative path`` (sorted)."""
    return {
        prefix + path.relative_to(folder).as_posix(): file_checksum(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _size_problem(path: Path, expected: dict[str, Any]) -> str | None:
    if not path.is_file():
        return "is missing"
    size = path.stat().st_size
    if size != expected["size"]:
        return f"has {size} bytes, its checksum was taken over {expected['size']}"
    return None


def check_sampled(root: Path, checksums: dict[str, dict[str, Any]], names: Iterable[str]) -> list[str]:
    """``name: why`` for each of ``names`` (store-relative) whose size or sampled blocks differ from
    ``checksums``; names without a checksum are skipped (`TokenStore` reports stores without any)."""
    problems = []
    for name in names:
        expected = checksums.get(name)
        if expected is None:
            continue
        path = os.path.join(root, name)  # strings, not pathlib: called for every shard at every open
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            size = None
        why = (
            "is missing"
            if size is None
            else f"has {size} bytes, its checksum was taken over {expected['size']}"
            if size != expected["size"]
            else None
        )
        if why is None and sampled_digest(path, size) != expected["sampled"]:
            why = "does not match its checksum (sampled blocks differ: its bytes changed after `prepare` wrote it)"
        if why is not None:
            problems.append(f"{name} {why}")
    return problems


def verify_all(
    root: Path, checksums: dict[str, dict[str, Any]], on_file: Callable[[str, int], None] | None = None
) -> list[str]:
    """``name: why`` for every listed file that is missing, of another size or whose SHA-256
    differs (every byte read); ``on_file(name, size)`` is called after each file (progress)."""
    problems = []
    for name, expected in sorted(checksums.items()):
        path = root / name
        why = _size_problem(path, expected)
        if why is None and full_digest(path) != expected["sha256"]:
            why = "does not match its SHA-256 (its bytes changed after `prepare` wrote it)"
        if why is not None:
            problems.append(f"{name} {why}")
        if on_file is not None:
            on_file(name, int(expected["size"]))
    return problems
