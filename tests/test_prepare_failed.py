"""What a failed fresh `prepare` keeps (issue 18), as README's "What survives a kill" says: nothing when
no unit finished; the finished shards (said so in the message) when some did, and the rerun after
the fix does only the failed unit and ends with the same store as a clean run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curriculum.errors import UserError
from curriculum.store.prepare import prepare_store
from curriculum.store.reader import TokenStore, verify_store
from recipes.loading import recipe_from_dict
from tests.conftest import recipe_dict


def _recipe(corpus: Path, store: Path) -> object:
    raw = recipe_dict(corpus, store.parent / "run", store)
    raw["data"]["num_proc"] = 1
    return recipe_from_dict(raw)


def test_a_failed_unit_keeps_the_finished_shards_and_the_rerun_does_only_the_rest(corpus: Path, tmp_path: Path) -> None:
    good = (corpus / "web.jsonl").read_bytes()
    (corpus / "web.jsonl").write_bytes(good + b'{"id": "web-x", "text": "bad \xff byte"}\n')
    store = tmp_path / "store"
    with pytest.raises(UserError, match=r"1 of 3 units .* the 2 finished shards are kept") as err:
        prepare_store(_recipe(corpus, store), show_progress=False)
    assert "web.jsonl:61: not UTF-8" in str(err.value)
    assert sorted(p.name for p in (store / "shards").iterdir()) == ["code-000000", "prose-000001"]
    assert not (store / "manifest.json").exists()
    kept = {p: p.stat().st_mtime_ns for p in (store / "shards").rglob("*") if p.is_file()}
    with pytest.raises(UserError, match="no manifest.json"):
        TokenStore(store)  # not a store until it is finished
    (corpus / "web.jsonl").write_bytes(good)
    resumed = prepare_store(_recipe(corpus, store), show_progress=False)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # the finished units were not redone
    clean = prepare_store(_recipe(corpus, tmp_path / "clean"), show_progress=False)
    # The same documents in the same shards; the tokens may differ from a clean run's, because the
    # kept tokenizer was trained without the unit that failed (README says so).
    a, b = (json.loads((s.root / "manifest.json").read_text()) for s in (resumed, clean))
    assert [s["name"] for s in a["shards"]] == [s["name"] for s in b["shards"]]
    for split in ("train", "val"):
        assert {d: a["stats"][split][d]["documents"] for d in a["domains"]} == {
            d: b["stats"][split][d]["documents"] for d in b["domains"]
        }
    assert verify_store(store) == (len(a["checksums"]), [])


def test_a_fresh_prepare_where_no_unit_finished_leaves_nothing(corpus: Path, tmp_path: Path) -> None:
    raw = recipe_dict(corpus, tmp_path / "run", tmp_path / "store")
    raw["data"]["domains"] = {"web": {"sources": [{"path": str(corpus / "bad.txt")}]}}
    raw["mixture"] = {"mixer": {"name": "static"}}
    (corpus / "bad.txt").write_bytes(b"text \xfe\n")
    with pytest.raises(UserError, match=r"bad\.txt:1: not UTF-8") as err:
        prepare_store(recipe_from_dict(raw), show_progress=False)
    assert "kept" not in str(err.value)
    assert not (tmp_path / "store").exists()


def test_a_damaged_units_json_can_be_overwritten_but_a_users_cannot(corpus: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    prepare_store(_recipe(corpus, store), show_progress=False)
    (store / "manifest.json").unlink()
    (store / "units.json").write_text("{oops")
    with pytest.raises(UserError, match="units.json is damaged .* pass --overwrite"):
        prepare_store(_recipe(corpus, store), show_progress=False)
    assert prepare_store(_recipe(corpus, store), overwrite=True, show_progress=False) is not None
    mine = tmp_path / "mine"
    (mine / "shards").mkdir(parents=True)
    (mine / "units.json").write_text("{oops")
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(UserError, match="is not a currimix token store"):
        prepare_store(_recipe(corpus, mine), overwrite=True, show_progress=False)
    assert (mine / "thesis.tex").is_file()
