"""The data checks of issue 9 inside the unit-based `prepare` of issue 12: a bad line in the middle
of a byte-range unit is named by its line in the whole file, duplicate ids are found across units
and files of a domain, a failed fresh prepare leaves no folder, and --overwrite accepts an
unfinished sharded prepare but nothing foreign."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from curriculum.errors import UserError
from curriculum.store.prepare import prepare_store
from recipes.loading import recipe_from_dict
from tests.conftest import recipe_dict


def recipe(corpus: Path, store: Path, **data: object) -> object:
    raw = recipe_dict(corpus, store.parent / "run", store)
    raw["data"].update(data)
    return recipe_from_dict(raw)


def test_a_bad_line_inside_a_later_byte_range_is_named_by_its_file_line(corpus: Path, tmp_path: Path) -> None:
    lines = (corpus / "prose.jsonl").read_text().splitlines(keepends=True)
    lines[70] = '{"text": "broken", "score": 0.5, "id": oops}\n'
    (corpus / "prose.jsonl").write_text("".join(lines))
    store = tmp_path / "store"
    with pytest.raises(UserError, match=r"prose\.jsonl:71: not valid JSON"):
        prepare_store(recipe(corpus, store, unit_bytes=2000, num_proc=1), show_progress=False)


def test_duplicate_ids_across_files_of_a_domain_are_refused_and_nothing_is_left(corpus: Path, tmp_path: Path) -> None:
    first = json.loads((corpus / "web.jsonl").read_text().splitlines()[5])
    copy = corpus / "web2.jsonl"
    copy.write_text(json.dumps({**first, "text": "another text, same id"}) + "\n")
    raw = recipe_dict(corpus, tmp_path / "run", tmp_path / "store")
    raw["data"]["domains"]["web"]["sources"].append({"path": str(copy)})
    with pytest.raises(
        UserError, match=rf"data\.domains\.web: 1 document id\(s\) appear more than once \('{first['id']}' x2\)"
    ):
        prepare_store(recipe_from_dict(raw), show_progress=False)
    assert not (tmp_path / "store").exists()  # a fresh prepare that failed leaves nothing behind


def test_overwrite_replaces_an_unfinished_sharded_prepare_but_not_user_files(corpus: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    r = recipe(corpus, store, num_proc=1)
    prepare_store(r, show_progress=False)
    (store / "manifest.json").unlink()  # as if killed before the manifest: units.json and shards remain
    shutil.rmtree(next((store / "shards").iterdir()))
    assert prepare_store(r, show_progress=False) is not None  # plain rerun resumes
    (store / "manifest.json").unlink()
    assert prepare_store(r, overwrite=True, show_progress=False) is not None  # and --overwrite restarts it
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "units.json").write_text('{"not": "a unit list"}')
    with pytest.raises(UserError, match="is not a currimix token store"):
        prepare_store(recipe(corpus, mine, num_proc=1), overwrite=True, show_progress=False)
    assert (mine / "units.json").is_file()


def test_a_recipe_that_only_builds_a_store_needs_no_training_section(corpus: Path, tmp_path: Path) -> None:
    """`prepare` reads the `data` and `tokenizer` sections only: an evaluation store with a given
    tokenizer needs no batch sizes. The commands that train refuse it, naming the section."""
    import yaml
    from typer.testing import CliRunner

    from recipes.cli import app

    raw = recipe_dict(corpus, tmp_path / "run", tmp_path / "store")
    del raw["training"]
    path = tmp_path / "eval-store.yaml"
    path.write_text(yaml.safe_dump(raw))
    runner = CliRunner()
    result = runner.invoke(app, ["prepare", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "store" / "manifest.json").is_file()
    for command in (["train", str(path), "--no-progress"], ["plan", str(path)]):
        refused = runner.invoke(app, command)
        assert refused.exit_code == 2, refused.output
        assert "has no `training` section" in refused.output and "Traceback" not in refused.output
    assert not (tmp_path / "run").exists()
