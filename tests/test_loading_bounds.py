"""Recipes against inputs nobody listed: YAML bounds, plan budgets, settings checked before the model
exists, renamed keys, and the one path check (file, folder, FIFO, symbolic link, NUL, length, root)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from curriculum.errors import UserError
from curriculum.paths import check_input_path, check_output_path
from recipes.loading import apply_overrides, load_recipe, load_yaml, preset_path, recipe_from_dict, resolve_recipe_path
from tests.conftest import recipe_dict
from tools.train.plan import check_plan_budget

BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")
)


def _write(tmp_path: Path, raw: dict, name: str = "r.yaml", extra: str = "") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False) + extra)
    return path


# ------------------------------------------------------------------ YAML bounds


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("name: x\n? [a, b]\n: 1\n", "the key on line 2 is a list"),
        ("name: x\n? {a: 1}\n: 1\n", "the key on line 2 is a mapping"),
        ("name: &a [*a]\n", "recursive alias"),
        ("name: " + "[" * 5000 + "]" * 5000 + "\n", "CURRIMIX_YAML_MAX_DEPTH"),
        (
            "model:\n  extra:\n" + "".join("    " + line + "\n" for line in BILLION_LAUGHS.splitlines()),
            "CURRIMIX_YAML_MAX_NODES",
        ),
    ],
    ids=["list-key", "mapping-key", "recursive-alias", "5000-brackets", "billion-laughs"],
)
def test_hostile_yaml_is_refused_fast_with_the_limit_named(text: str, phrase: str) -> None:
    start = time.perf_counter()
    with pytest.raises((UserError, yaml.YAMLError), match=phrase):
        load_yaml(text, source="recipe 'r.yaml'")
    assert time.perf_counter() - start < 2  # the bomb expands to 4.9e8 values; it must never be built


def test_yaml_bounds_name_the_variable_and_it_raises_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = "x: " + "[" * 80 + "]" * 80 + "\n"
    with pytest.raises(UserError, match="nested over 64 levels deep.*CURRIMIX_YAML_MAX_DEPTH"):
        load_yaml(deep)
    monkeypatch.setenv("CURRIMIX_YAML_MAX_DEPTH", "100")
    assert load_yaml(deep)["x"] == [[[]]] or load_yaml(deep)["x"]  # raised: it loads
    monkeypatch.setenv("CURRIMIX_YAML_MAX_BYTES", "50")
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "# padding\n" * 20)
    with pytest.raises(
        UserError, match=r"recipe '.*big.yaml' has 208 bytes: the limit is 50 bytes.*CURRIMIX_YAML_MAX_BYTES"
    ):
        load_recipe(path)
    monkeypatch.setenv("CURRIMIX_YAML_MAX_BYTES", "lots")
    with pytest.raises(UserError, match="CURRIMIX_YAML_MAX_BYTES='lots' is not a whole number"):
        load_yaml("a: 1")


def test_aliases_that_stay_small_still_work() -> None:
    assert load_yaml("a: &w {code: 0.5}\nb: *w\n") == {"a": {"code": 0.5}, "b": {"code": 0.5}}


def test_set_bounds_and_paths_through_values(corpus_dir: Path, tmp_path: Path) -> None:
    raw = recipe_dict(corpus_dir, tmp_path)
    raw["training"]["trackers"] = ["jsonl"]
    with pytest.raises(UserError, match=r"training.trackers.0 is a value, not a section or a list \(it is 'jsonl'\)"):
        apply_overrides(raw, ["training.trackers.0.x=1"])
    with pytest.raises(UserError, match="recursive alias"):
        apply_overrides(raw, ["model.extra=&a [*a]"])
    with pytest.raises(UserError, match="CURRIMIX_YAML_MAX_NODES"):
        apply_overrides(raw, ["model.extra={" + BILLION_LAUGHS.replace("\n", ", ").rstrip(", ") + "}"])
    with pytest.raises(UserError, match="training.trackers.x is not an index of a 1-item list"):
        apply_overrides(raw, ["training.trackers.x=1"])


# ------------------------------------------------------------------ budgets


def test_plan_memory_is_estimated_before_anything_is_built(
    corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = recipe_dict(corpus_dir, tmp_path)
    raw["training"]["steps"] = 10**12
    start = time.perf_counter()
    with pytest.raises(UserError) as info:
        recipe_from_dict(raw)
    assert time.perf_counter() - start < 2
    message = str(info.value)
    assert "training.steps" in message and "2,048 MB" in message and "CURRIMIX_PLAN_MAX_MB" in message
    raw["training"]["steps"] = 2 * 10**8  # ~2.9 GB at 64-step windows: fine with 4096-step ones or a larger budget
    with pytest.raises(UserError, match="CURRIMIX_PLAN_MAX_MB"):
        recipe_from_dict(raw)
    raw["mixture"]["resolution_steps"] = 4096
    check_plan_budget(recipe_from_dict(raw))
    raw["mixture"]["resolution_steps"] = 64
    monkeypatch.setenv("CURRIMIX_PLAN_MAX_MB", "4096")
    assert recipe_from_dict(raw).training.steps == 2 * 10**8


@pytest.mark.parametrize("cap", [".nan", "-1"])
def test_max_epochs_nan_or_negative_is_refused(corpus_dir: Path, tmp_path: Path, cap: str) -> None:
    raw = apply_overrides(recipe_dict(corpus_dir, tmp_path), [f"mixture.max_epochs={{default: {cap}}}"])
    with pytest.raises(UserError, match="mixture.max_epochs.default"):
        recipe_from_dict(raw)
    raw = apply_overrides(raw, ["mixture.max_epochs={default: .inf}"])  # infinity = no cap, on purpose
    assert recipe_from_dict(raw).mixture.max_epochs["default"] == float("inf")


# ------------------------------------------------------------------ before the model exists


@pytest.mark.parametrize(
    ("override", "phrase"),
    [
        ("training.betas=[1.5, -1]", "training.betas.0"),
        ("training.betas=[0.9, -1]", "training.betas.1"),
        ("training.eps=.inf", "training.eps"),
        ("training.weight_decay=.nan", "training.weight_decay"),
        ("training.grad_clip=.inf", "training.grad_clip"),
        ("seed=4294967296", "seed"),
        ("model.extra={hidden_act: nope}", "model.extra.hidden_act"),
        ("model.extra={num_key_value_heads: 3}", "(num_key_value_heads -> model.num_kv_heads)"),
        ("model.extra={hidden_size: 64, max_position_embeddings: 8}", "hidden_size -> model.hidden_size"),
        ("model.extra={attention_bias: maybe}", "model.extra.attention_bias"),
        ("model.arch=no-such-arch", "model.arch='no-such-arch' is not a transformers model type"),
    ],
)
def test_what_the_model_and_optimizer_will_be_asked_is_checked_at_load(
    corpus_dir: Path, tmp_path: Path, override: str, phrase: str
) -> None:
    raw = apply_overrides(recipe_dict(corpus_dir, tmp_path), [override])
    with pytest.raises(UserError, match="problem") as info:
        recipe_from_dict(raw)
    assert phrase in str(info.value)


def test_init_from_is_checked_at_load(corpus_dir: Path, tmp_path: Path, finished_run: Path) -> None:
    raw = recipe_dict(corpus_dir, tmp_path)
    raw["model"]["init_from"] = str(finished_run / "final")
    assert recipe_from_dict(raw).model.init_from  # a real model folder loads
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text('{"model_type": "llama"}')
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text('{"model_type": "no-such-model"}')
    (unknown / "model.safetensors").write_bytes(b"")
    cases = {
        tmp_path / "nothing": "is nothing, not a model folder",
        corpus_dir / "code.jsonl": "is a file, not a model folder",
        corpus_dir: "no config.json",
        no_weights: "has no weights",
        unknown: "its config.json cannot be read by transformers",
    }
    for folder, phrase in cases.items():
        raw["model"]["init_from"] = str(folder)
        with pytest.raises(UserError, match="model.init_from") as info:
            recipe_from_dict(raw)
        assert phrase in str(info.value), folder


# ------------------------------------------------------------------ renamed keys


@pytest.mark.parametrize(
    ("averaging", "phrase"),
    [
        ({"method": "sma"}, "averaging.method: this key was renamed: it became `averaging.weights: {name: sma}`"),
        ({"alpha": 0.3}, "became `averaging.weights: {name: ema, alpha: 0.3}`"),
        ({"ema_form": "recursive"}, "became `averaging.weights: {name: ema, form: recursive}`"),
        ({"weights": [1, 2]}, "became `averaging.weights: {name: explicit, values: [1, 2]}`"),
    ],
)
def test_renamed_keys_say_their_new_name(corpus_dir: Path, tmp_path: Path, averaging: dict, phrase: str) -> None:
    raw = recipe_dict(corpus_dir, tmp_path)
    raw["averaging"] = {"snapshots": 2, "every_steps": 2, **averaging}
    with pytest.raises(UserError) as info:
        recipe_from_dict(raw)
    assert phrase in str(info.value)


# ------------------------------------------------------------------ paths


def test_a_recipe_path_says_what_is_there(corpus_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    dangling = tmp_path / "link.yaml"
    dangling.symlink_to(tmp_path / "gone.yaml")
    expected = {
        folder: "is a folder, not a file",
        fifo: "is a FIFO (named pipe), not a file",
        dangling: "is a symbolic link to",
        tmp_path / "missing.yaml": "does not exist",
        tmp_path / ("x" * 300) / "r.yaml": "over the 255-byte limit of one file or folder name",
    }
    for path, phrase in expected.items():
        with pytest.raises(UserError, match="recipe") as info:
            load_recipe(resolve_recipe_path(str(path)))
        assert phrase in str(info.value), path
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    for looped in ("loop1", "loop1/r.yaml"):
        with pytest.raises(UserError, match="Too many levels of symbolic links"):
            load_recipe(resolve_recipe_path(str(tmp_path / looped)))
    with pytest.raises(UserError, match="goes through a loop of symbolic links"):
        check_output_path(tmp_path / "loop1", "--json")
    good = _write(tmp_path, recipe_dict(corpus_dir, tmp_path))
    (tmp_path / "via-link.yaml").symlink_to(good)
    assert load_recipe(tmp_path / "via-link.yaml").name == "tiny"  # a link to a recipe is fine


def test_nul_bytes_and_long_names_in_recipe_values_are_messages(corpus_dir: Path, tmp_path: Path) -> None:
    raw = recipe_dict(corpus_dir, tmp_path)
    raw["data"]["domains"]["code"]["sources"][0]["path"] = "a\0b.jsonl"
    with pytest.raises(UserError, match=r"data.domains.code.sources.0.path: the text contains a NUL byte"):
        recipe_from_dict(raw)
    raw = recipe_dict(corpus_dir, tmp_path)
    raw["run_dir"] = str(tmp_path / ("r" * 300))
    with pytest.raises(UserError, match="run_dir: .*300 bytes.*255-byte limit"):
        recipe_from_dict(raw)


def test_preset_names_never_leave_the_presets(
    corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    presets = tmp_path / "presets"
    presets.mkdir()
    _write(presets, recipe_dict(corpus_dir, tmp_path), name="good.yaml")
    _write(tmp_path, recipe_dict(corpus_dir, tmp_path), name="evil.yaml")  # a readable recipe one level up
    monkeypatch.setattr("recipes.loading.PRESETS_DIR", presets)
    assert preset_path("good") == presets / "good.yaml"
    for name in ("../evil", "../../x/evil", "/etc/passwd", "..", "a/b", "good/../good", ".good"):
        with pytest.raises(UserError, match="no preset"):
            preset_path(name)
    raw = {"extends": "../evil", "name": "x"}  # `extends` names presets the same way
    with pytest.raises(UserError, match="no preset '../evil'"):
        load_recipe(_write(tmp_path, raw, name="child.yaml"))


def test_output_paths_are_checked_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UserError, match="is a folder; give the name of a regular file"):
        check_output_path(tmp_path, "--json")
    with pytest.raises(UserError, match="is a FIFO"):
        check_output_path(tmp_path / "fifo", "--json")
    with pytest.raises(UserError, match="'.*file' is a file, not a folder"):
        check_output_path(tmp_path / "file" / "out.json", "--json")
    with pytest.raises(UserError, match="NUL byte"):
        check_output_path("a\0b", "--png")
    assert check_output_path(tmp_path / "new" / "out.json", "--json") == tmp_path / "new" / "out.json"
    assert check_input_path(tmp_path, "folder", kind="folder") == tmp_path
    with pytest.raises(UserError, match="lies outside"):
        check_input_path(tmp_path / "file", "x", under=tmp_path / "new")


def test_unknown_keys_suggest_the_closest_key_of_their_section(corpus_dir: Path, tmp_path: Path) -> None:
    raw = apply_overrides(
        recipe_dict(corpus_dir, tmp_path),
        [
            "training.micro_batch_sise=2",
            "schedule.decay_fracton=0.2",  # a registry section: the keys of the schedule it names (wsd)
            "mixture.mixer={name: temperature, tua: 2}",
            "data.domains.code.sources.0.text_feild=x",  # through a mapping and a list
            "trainig={steps: 3}",
            "model.zzzz=1",  # nothing close: no suggestion
        ],
    )
    with pytest.raises(UserError) as info:
        recipe_from_dict(raw)
    message = str(info.value)
    for suggestion in (
        "training.micro_batch_size",
        "schedule.decay_fraction",
        "mixture.mixer.tau",
        "data.domains.code.sources.0.text_field",
        "`training`",
    ):
        assert f"did you mean `{suggestion.strip('`')}`?" in message, suggestion
    assert "model.zzzz: unknown key (not part of the schema; check the spelling)\n" in message + "\n"


def test_averaging_snapshots_count_in_the_plan_budget(corpus_dir: Path, tmp_path: Path) -> None:
    raw = recipe_dict(corpus_dir, tmp_path)
    raw["training"]["steps"] = 10**9
    raw["mixture"]["resolution_steps"] = 4096
    raw["averaging"] = {"snapshots": 10**9, "every_steps": 1}  # fits the steps, not the memory
    with pytest.raises(
        UserError, match="averaging.snapshots: 1,000,000,000 averaging snapshots make the plan need about"
    ):
        recipe_from_dict(raw)
    raw["averaging"] = {"snapshots": 10**9 + 1, "every_steps": 1}
    with pytest.raises(UserError, match="does not fit in a run of 1,000,000,000 steps"):
        recipe_from_dict(raw)
