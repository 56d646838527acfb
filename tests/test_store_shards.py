"""The sharded store: many units equal one unit, kills and failures are retried alone, orders merge
across shards, job arrays and datatrove build the same store, runs on it resume bitwise."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from curriculum.errors import UserError
from curriculum.orders import build_ordering, stable_rank_order
from curriculum.store.prepare import prepare_store
from curriculum.store.reader import TokenStore
from recipes.loading import recipe_from_dict
from tests.conftest import recipe_dict, write_domain

UNIT_BYTES = 6000  # cuts each test file into several byte-range units


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test corpus; `prose` has no id column, so its ids are generated from byte offsets."""
    folder = tmp_path_factory.mktemp("shard_corpus")
    for seed, (name, n) in enumerate((("code", 120), ("prose", 200), ("web", 160))):
        write_domain(folder / f"{name}.jsonl", name, n, seed)
    rows = [json.loads(line) for line in open(folder / "prose.jsonl")]
    with open(folder / "prose.jsonl", "w") as fh:
        for row in rows:
            row.pop("id")
            fh.write(json.dumps(row) + "\n")
    return folder


def make(corpus: Path, store: Path, tokenizer: Path | None = None, **data) -> object:
    raw = recipe_dict(corpus, store.parent / "run", store)
    raw["data"].update(data)
    if tokenizer is not None:
        raw["tokenizer"] = {"path": str(tokenizer)}
    return recipe_from_dict(raw)


