"""The last step of `prepare`: merge the shards' sorted runs into per-domain orders, write the manifest.

Runs once every unit's shard exists (whoever finishes last in a job array may run it; it is
idempotent: its outputs are written through temp names and have the same content every time).
The manifest is written last: it is what makes the folder a store. It lists every file's size and
checksums (`curriculum.store.checksums`): the shards' from their shard.json, the orders' and the
tokenizer's computed here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow.parquet as pq

from curriculum.errors import UserError
from curriculum.files import write_json_atomic
from curriculum.store.checksums import file_checksum, folder_checksums
from curriculum.store.manifest import layout_digest
from curriculum.store.merge import merge_runs, save_array
from curriculum.store.reader import MANIFEST, STORE_FORMAT
from curriculum.store.shards import SPLITS, read_shard_info
from curriculum.validation import check_unique_id_batches


def _add(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key in ("documents", "sequences", "tokens", "dropped_tokens"):
        total[key] += part[key]
    for key, pick in (("score_min", min), ("score_max", max)):
        if part[key] is not None:
            total[key] = part[key] if total[key] is None else pick(total[key], part[key])


def missing_units(root: Path, units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [u for u in units if read_shard_info(root / "shards" / u["name"]) is None]


SHARD_FILES = ("tokens.bin", "tail.bin", "score.npy", "doc_offsets.npy", "doc_index.npy", "documents.parquet")


def check_shard_files(folder: Path, info: dict[str, Any]) -> None:
    """A finished shard still holds the files its shard.json lists, at their sizes (a shard written
    before shards listed files: the files every shard has), so nothing is merged from a damaged one."""
    expected = info.get("files") or {f"{s}/{name}": None for s in SPLITS for name in SHARD_FILES}
    for name, checksum in expected.items():
        path = folder / name
        size = path.stat().st_size if path.is_file() else None
        if size is None or (isinstance(checksum, dict) and checksum.get("size") != size):
            why = "is missing" if size is None else f"has {size} bytes, shard.json says {checksum.get('size')}"
            raise UserError(
                f"{path} {why}: the shard is damaged; delete the folder {str(folder)!r} and run `currimix prepare` "
                "again to rebuild that unit"
            )


def check_domain_ids_unique(root: Path, units: list[dict[str, Any]], domain: str) -> None:
    """Document ids are unique across a domain's shards (both splits), read column by column."""

    def batches() -> Iterator[list[str]]:
        for u in units:
            for split in SPLITS:
                path = root / "shards" / u["name"] / split / "documents.parquet"
                yield pq.read_table(path, columns=["id"]).column("id").to_pylist()

    check_unique_id_batches(batches, f"data.domains.{domain}")


def finalize_store(
    root: Path, units: list[dict[str, Any]], domains: list[str], seq_len: int, extra: dict[str, Any]
) -> dict[str, Any]:
    """Write ``orders/`` and ``manifest.json`` for a folder whose units are all done."""
    infos = [read_shard_info(root / "shards" / u["name"]) for u in units]
    assert all(infos), "finalize before every unit finished"
    for u, info in zip(units, infos):
        check_shard_files(root / "shards" / u["name"], info)
    blank = {"documents": 0, "sequences": 0, "tokens": 0, "dropped_tokens": 0, "score_min": None, "score_max": None}
    stats = {split: {d: dict(blank) for d in domains} for split in SPLITS}
    for info in infos:
        for split in SPLITS:
            _add(stats[split][info["domain"]], info["splits"][split])
    for d in domains:  # units ran independently: ids are checked across the whole domain here
        check_domain_ids_unique(root, [u for u, info in zip(units, infos) if info["domain"] == d], d)
    empty = [d for d in domains if stats["train"][d]["sequences"] == 0]
    held_out_only = len(empty) == len(domains) and all(stats["val"][d]["sequences"] for d in domains)
    if empty and not held_out_only:  # a store of held-out text only (val_fraction 1) is an evaluation set
        raise UserError(
            f"domains {empty} have fewer than {seq_len} training tokens in any unit of work; "
            "add documents, lower data.seq_len or raise data.unit_bytes"
        )
    orders = {}
    started = time.perf_counter()
    for d in domains:
        runs = [
            np.load(root / "shards" / u["name"] / "train" / "score.npy", mmap_mode="r")
            for u, info in zip(units, infos)
            if info["domain"] == d
        ]
        rel = f"orders/train/{d}.npy"
        ties = save_array(root / rel, lambda out, runs=runs: merge_runs(runs, out), sum(len(r) for r in runs))
        orders[d] = {"file": rel, "ties": bool(ties)}
    checksums = {}
    for u, info in zip(units, infos):
        folder = root / "shards" / u["name"]
        files = info.get("files")
        if files is None:  # a shard written before shards recorded checksums: hash it now
            files = {k: v for split in SPLITS for k, v in folder_checksums(folder / split, f"{split}/").items()}
        checksums.update({f"shards/{u['name']}/{name}": c for name, c in files.items()})
    for d in domains:
        checksums[orders[d]["file"]] = file_checksum(root / orders[d]["file"])
    checksums.update(folder_checksums(root / "tokenizer", "tokenizer/"))
    manifest = {
        "format": STORE_FORMAT,
        "seq_len": seq_len,
        "domains": domains,
        "shards": [
            {"name": u["name"], "domain": info["domain"], "splits": info["splits"]} for u, info in zip(units, infos)
        ],
        "stats": stats,
        "orders": {"train": orders},
        "merge_seconds": round(time.perf_counter() - started, 3),
        **extra,
        "checksums": checksums,
    }
    manifest["layout_digest"] = layout_digest(manifest)
    write_json_atomic(root / MANIFEST, manifest)
    return manifest
