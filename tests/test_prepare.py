"""`prepare` and the token store: score-ordered packing, metadata, validation split, atomicity.

The sharded side (several units, retries, job arrays, engines, merged orders) is in test_store_shards.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from transformers import AutoTokenizer

from curriculum.errors import UserError
from curriculum.store.prepare import prepare_store
from curriculum.store.reader import TokenStore
from recipes.loading import recipe_from_dict
from tests.conftest import recipe_dict


def test_store_layout_and_counts(tiny_store: Path) -> None:
    store = TokenStore(tiny_store)
    assert store.domain_names == ["code", "prose", "web"]
    assert store.seq_len == 32 and store.train.tokens.shape == (len(store.train), 32)
    assert store.train.tokens.dtype == np.uint16
    for split in ("train", "val"):
        stats = store.meta["stats"][split]
        for d, name in enumerate(store.domain_names):
            start, stop = store.splits[split].domain_range(d)
            assert stop - start == stats[name]["sequences"]
            assert stats[name]["tokens"] == stats[name]["sequences"] * 32
    # Every document went to exactly one split (120 + 200 + 160 documents).
    docs = {s: store.meta["stats"][s] for s in ("train", "val")}
    assert [docs["train"][n]["documents"] + docs["val"][n]["documents"] for n in store.domain_names] == [120, 200, 160]
    assert all(docs["val"][n]["documents"] > 0 for n in store.domain_names)


def shard_documents(store: Path, split: str = "train"):
    """The documents table of a store's split, shard by shard in store order."""
    import pyarrow as pa

    manifest = json.loads((store / "manifest.json").read_text())
    return pa.concat_tables(
        pq.read_table(store / "shards" / s["name"] / split / "documents.parquet") for s in manifest["shards"]
    ).to_pandas()


def test_packing_is_in_ascending_score_order_with_eos_between_documents(tiny_store: Path, corpus_dir: Path) -> None:
    store = TokenStore(tiny_store)
    tokenizer = AutoTokenizer.from_pretrained(str(store.tokenizer_path))
    documents = shard_documents(tiny_store)
    for d, name in enumerate(store.domain_names):
        scores = np.asarray(store.train.domain_scores(d))
        assert np.all(np.diff(scores) >= 0), f"{name} sequences are not in ascending score order"
        rows = documents[documents.domain == name]
        assert np.all(np.diff(rows.score.to_numpy()) >= 0)
    # Decoding the stream of one domain gives its documents back, separated by EOS.
    start, stop = store.train.domain_range(1)
    stream = store.train.tokens[start:stop].reshape(-1)
    eos_positions = np.flatnonzero(stream == store.eos_id)
    texts = {d["id"]: d["text"] for d in map(json.loads, open(corpus_dir / "prose.jsonl"))}
    prose_rows = documents[documents.domain == "prose"]
    for k in range(3):  # the first documents come back whole, in the documents table's order
        piece = stream[(eos_positions[k - 1] + 1 if k else 0) : eos_positions[k]]
        assert tokenizer.decode(piece.tolist()) == texts[prose_rows.iloc[k]["id"]]
    # Token-weighted sequence scores lie within the scores of their documents.
    seq = start + 3
    doc_scores = store.train.documents_of(seq).column("score").to_numpy()
    assert doc_scores.min() - 1e-6 <= store.train.score[seq] <= doc_scores.max() + 1e-6


def test_validation_split_is_deterministic_and_disjoint(tiny_store: Path) -> None:
    train = shard_documents(tiny_store, "train").id.tolist()
    val = shard_documents(tiny_store, "val").id.tolist()
    assert not set(train) & set(val)
    from curriculum.store.prepare import val_mask

    ids = [f"x{i}" for i in range(2000)]
    mask = val_mask("d", ids, 0.1)
    assert np.array_equal(mask, val_mask("d", ids, 0.1))
    assert 0.07 < mask.mean() < 0.13


def test_trained_tokenizer_loads_offline(tiny_store: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_store / "tokenizer"))
    text = "def f(x):\n    return x + 1  # é"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert tokenizer.eos_token == "<|endoftext|>"


def test_existing_store_is_not_replaced_without_overwrite(corpus_dir: Path, tiny_store: Path, tmp_path: Path) -> None:
    recipe = recipe_from_dict(recipe_dict(corpus_dir, tmp_path, tiny_store))
    with pytest.raises(UserError, match="--overwrite"):
        prepare_store(recipe, show_progress=False)


def test_interrupted_prepare_leaves_no_complete_store(
    corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = recipe_from_dict(recipe_dict(corpus_dir, tmp_path, tmp_path / "store", data={"num_proc": 1}))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated crash while writing the manifest")

    monkeypatch.setattr("curriculum.store.prepare.finalize_store", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_store(recipe, show_progress=False)
    assert not (tmp_path / "store" / "manifest.json").exists()
    with pytest.raises(UserError, match="not a complete token store.*finishes the missing units"):
        TokenStore(tmp_path / "store")
    monkeypatch.undo()
    store = prepare_store(recipe, show_progress=False)  # resumes: every shard is already there
    assert store.meta["units"] == 3 and len(store.train) > 0
    assert not list((tmp_path / "store" / "shards").glob(".*")), "temp folder left behind"


def test_domain_too_small_for_one_sequence_is_a_clear_error(tmp_path: Path) -> None:
    from tests.conftest import write_domain

    for name, n in (("code", 30), ("prose", 30), ("web", 1)):
        write_domain(tmp_path / f"{name}.jsonl", name, n, 0)
    raw = recipe_dict(tmp_path, tmp_path / "run", tmp_path / "store")
    raw["data"]["seq_len"] = 4096
    with pytest.raises(UserError, match="fewer than 4096 training tokens"):
        prepare_store(recipe_from_dict(raw), show_progress=False)
    assert not (tmp_path / "store" / "manifest.json").exists()


def test_cli_job_array_builds_the_store(corpus_dir: Path, tmp_path: Path) -> None:
    """`prepare --tokenizer-only`, then each `--unit i --units N` task; the last one finalizes."""
    import yaml
    from typer.testing import CliRunner

    from recipes.cli import app

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(corpus_dir, tmp_path / "run", tmp_path / "store", data={"num_proc": 1})))
    runner = CliRunner()
    result = runner.invoke(app, ["prepare", str(path), "--tokenizer-only", "--no-progress"])
    assert result.exit_code == 0 and "tokenizer ready" in result.output, result.output
    result = runner.invoke(app, ["prepare", str(path), "--unit", "1", "--units", "2", "--no-progress"])
    assert result.exit_code == 0 and "store not complete yet" in result.output, result.output
    result = runner.invoke(app, ["prepare", str(path), "--unit", "0", "--units", "2", "--no-progress"])
    assert result.exit_code == 0 and "train seqs" in result.output, result.output
    assert TokenStore(tmp_path / "store").meta["units"] == 3
