"""Cutting a recipe's inputs into units of work: independent, idempotent, named, saved in units.json.

One unit per input file, except: an uncompressed JSON-lines file (or a text file split by line)
larger than ``data.unit_bytes`` becomes several byte ranges; a `datasets` folder becomes row
ranges of about ``unit_bytes`` each; a source with ``max_documents`` is one unit (its first N
documents need its files in order). Units are numbered in (domain, source, file, range) order,
which is also the order of their shards in the store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from curriculum.config import DataConfig
from curriculum.documents import SourceConfig, load_saved_dataset, resolve_files
from curriculum.errors import UserError
from curriculum.files import write_json_atomic

UNITS_FILE = "units.json"


def _splittable(path: str, fmt: str, source: SourceConfig) -> bool:
    plain = not path.endswith((".gz", ".zst"))
    return plain and (fmt == "json" or (fmt == "text" and source.text_split == "line"))


def _dataset_rows(path: str) -> tuple[int, int]:
    loaded = load_saved_dataset(path, f"data source {path!r}")
    return len(loaded), max(int(loaded.data.nbytes), 1)


def source_units(source: SourceConfig, unit_bytes: int) -> list[dict[str, Any]]:
    """The units of one source (without domain / index fields)."""
    fmt, files = resolve_files(source)
    if fmt == "arrow":
        rows, nbytes = _dataset_rows(files[0])
        if source.max_documents is not None:
            per = max(rows, 1)
        else:
            per = max(1, int(rows * unit_bytes / nbytes))
        return [
            {"format": fmt, "files": files, "file_indices": [0], "start": a, "stop": min(a + per, rows)}
            for a in range(0, max(rows, 1), per)
        ]
    if source.max_documents is not None:
        return [{"format": fmt, "files": files, "file_indices": list(range(len(files))), "start": 0, "stop": None}]
    out = []
    for k, path in enumerate(files):
        size = os.path.getsize(path)
        if _splittable(path, fmt, source) and size > unit_bytes:
            for a in range(0, size, unit_bytes):
                out.append(
                    {"format": fmt, "files": [path], "file_indices": [k], "start": a, "stop": min(a + unit_bytes, size)}
                )
        else:
            out.append({"format": fmt, "files": [path], "file_indices": [k], "start": 0, "stop": None})
    return out


def plan_units(data: DataConfig) -> list[dict[str, Any]]:
    """Every unit of a `prepare` of the ``data`` section, numbered and named."""
    units = []
    for name, domain in data.domains.items():
        for s, source in enumerate(domain.sources):
            for unit in source_units(source, data.unit_bytes):
                units.append({"domain": name, "source": s, **unit})
    for i, unit in enumerate(units):
        unit["index"] = i
        unit["name"] = f"{unit['domain']}-{i:06d}"
    return units


def describe(unit: dict[str, Any]) -> str:
    """A unit's input, for messages: file(s) and range."""
    files = (
        ", ".join(unit["files"]) if len(unit["files"]) <= 2 else f"{unit['files'][0]} (+{len(unit['files']) - 1} files)"
    )
    if unit["format"] == "arrow":
        return f"{files} rows {unit['start']}..{unit['stop']}"
    return files if unit["stop"] is None else f"{files} bytes {unit['start']}..{unit['stop']}"


def save_or_check_units(root: Path, units: list[dict[str, Any]]) -> None:
    """Record the units in the store folder, or check that a resumed folder was cut the same way."""
    path = root / UNITS_FILE
    if path.is_file():
        try:
            saved = json.loads(path.read_bytes())
        except ValueError as exc:
            raise UserError(
                f"{path} is damaged ({exc}): it records how an unfinished `prepare` cut its inputs; pass --overwrite "
                "to start that prepare again"
            ) from None
        if saved != units:
            raise UserError(
                f"{root} holds an unfinished `prepare` of different inputs or unit size ({UNITS_FILE} differs); "
                "pass --overwrite to start it again"
            )
        return
    write_json_atomic(path, units)
