"""Grids whose variants change the data (`stores: per-data`), scorers the grid fits itself (`fit:`),
and the Spearman check of a scorer against true quality (`truth:`), on the tiny corpus."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from curriculum.errors import UserError
from recipes.sweep import load_grid, run_grid
from recipes.sweep.fitting import MARKER, fit_scorers, spearman
from recipes.sweep.grid import FitSpec
from recipes.sweep.runner import check_same_tokenizer, write_recipes
from tests.test_sweep import write_grid


def scorer_grid(tmp_path: Path, corpus: Path, **changes) -> Path:
    """Two arms: the top half by the corpus's own `score` column, and by an ngram fitted by the grid."""
    ngram = str(tmp_path / "fitted" / "ngram")
    return write_grid(
        tmp_path,
        corpus,
        tmp_path / "unused-store",
        seeds=[0],
        axes={
            "scorer": {
                "field": {"curriculum.subset": "top"},
                "ngram": {"data.domains.prose.scorer": {"name": "ngram", "path": ngram}, "curriculum.subset": "top"},
                "random": {"curriculum.subset": "random", "curriculum.order": {"name": "random"}},
            }
        },
        references=[{"scorer": "random"}],
        averaging={"last": None},
        metrics=["val/mean", "truth/spearman"],
        stores="per-data",
        fit={
            "ngram": {
                "scorer": {"name": "ngram", "order": 2},
                "positive": [{"path": str(corpus / "prose.jsonl")}],
                "out": ngram,
            }
        },
        truth={"domain": "prose", "field": "score"},
        **changes,
    )


def test_per_data_stores_fits_and_truth(corpus_dir, tmp_path: Path, monkeypatch) -> None:
    grid = load_grid(scorer_grid(tmp_path, corpus_dir), "cpu", tmp_path / "out")
    messages: list[str] = []
    results = run_grid(grid, progress=False, log=messages.append)
    assert sum(m.startswith("fitting scorer 'ngram'") for m in messages) == 1
    assert (tmp_path / "fitted" / "ngram" / MARKER).is_file()
    # field and random read the same data, so they share a store; ngram gets its own; no shared store
    stores = sorted((tmp_path / "out" / "stores").iterdir())
    assert len(stores) == 2 and not (tmp_path / "out" / "store").exists()
    recipes = {v.slug: yaml.safe_load(grid.recipe_file(v).read_text()) for v in grid.variants}
    field, ngram, rnd = (recipes[f"scorer-{s}__seed0"]["data"]["store"] for s in ("field", "ngram", "random"))
    assert field == rnd != ngram and {field, ngram} == {str(s) for s in stores}
    assert (stores[0] / "tokenizer" / "tokenizer.json").read_bytes() == (
        stores[1] / "tokenizer" / "tokenizer.json"
    ).read_bytes()
    by_arm = {r["cell"]["scorer"]: r["models"]["last"] for r in results}
    assert by_arm["field"]["truth/spearman"] == pytest.approx(1.0)  # the score column against itself
    assert -1 <= by_arm["ngram"]["truth/spearman"] <= 1 and by_arm["ngram"]["truth/spearman"] != pytest.approx(1.0)
    assert "truth/spearman" not in by_arm["random"]  # a random half in random order: the score picks nothing
    assert by_arm["field"]["val/mean"] != by_arm["ngram"]["val/mean"]

    # A rerun fits nothing, prepares nothing and trains nothing.
    import curriculum.scorers.ngram
    import curriculum.store.prepare

    def refused(*args, **kwargs):
        raise AssertionError("done work was redone")

    monkeypatch.setattr(curriculum.scorers.ngram.NgramScorer, "fit", refused)
    monkeypatch.setattr(curriculum.store.prepare, "prepare_store", refused)
    monkeypatch.setattr("recipes.sweep.runner.run_variant", refused)
    again: list[str] = []
    run_grid(grid, progress=False, log=again.append)
    assert sum("skipped" in m for m in again) == 3 and not any("fitting" in m for m in again)


