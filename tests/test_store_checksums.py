"""Store checksums (issue 18): `prepare` records every file's size and SHA-256, opening a store checks
sizes and sampled blocks of what training reads, `currimix store verify` reads every byte, and an
edited manifest is refused by its schema and its layout digest."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from curriculum.errors import UserError
from curriculum.store.checksums import BLOCK_BYTES, SAMPLED_BLOCKS, sampled_digest
from curriculum.store.manifest import layout_digest
from curriculum.store.reader import TokenStore, verify_store
from recipes.cli import app

runner = CliRunner()


@pytest.fixture()
def store(tiny_store: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_store, tmp_path / "store"))


def _edit_manifest(root: Path, edit, redigest: bool = False) -> None:
    path = root / "manifest.json"
    meta = json.loads(path.read_text())
    edit(meta)
    if redigest:
        meta["layout_digest"] = layout_digest(meta)
    path.write_text(json.dumps(meta))


def _a_tokens_file(root: Path) -> Path:
    return sorted((root / "shards").glob("*/train/tokens.bin"))[0]


def test_prepare_records_a_checksum_for_every_file(store: Path) -> None:
    meta = json.loads((store / "manifest.json").read_text())
    files = {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()}
    files = {f for f in files if not f.startswith("orders/keyed/")}  # per-seed caches, made on first use
    listed = set(meta["checksums"])
    # everything but the manifest itself, units.json and the shards' own records
    assert files - listed == {"manifest.json", "units.json"} | {f for f in files if f.endswith("shard.json")}
    assert meta["layout_digest"] == layout_digest(meta)
    count, problems = verify_store(store)
    assert count == len(listed) and problems == []


def test_same_size_random_tokens_are_refused_at_open(store: Path) -> None:
    path = _a_tokens_file(store)
    size = path.stat().st_size
    path.write_bytes(os.urandom(size))
    with pytest.raises(UserError, match=r"tokens\.bin does not match its checksum"):
        TokenStore(store)
    result = runner.invoke(app, ["store", "verify", str(store), "--no-progress"])
    assert result.exit_code == 2
    assert path.relative_to(store).as_posix() in result.output and "1 of" in " ".join(result.output.split())


def test_a_flipped_byte_between_sampled_blocks_is_found_by_verify_only(tmp_path: Path) -> None:
    """Sampling reads `SAMPLED_BLOCKS` fixed blocks; a byte between them escapes the open check by design."""
    path = tmp_path / "big.bin"
    size = BLOCK_BYTES * SAMPLED_BLOCKS * 4
    data = bytearray(os.urandom(size))
    path.write_bytes(data)
    before = sampled_digest(path, size)
    data[BLOCK_BYTES + 10] ^= 1  # inside no sampled block (blocks start at 0, size/3-ish, ..., size-B)
    path.write_bytes(bytes(data))
    assert sampled_digest(path, size) == before
    data[5] ^= 1  # inside the first block
    path.write_bytes(bytes(data))
    assert sampled_digest(path, size) != before


def test_verify_reports_a_change_the_sample_misses(store: Path) -> None:
    meta = json.loads((store / "manifest.json").read_text())
    name = next(n for n in meta["checksums"] if n.endswith("documents.parquet"))
    path = store / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    TokenStore(store)  # parquet tables are not read by training: opening does not hash them
    count, problems = verify_store(store)
    assert problems == [f"{name} does not match its SHA-256 (its bytes changed after `prepare` wrote it)"]
    result = runner.invoke(app, ["store", "verify", str(store), "--no-progress"])
    assert result.exit_code == 2 and name in result.output


def test_verify_passes_on_a_sound_store(store: Path) -> None:
    result = runner.invoke(app, ["store", "verify", str(store), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "match their size and SHA-256" in result.output


def test_a_store_without_checksums_opens_with_a_note_and_cannot_be_verified(
    store: Path, capsys: pytest.CaptureFixture
) -> None:
    _edit_manifest(store, lambda m: (m.pop("checksums"), m.pop("layout_digest")))
    TokenStore(store)
    assert "has no checksums" in capsys.readouterr().err
    with pytest.raises(UserError, match="cannot be verified"):
        verify_store(store)


@pytest.mark.parametrize(
    "edit, phrase",
    [
        (lambda m: m.update(token_dtype="int16"), "token_dtype"),
        (lambda m: m.update(token_dtype="uint32"), "does not go with vocab_size"),
        (lambda m: m.update(vocab_size=0), "vocab_size"),
        (lambda m: m.update(eos_id=10**6), "is not below vocab_size"),
        (lambda m: m["stats"]["train"]["code"].update(sequences=-1), "stats.train.code.sequences"),
        (lambda m: m["stats"]["train"]["code"].update(sequences=10**6), "its shards hold"),
        (lambda m: m["orders"]["train"]["code"].update(file="../../etc/passwd"), "orders.train.code"),
        (lambda m: m["checksums"].update({"../x": next(iter(m["checksums"].values()))}), "not a plain path"),
        (lambda m: m.update(domains=["code", "code", "web"]), "a known domain"),
        (lambda m: m.update(domains=[*m["domains"], "code"]), "not in domain order"),
    ],
)
def test_manifest_edits_are_refused_by_the_schema(store: Path, edit, phrase: str) -> None:
    _edit_manifest(store, edit, redigest=True)  # even with the digest recomputed
    with pytest.raises(UserError) as err:
        TokenStore(store)
    assert phrase in str(err.value) and "manifest.json" in str(err.value)


def test_a_well_formed_edit_is_caught_by_the_layout_digest(store: Path) -> None:
    _edit_manifest(store, lambda m: m.update(vocab_size=m["vocab_size"] - 10))
    with pytest.raises(UserError, match="layout_digest: the fields that describe"):
        TokenStore(store)


def test_a_damaged_shard_record_is_named(store: Path) -> None:
    from curriculum.store.shards import read_shard_info

    folder = sorted((store / "shards").iterdir())[0]
    (folder / "shard.json").write_text("{not json")
    with pytest.raises(UserError, match=r"shard\.json is not valid JSON.*delete the folder"):
        read_shard_info(folder)
    (folder / "shard.json").write_text('{"domain": "code", "splits": {"train": {"sequences": -3}}}')
    with pytest.raises(UserError, match="lacks its domain or per-split counts"):
        read_shard_info(folder)


def test_open_time_stays_small(store: Path) -> None:
    """Opening checks sizes, headers and sampled blocks: on the tiny store, well under a second."""
    started = time.perf_counter()
    for _ in range(5):
        TokenStore(store)
    assert (time.perf_counter() - started) / 5 < 0.5
    assert np.asarray(TokenStore(store).train.tokens[:4]).shape == (4, 32)