@pytest.fixture(scope="module")
def one_unit_store(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("one") / "store"
    prepare_store(make(corpus, root, num_proc=1), show_progress=False)
    return root


def documents_and_tokens(root: Path) -> dict[tuple[str, str], tuple[int, ...]]:
    """(split, document id) -> the document's tokens, rebuilt from every shard's packed stream + tail."""
    manifest = json.loads((root / "manifest.json").read_text())
    dtype = np.dtype(manifest["token_dtype"])
    out: dict[tuple[str, str], tuple[int, ...]] = {}
    for shard in manifest["shards"]:
        for split in ("train", "val"):
            folder = root / "shards" / shard["name"] / split
            stream = np.concatenate(
                [np.fromfile(folder / "tokens.bin", dtype), np.fromfile(folder / "tail.bin", dtype)]
            )
            docs = pq.read_table(folder / "documents.parquet").to_pydict()
            ends = np.flatnonzero(stream == manifest["eos_id"])
            assert len(ends) == len(docs["id"])
            assert len(ends) == 0 or ends[-1] == len(stream) - 1
            starts = np.concatenate([[0], ends[:-1] + 1])
            for doc_id, n, a, b in zip(docs["id"], docs["tokens"], starts, ends):
                assert b - a == n
                assert (split, doc_id) not in out, f"document {doc_id} stored twice"
                out[(split, doc_id)] = tuple(stream[a:b].tolist())
    return out


def test_many_units_with_a_killed_one_hold_exactly_the_one_unit_store(
    corpus: Path, one_unit_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import curriculum.store.prepare.work as work

    marker = tmp_path / "killed-once"
    real_write = work.write_shard

    def write_or_die(final: Path, **kwargs):
        # Unit 4's worker dies mid-write the first time (a real process exit, leaving a temp folder).
        if final.name.endswith("-000004") and not marker.exists():
            marker.touch()
            (final.parent / f".{final.name}.tmp-dead").mkdir(parents=True)
            (final.parent / f".{final.name}.tmp-dead" / "tokens.bin").write_bytes(b"\0" * 10)
            os._exit(1)
        return real_write(final, **kwargs)

    monkeypatch.setattr(work, "write_shard", write_or_die)
    root = tmp_path / "store"
    # The tokenizer of the one-unit store, so both stores tokenize identically.
    store = prepare_store(
        make(corpus, root, one_unit_store / "tokenizer", unit_bytes=UNIT_BYTES, num_proc=2), show_progress=False
    )
    assert marker.exists(), "the kill never happened"
    assert store.meta["units"] > 6 and store.shard_count == store.meta["units"]
    reference = documents_and_tokens(one_unit_store)
    sharded = documents_and_tokens(root)
    assert sharded.keys() == reference.keys()  # every document once (none twice: checked while reading)
    assert sharded == reference  # the same tokens, document by document
    one = TokenStore(one_unit_store)
    for split in ("train", "val"):
        for name in store.domain_names:
            a, b = store.meta["stats"][split][name], one.meta["stats"][split][name]
            assert a["documents"] == b["documents"]
            assert a["tokens"] + a["dropped_tokens"] == b["tokens"] + b["dropped_tokens"]


def test_ascending_order_is_non_decreasing_across_shards(corpus: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = prepare_store(make(corpus, root, unit_bytes=UNIT_BYTES, num_proc=1), show_progress=False)
    for d, name in enumerate(store.domain_names):
        shards = [s for s in store.meta["shards"] if s["domain"] == name]
        assert len(shards) > 1
        scores = store.train.domain_scores(d)
        ordering = build_ordering({"name": "ascending"}, scores, key=7)
        order = ordering.permutation()
        assert sorted(order.tolist()) == list(range(len(scores)))
        assert np.all(np.diff(scores[order]) >= 0)
        # Same as sorting the whole domain in memory, keyed ties included, both directions.
        materialised = np.asarray(scores, dtype=np.float64)
        for descending in (False, True):
            assert np.array_equal(
                stable_rank_order(scores, descending, 7), stable_rank_order(materialised, descending, 7)
            )
        assert store.meta["orders"]["train"][name]["ties"]  # integer scores: ties everywhere
    assert list((root / "orders" / "keyed").glob("train-*-asc-*.npy")), "keyed order not saved for reuse"


def test_a_unit_that_fails_for_good_names_its_input_and_keeps_the_others(corpus: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(corpus, data)
    with open(data / "web.jsonl", "a") as fh:
        fh.write("{this is not json\n")
    root = tmp_path / "store"
    recipe = make(data, root, num_proc=1, retries=1)
    with pytest.raises(UserError) as err:
        prepare_store(recipe, show_progress=False)
    message = str(err.value)
    assert "1 of 3 units" in message and "web.jsonl" in message and "not valid JSON" in message
    done = sorted(p.name for p in (root / "shards").iterdir())
    assert done == ["code-000000", "prose-000001"]
    assert not (root / "manifest.json").exists()
    # Fixing the input and running again does only the missing unit.
    (data / "web.jsonl").write_text("".join(open(corpus / "web.jsonl")))
    before = (root / "shards" / "code-000000" / "shard.json").stat().st_mtime_ns
    store = prepare_store(recipe, show_progress=False)
    assert (root / "shards" / "code-000000" / "shard.json").stat().st_mtime_ns == before
    assert store.meta["units"] == 3


@pytest.mark.slow
def test_job_array_slices_and_datatrove_build_the_same_store(
    corpus: Path, one_unit_store: Path, tmp_path: Path
) -> None:
    tokenizer = one_unit_store / "tokenizer"
    arrays = tmp_path / "array"
    recipe = make(corpus, arrays, tokenizer, unit_bytes=UNIT_BYTES, num_proc=1)
    results = [prepare_store(recipe, unit=i, units=3, show_progress=False) for i in range(3)]
    assert results[:2] == [None, None] and isinstance(results[2], TokenStore)  # the last slice finalizes
    engine = tmp_path / "datatrove"
    store = prepare_store(
        make(corpus, engine, tokenizer, unit_bytes=UNIT_BYTES, num_proc=2), engine="datatrove", show_progress=False
    )
    assert (engine / ".datatrove" / "completions").is_dir()  # datatrove ran the units as its tasks
    assert documents_and_tokens(arrays) == documents_and_tokens(engine) == documents_and_tokens(one_unit_store)
    assert np.array_equal(store.train.tokens[:], results[2].train.tokens[:])


def test_job_array_without_a_tokenizer_says_how_to_make_one(corpus: Path, tmp_path: Path) -> None:
    recipe = make(corpus, tmp_path / "store", num_proc=1)
    with pytest.raises(UserError, match="--tokenizer-only"):
        prepare_store(recipe, unit=0, units=2, show_progress=False)
    assert prepare_store(recipe, tokenizer_only=True, show_progress=False) is None
    assert prepare_store(recipe, unit=0, units=2, show_progress=False) is None
    assert isinstance(prepare_store(recipe, unit=1, units=2, show_progress=False), TokenStore)


def test_pretokenized_dataset_becomes_a_store_without_retokenizing(one_unit_store: Path, tmp_path: Path) -> None:
    import datasets

    rng = random.Random(0)
    vocab = TokenStore(one_unit_store).vocab_size
    for name in ("code", "prose", "web"):
        rows = [[rng.randrange(2, vocab) for _ in range(rng.randint(5, 60))] for _ in range(150)]
        datasets.Dataset.from_dict(
            {"input_ids": rows, "quality": [rng.random() for _ in rows], "id": [f"{name}{i}" for i in range(150)]}
        ).save_to_disk(str(tmp_path / name))
    raw = recipe_dict(tmp_path, tmp_path / "run", tmp_path / "store")
    raw["tokenizer"] = {"path": str(one_unit_store / "tokenizer")}
    for name in ("code", "prose", "web"):
        raw["data"]["domains"][name] = {
            "sources": [{"path": str(tmp_path / name), "tokens_field": "input_ids"}],
            "scorer": {"name": "field", "field": "quality"},
        }
    raw["data"]["unit_bytes"] = 4000  # several row-range units per dataset
    store = prepare_store(recipe_from_dict(raw), show_progress=False)
    assert store.meta["units"] > 3
    tokens = documents_and_tokens(tmp_path / "store")
    source = datasets.load_from_disk(str(tmp_path / "prose"))
    for i in (0, 17, 149):
        split = "val" if ("val", f"prose{i}") in tokens else "train"
        assert tokens[(split, f"prose{i}")] == tuple(source[i]["input_ids"])


def test_pretokenized_source_without_its_tokenizer_is_refused(tmp_path: Path) -> None:
    raw = recipe_dict(tmp_path, tmp_path / "run")
    for name in ("code", "prose", "web"):
        write_domain(tmp_path / f"{name}.jsonl", name, 5, 0)
    raw["data"]["domains"]["web"]["sources"][0]["tokens_field"] = "input_ids"
    with pytest.raises(UserError, match="tokens_field.*tokenizer.path"):
        prepare_store(recipe_from_dict(raw), show_progress=False)


def test_legacy_single_folder_store_is_still_read(one_unit_store: Path, tmp_path: Path) -> None:
    """A format-1 store (train/ val/ folders + meta.json) opens, and its orders are merged on use."""
    new = TokenStore(one_unit_store)
    legacy = tmp_path / "legacy"
    (legacy / "tokenizer").mkdir(parents=True)
    for split in ("train", "val"):
        folder = legacy / split
        folder.mkdir()
        parts = [one_unit_store / "shards" / s["name"] / split for s in new.meta["shards"]]
        with open(folder / "tokens.bin", "wb") as fh:
            for p in parts:
                fh.write((p / "tokens.bin").read_bytes())
        np.save(folder / "score.npy", np.concatenate([np.load(p / "score.npy") for p in parts]))
        counts = [new.meta["stats"][split][name]["sequences"] for name in new.domain_names]
        np.save(folder / "domain.npy", np.repeat(np.arange(3, dtype=np.int16), counts))  # format 1 had it
    meta = {k: new.meta[k] for k in ("seq_len", "token_dtype", "eos_id", "vocab_size", "domains", "stats")}
    (legacy / "meta.json").write_text(json.dumps({**meta, "format": 1}))
    old = TokenStore(legacy)
    assert len(old.train) == len(new.train)
    assert np.array_equal(old.train.tokens[:], new.train.tokens[:])
    for d in range(3):
        a = build_ordering({"name": "descending"}, old.train.domain_scores(d), key=3).permutation()
        b = build_ordering({"name": "descending"}, new.train.domain_scores(d), key=3).permutation()
        assert np.array_equal(a, b)
    (legacy / "meta.json").write_text(json.dumps({**meta, "format": 9}))
    with pytest.raises(UserError, match="prepare --overwrite"):
        TokenStore(legacy)


def test_training_on_a_sharded_store_resumes_bitwise(corpus: Path, tmp_path: Path) -> None:
    from tools.train.pretrain import train
    from tools.train.trackers import read_metrics

    store = tmp_path / "store"
    prepare_store(make(corpus, store, unit_bytes=UNIT_BYTES, num_proc=1), show_progress=False)

    def recipe(run: str):
        raw = recipe_dict(corpus, tmp_path / run, store)
        raw["data"]["unit_bytes"] = UNIT_BYTES
        raw["data"]["num_proc"] = 1
        return recipe_from_dict(raw)

    train(recipe("full"), show_progress=False)
    train(recipe("split"), stop_after_steps=5, show_progress=False)
    train(recipe("split"), resume=True, show_progress=False)

    def losses(run: str) -> list[float]:
        found = {r["step"]: r["loss"] for r in read_metrics(tmp_path / run) if "loss" in r}
        return [found[s] for s in range(12)]

    assert losses("full") == losses("split")  # bitwise


def test_slurm_submission_is_built_over_the_missing_units(corpus: Path, one_unit_store: Path, tmp_path: Path) -> None:
    """The Slurm path builds datatrove's executor (one array task per missing unit) without submitting."""
    pytest.importorskip("datatrove")
    from curriculum.store.prepare import submit_slurm

    recipe = make(corpus, tmp_path / "store", one_unit_store / "tokenizer", unit_bytes=UNIT_BYTES)
    executor = submit_slurm(recipe, submit=False, partition="cpu", time="01:00:00")
    assert executor.world_size == json.loads((tmp_path / "store" / "units.json").read_text())[-1]["index"] + 1
    assert (tmp_path / "store" / "tokenizer" / "tokenizer.json").is_file()


@pytest.mark.parametrize("seed", range(6))
def test_chunked_merge_and_keyed_order_equal_whole_sorts(seed: int) -> None:
    """Small windows (chunk 7) over runs with many ties, a huge tie group and empty runs."""
    from curriculum.store.merge import keyed_rank_order, merge_runs

    rng = np.random.default_rng(seed)
    runs = [np.sort(rng.integers(0, 6, size=rng.integers(0, 40)).astype(np.float32)) for _ in range(5)]
    runs.append(np.full(50, 3, dtype=np.float32))  # one big group of equal scores
    flat = np.concatenate(runs)
    merged = np.empty(len(flat), dtype=np.int64)
    ties = merge_runs(runs, merged, chunk=7)
    assert ties and np.array_equal(merged, np.argsort(flat, kind="stable"))
    for descending in (False, True):
        out = np.empty(len(flat), dtype=np.int64)
        keyed_rank_order(merged, lambda a, b: flat[merged[a:b]], out, descending, key=seed, chunk=7)
        assert np.array_equal(out, stable_rank_order(flat.astype(np.float64), descending, seed))


def test_gather_across_shards_equals_row_by_row_reads(corpus: Path, tmp_path: Path) -> None:
    store = prepare_store(make(corpus, tmp_path / "store", unit_bytes=UNIT_BYTES, num_proc=1), show_progress=False)
    split = store.train
    assert len(split.segments) > 3
    rng = np.random.default_rng(0)
    ids = np.concatenate([rng.integers(0, len(split), 300), [len(split) - 1, 0, 0]])  # any order, repeats
    rows = [split.locate(int(i)) for i in ids]
    tokens = np.stack([np.fromfile(f / "tokens.bin", split.token_dtype).reshape(-1, split.seq_len)[r] for f, r in rows])
    scores = np.array([np.load(f / "score.npy")[r] for f, r in rows])
    assert np.array_equal(split.sequences(ids), tokens.astype(np.int64))
    assert np.array_equal(split.score[ids], scores)
    assert split.score[np.zeros(0, dtype=np.int64)].shape == (0,)
