"""The recipe schema: strict, all problems at once with key paths, overrides, presets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from curriculum.errors import UserError
from recipes.loading import apply_overrides, load_recipe, preset_path, recipe_from_dict
from tests.conftest import recipe_dict


def test_valid_recipe_round_trips(corpus_dir: Path, tmp_path: Path) -> None:
    recipe = recipe_from_dict(recipe_dict(corpus_dir, tmp_path))
    assert recipe.training.steps == 12
    assert recipe.store_path == tmp_path / "store"
    assert recipe.fingerprint() == recipe_from_dict(recipe_dict(corpus_dir, tmp_path)).fingerprint()


def test_all_problems_reported_at_once(corpus_dir: Path, tmp_path: Path) -> None:
    raw = recipe_dict(corpus_dir, tmp_path)
    raw["trainning"] = {}  # unknown top-level key
    raw["model"]["hidden_sise"] = 64  # unknown nested key
    raw["training"]["global_batch_size"] = -8  # impossible value
    raw["schedule"]["name"] = "cosin"  # unknown registry name
    with pytest.raises(UserError) as info:
        recipe_from_dict(raw)
    message = str(info.value)
    assert "4 problem(s)" in message
    for key in ("trainning", "model.hidden_sise", "training.global_batch_size", "schedule"):
        assert key in message
    assert "cosine" in message  # the choices are listed


def test_negative_and_non_distribution_weights_are_refused(corpus_dir: Path, tmp_path: Path) -> None:
    raw = recipe_dict(
        corpus_dir, tmp_path, mixture={"mixer": {"name": "static", "weights": {"code": -0.5, "prose": 1.5}}}
    )
    with pytest.raises(UserError, match="non-negative"):
        recipe_from_dict(raw)
    raw = recipe_dict(corpus_dir, tmp_path, mixture={"mixer": {"name": "static", "weights": {"code": 0.5}}})
    with pytest.raises(UserError, match="sum to 1"):
        recipe_from_dict(raw)
    raw = recipe_dict(corpus_dir, tmp_path, mixture={"mixer": {"name": "static", "weights": {"cod": 1.0}}})
    with pytest.raises(UserError, match="unknown domain 'cod'"):
        recipe_from_dict(raw)


def test_missing_files_are_named_before_anything_runs(corpus_dir: Path, tmp_path: Path) -> None:
    from curriculum.store.prepare import check_inputs

    raw = recipe_dict(corpus_dir, tmp_path)
    raw["data"]["domains"]["code"]["sources"][0]["path"] = str(tmp_path / "nope.jsonl")
    raw["data"]["domains"]["web"]["sources"][0]["path"] = str(tmp_path / "missing/*.jsonl")
    raw["tokenizer"]["path"] = str(tmp_path / "no-tokenizer")
    with pytest.raises(UserError) as info:
        recipe = recipe_from_dict(raw)
        check_inputs(recipe.data, recipe.tokenizer, recipe.name)
    message = str(info.value)
    assert "data.domains.code.sources.0.path" in message and "nope.jsonl" in message
    assert "data.domains.web.sources.0.path" in message
    assert "tokenizer.path" in message


def test_overrides_parse_yaml_and_reach_lists(corpus_dir: Path, tmp_path: Path) -> None:
    raw = recipe_dict(corpus_dir, tmp_path)
    out = apply_overrides(
        raw,
        [
            "training.steps=20",
            "mixture.mixer.weights={code: 1.0}",
            "data.domains.code.sources.0.text_field=body",
            "averaging.snapshots=null",
        ],
    )
    assert out["training"]["steps"] == 20
    assert out["mixture"]["mixer"]["weights"] == {"code": 1.0}
    assert out["data"]["domains"]["code"]["sources"][0]["text_field"] == "body"
    assert out["averaging"]["snapshots"] is None
    assert raw["training"]["steps"] == 12  # the input is not modified
    with pytest.raises(UserError, match="key.path=value"):
        apply_overrides(raw, ["training.steps"])
    with pytest.raises(UserError, match="index"):
        apply_overrides(raw, ["data.domains.code.sources.5.path=x"])


def test_load_recipe_from_yaml_with_overrides(corpus_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(corpus_dir, tmp_path)))
    recipe = load_recipe(path, ["seed=7"])
    assert recipe.seed == 7
    with pytest.raises(UserError, match="does not exist"):
        load_recipe(tmp_path / "absent.yaml")
    path.write_text("name: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(path)


def test_every_preset_validates() -> None:
    folder = preset_path("quickstart").parent
    presets = sorted(folder.glob("*.yaml"))
    assert presets, "no presets shipped"
    for path in presets:
        load_recipe(path)