def test_print_commands_prepare_each_store_and_fit_nothing(corpus_dir, tmp_path: Path) -> None:
    from recipes.cli import app

    path = scorer_grid(tmp_path, corpus_dir)
    result = CliRunner().invoke(app, ["sweep", str(path), "--print-commands", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    commands = [json.loads(line) for line in result.output.strip().splitlines()]
    prepares = [c for c in commands if c[:2] == ["currimix", "prepare"]]
    assert len(prepares) == 2 and len(commands) == 2 + 3
    assert not (tmp_path / "fitted").exists()  # fitting is `currimix sweep`'s job, not --print-commands'


def test_a_refit_makes_another_store(corpus_dir, tmp_path: Path) -> None:
    # The store's recipe names only the scorer's folder; its key also hashes the fit, so new
    # reference documents put the ngram arm in a new store rather than reuse stale scores.
    grid = load_grid(scorer_grid(tmp_path, corpus_dir), "cpu", tmp_path / "out")
    before = {v.slug: r.store_path for v, r in zip(grid.variants, write_recipes(grid))}
    config = grid.config.model_copy(deep=True)
    reference = tmp_path / "reference.jsonl"
    reference.write_text((corpus_dir / "prose.jsonl").read_text())
    config.fit["ngram"].positive[0].path = str(reference)
    after = {v.slug: r.store_path for v, r in zip(grid.variants, write_recipes(replace(grid, config=config)))}
    assert after["scorer-field__seed0"] == before["scorer-field__seed0"]
    assert after["scorer-ngram__seed0"] != before["scorer-ngram__seed0"]


def test_fit_is_deterministic_skipped_when_done_and_redone_when_its_documents_change(
    corpus_dir, tmp_path: Path
) -> None:
    negatives = tmp_path / "neg.jsonl"
    negatives.write_text((corpus_dir / "web.jsonl").read_text())

    def spec(out: str) -> FitSpec:
        return FitSpec(
            scorer={"name": "classifier", "buckets": 256, "epochs": 2},
            positive=[{"path": str(corpus_dir / "prose.jsonl")}],
            negative=[{"path": str(negatives), "sample": 20}],
            seed=3,
            out=str(tmp_path / out),
        )

    messages: list[str] = []
    fit_scorers({"a": spec("a"), "b": spec("b")}, messages.append)
    assert len(messages) == 2 and "20 negative" in messages[0]
    state = lambda name: (tmp_path / name / "classifier.npz").read_bytes()  # noqa: E731
    assert state("a") == state("b")  # same spec, same sample, same model
    fit_scorers({"a": spec("a")}, messages.append)
    assert len(messages) == 2  # skipped: the marker names this exact fit
    negatives.write_text("\n".join(negatives.read_text().splitlines()[:40]) + "\n")
    fit_scorers({"a": spec("a")}, messages.append)
    assert len(messages) == 3  # the documents changed: refitted


def test_stores_with_different_tokenizers_are_refused(tmp_path: Path) -> None:
    for name, vocab in (("s1", {"a": 0}), ("s2", {"a": 0}), ("s3", {"b": 0})):
        (tmp_path / name / "tokenizer").mkdir(parents=True)
        (tmp_path / name / "tokenizer" / "tokenizer.json").write_text(json.dumps(vocab))
    check_same_tokenizer([tmp_path / "s1", tmp_path / "s2"])
    with pytest.raises(UserError, match="different tokenizers.*tokenizer.path"):
        check_same_tokenizer([tmp_path / "s1", tmp_path / "s3"])


@pytest.mark.parametrize(
    "fit, match",
    [
        ({"h": {"scorer": {"name": "heuristic"}, "positive": [{"path": "x"}], "out": "o"}}, "nothing to fit"),
        ({"n": {"scorer": {"name": "ngram", "path": "p"}, "positive": [{"path": "x"}], "out": "o"}}, "drop `path`"),
        ({"n": {"scorer": {"name": "ngram"}, "positive": [], "out": "o"}}, "positive"),
    ],
)
def test_fit_mistakes_are_named(corpus_dir, tmp_path: Path, fit: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        load_grid(_with_fit(tmp_path, corpus_dir, fit))


def _with_fit(tmp_path: Path, corpus: Path, fit: dict) -> Path:
    path = scorer_grid(tmp_path, corpus)
    raw = yaml.safe_load(path.read_text())
    raw["fit"] = fit
    path.write_text(yaml.safe_dump(raw))
    return path


def test_spearman() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert spearman(x, x**3) == pytest.approx(1.0) and spearman(x, -x) == pytest.approx(-1.0)
    # ties get their average rank: ranks (0, 1.5, 1.5, 3) against (0, 1, 2, 3)
    assert spearman(np.array([1.0, 2.0, 2.0, 3.0]), x) == pytest.approx(
        np.corrcoef([0, 1.5, 1.5, 3], [0, 1, 2, 3])[0, 1]
    )
    assert spearman(np.ones(4), x) is None


def test_a_fresh_checkout_builds_the_corpus_before_fitting_on_it(tmp_path: Path) -> None:
    # testbed-scorers.yaml fits its scorers on the corpus's reference.jsonl, which the grid itself builds.
    from recipes.sweep.grid import GridConfig
    from recipes.sweep.runner import build_inputs
    from tests.test_testbed import config as dial_config

    corpus = dial_config(tmp_path)
    fit = {"scorer": {"name": "ngram", "order": 2}, "positive": [{"path": f"{corpus.out}/reference.jsonl"}]}
    config = GridConfig(
        name="g",
        base="b.yaml",
        seeds=[0],
        axes={"a": {"x": {}}},
        corpus=corpus,
        fit={"ngram": {**fit, "out": str(tmp_path / "ngram")}},
    )
    grid = load_grid(write_grid(tmp_path, tmp_path, tmp_path / "s"), "cpu", tmp_path / "o")
    build_inputs(replace(grid, config=config), log=lambda _: None)
    assert (tmp_path / "dial" / "reference.jsonl").is_file() and (tmp_path / "ngram" / MARKER).is_file()
