"""`currimix sweep` on the tiny store: variants x seeds run once, averaging from the same run's
snapshots, reruns skip finished variants, tables carry the seed spread, cluster commands are argument lists."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from curriculum.errors import UserError
from recipes.loading import load_recipe
from recipes.sweep import load_grid, run_grid, write_report
from recipes.sweep.grid import read_grid
from recipes.sweep.report import compare
from tests.conftest import recipe_dict


def write_grid(folder: Path, corpus: Path, store: Path, **changes) -> Path:
    base = recipe_dict(corpus, folder / "unused", store)
    base["training"].update(steps=6, eval_every_steps=2)
    base["evaluation"] = {
        "sets": {"val": {"sequences_per_domain": 8}},
        "probes": {"kw": {"builtin": "python-keywords", "max_examples": 8}},
    }
    base["checkpoint"] = {"keep_last": 1}
    base["averaging"] = {"snapshots": 2, "every_steps": 2, "weights": {"name": "ema", "alpha": 0.2}}
    (folder / "base.yaml").write_text(yaml.safe_dump(base))
    grid = {
        "name": "tiny-grid",
        "base": "base.yaml",
        "seeds": [0, 1],
        "axes": {
            "order": {
                "random": {"curriculum.order": {"name": "random"}},
                "ascending": {"curriculum.order": {"name": "ascending"}},
            }
        },
        "averaging": {"last": None, "ema2": {"last": 2, "weights": {"name": "ema", "alpha": 0.2}}},
        "references": [{"order": "random"}, {"averaging": "last"}],
        "metrics": ["val/mean", "val/q5", "gap/code"],
        "eval_sequences_per_domain": 8,
        "sizes": {"cpu": {}, "wide": {"model.hidden_size": 64}},
        **changes,
    }
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def test_sweep_runs_each_variant_once_and_skips_on_rerun(corpus_dir, tiny_store, tmp_path: Path, monkeypatch) -> None:
    grid = load_grid(write_grid(tmp_path, corpus_dir, tiny_store), "cpu", tmp_path / "out")
    assert len(grid.variants) == 4 and {v.seed for v in grid.variants} == {0, 1}
    results = run_grid(grid, progress=False, log=lambda _: None)
    files = write_report(grid, results)
    runs = sorted((tmp_path / "out" / "runs").iterdir())
    assert len(runs) == 4, "averaging variants must not be trained separately"
    for run in runs:
        assert (run / "averaged" / "ema2" / "config.json").is_file()
    rows = list(csv.DictReader(io.StringIO(files["csv"].read_text())))
    assert len(rows) == 2 * 2 * 2  # orders x averaged models x seeds
    assert {r["averaging"] for r in rows} == {"last", "ema2"}
    for r in rows:
        assert float(r["val/q1"]) > 0 and float(r["val/q5"]) > 0 and "gap/code" in r
    # Averaging changes the model: final and averaged losses differ for the same run.
    by_run = {(r["order"], r["seed"], r["averaging"]): float(r["val/mean"]) for r in rows}
    assert by_run[("random", "0", "last")] != by_run[("random", "0", "ema2")]
    table = files["markdown"].read_text()
    assert table.count(" ± ") >= 4 * 3 and "| order | averaging | n |" in table
    assert "Difference to the cell with order=random" in table and "Difference to the cell with averaging=last" in table
    assert files["curves"].stat().st_size < 200_000 and files["final"].stat().st_size < 200_000
    # bits per byte and probes in every row; each metric's signal, noise and SNR across the cells
    assert all(float(r["bpb/val/code"]) > 0 and 0 <= float(r["probe/kw/acc"]) <= 1 for r in rows)
    noise = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table.splitlines() if "|" in line}
    for metric in ("val/mean", "bpb/val", "probe/kw/bpb"):
        _, n_cells, signal, seed_noise, snr, ckpt_noise, ckpt_snr = noise[metric]
        assert n_cells == "4" and float(signal) > 0 and float(seed_noise) > 0  # 2 orders x 2 averaged models
        assert float(snr) == pytest.approx(float(signal) / float(seed_noise), rel=0.01)
        assert float(ckpt_noise) > 0 and float(ckpt_snr.strip(" |")) > 0  # over the last in-loop evaluations

    # A rerun trains and evaluates nothing and writes the same tables.
    import tools.train.pretrain

    def no_training(*args, **kwargs):
        raise AssertionError("a finished variant was trained again")

    monkeypatch.setattr(tools.train.pretrain, "train", no_training)
    monkeypatch.setattr("recipes.sweep.runner.run_variant", no_training)
    messages: list[str] = []
    again = run_grid(grid, progress=False, log=messages.append)
    assert sum("skipped" in m for m in messages) == 4
    assert write_report(grid, again)["markdown"].read_text() == table


def test_cli_prints_one_argument_list_per_variant(corpus_dir, tiny_store, tmp_path: Path) -> None:
    from recipes.cli import app

    path = write_grid(tmp_path, corpus_dir, tiny_store)
    result = CliRunner().invoke(
        app, ["sweep", str(path), "--size", "wide", "--print-commands", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    commands = [json.loads(line) for line in result.output.strip().splitlines()]
    assert commands[0][:2] == ["currimix", "prepare"] and len(commands) == 1 + 4
    for args in commands[1:]:
        assert args[:5] == ["accelerate", "launch", "-m", "recipes.cli", "train"]
        assert load_recipe(args[5]).model.hidden_size == 64  # what `train` will read
        recipe = yaml.safe_load(Path(args[5]).read_text())
        assert recipe["model"]["hidden_size"] == 64 and recipe["data"]["store"] == str(tmp_path / "o" / "store")
    seeds = sorted(yaml.safe_load(Path(a[5]).read_text())["seed"] for a in commands[1:])
    assert seeds == [0, 0, 1, 1]


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"references": [{"lr": "x"}]}, "neither an axis"),
        ({"references": [{"order": "sorted"}]}, "not one of"),
        ({"averaging": {"last": None, "ema9": {"last": 9, "weights": {"name": "sma"}}}}, "averages the last 9"),
        (
            {"axes": {"data": {"a": {"data.seq_len": 16}, "b": {"data.seq_len": 32}}}, "references": []},
            "share one token store",
        ),
        ({"seeds": []}, "seeds"),
        ({"axes": {"tail": {"10%": {"training.steps": 8}}}, "references": []}, "e.g. 10pct, not 10%"),
    ],
)
def test_grid_mistakes_are_named(corpus_dir, tiny_store, tmp_path: Path, changes, match: str) -> None:
    from recipes.sweep.runner import write_recipes

    with pytest.raises(UserError, match=match):
        write_recipes(load_grid(write_grid(tmp_path, corpus_dir, tiny_store, **changes), "cpu", tmp_path / "o"))
    with pytest.raises(UserError, match="no size 'huge'"):
        load_grid(write_grid(tmp_path, corpus_dir, tiny_store), "huge")


def test_a_grid_with_a_label_given_twice_is_refused(tmp_path: Path) -> None:
    # Plain YAML keeps the second `fast:` and the grid would silently lose a variant.
    path = tmp_path / "grid.yaml"
    path.write_text(
        "name: g\nbase: quickstart\naxes:\n  lr:\n    fast: {optimizer.lr: 0.01}\n    fast: {optimizer.lr: 0.001}\n"
    )
    with pytest.raises(UserError, match="given twice"):
        read_grid(path)


def test_paired_interval_rule() -> None:
    def rows(values):
        return {s: {"m": v} for s, v in enumerate(values)}

    clear = compare(rows([1.0, 1.02]), rows([1.2, 1.21]), "m")  # d = -0.2, -0.19: t(0.975, 1) = 12.706
    assert clear.finding and clear.mean == pytest.approx(-0.195)
    assert clear.high == pytest.approx(-0.195 + 12.706 * np.std([-0.2, -0.19], ddof=1) / np.sqrt(2))
    assert not compare(rows([1.0, 1.3]), rows([1.2, 1.21]), "m").finding  # mixed signs
    four = compare(rows([2.0, 3.0, 4.0, 5.0]), rows([1.0, 1.0, 1.0, 1.0]), "m")  # d = 1..4
    assert (four.low, four.high) == pytest.approx((2.5 - 3.182 * 1.2910 / 2, 2.5 + 3.182 * 1.2910 / 2), abs=1e-3)
    assert four.finding and four.agree == 4
    single = compare(rows([1.0]), rows([1.1]), "m")
    assert np.isnan(single.sd) and not single.finding


def test_claims_get_verdicts(corpus_dir, tiny_store, tmp_path: Path) -> None:
    from recipes.sweep.report import claims_table

    claim = {"metric": "val/mean", "expect": "negative"}
    claims = [
        {**claim, "claim": "ascending is better", "terms": [[1, {"order": "ascending"}], [-1, {"order": "random"}]]},
        {**claim, "claim": "random is better", "terms": [[1, {"order": "random"}], [-1, {"order": "ascending"}]]},
        {
            **claim,
            "claim": "noise",
            "terms": [[1, {"order": "random", "averaging": "ema2"}], [-1, {"order": "random"}]],
        },
    ]
    grid = load_grid(write_grid(tmp_path, corpus_dir, tiny_store, claims=claims), "cpu", tmp_path / "o")
    losses = {
        ("ascending", "last"): [4.0, 4.1, 4.2],
        ("random", "last"): [4.5, 4.55, 4.8],
        ("random", "ema2"): [4.4, 4.7, 4.7],
    }
    rows = [
        {"order": o, "averaging": a, "seed": s, "val/mean": v}
        for (o, a), vs in losses.items()
        for s, v in enumerate(vs)
    ]
    table = claims_table(grid, rows)
    assert "| ascending is better | val/mean | -0.517 [" in table and "| 3/3 | **reproduces** |" in table
    assert "| random is better |" in table and "**opposite**" in table
    assert "| noise |" in table and "**inside noise**" in table
    with pytest.raises(UserError, match="must name every axis"):
        load_grid(write_grid(tmp_path, corpus_dir, tiny_store, claims=[{**claims[0], "terms": [[1, {}]]}]))


def test_quality_quintiles_split_each_domain_into_fifths(tiny_store) -> None:
    from curriculum.store.reader import TokenStore
    from tools.evaluate.domains import quality_quintiles

    split = TokenStore(tiny_store).train
    for d in range(len(split.domain_names)):
        start, stop = split.domain_range(d)
        ids = np.arange(start, stop)
        q = quality_quintiles(split, ids, d)
        scores = split.score[ids]
        assert q.min() >= 0 and q.max() <= 4
        assert scores[q == q.max()].min() >= scores[q == q.min()].max()  # higher quintile, higher scores
        assert np.all(np.diff([scores[q == k].mean() for k in np.unique(q)]) > 0)


def test_a_run_folder_from_another_plan_is_started_again(make_recipe, tmp_path: Path) -> None:
    from recipes.sweep.runner import run_state
    from tools.train.plan import build_plan

    recipe = make_recipe(run_dir=str(tmp_path / "run"))
    assert run_state(tmp_path / "run", recipe, print) == "new"
    final = tmp_path / "run" / "final"
    final.mkdir(parents=True)
    (final / "currimix.json").write_text(
        json.dumps({"format": 1, "kind": "final", "step": 12, "plan_fingerprint": build_plan(recipe).fingerprint})
    )
    assert run_state(tmp_path / "run", recipe, print) == "trained"
    (final / "currimix.json").write_text(
        json.dumps({"format": 1, "kind": "final", "step": 12, "plan_fingerprint": "0" * 16})
    )
    assert run_state(tmp_path / "run", recipe, print) == "new" and not (tmp_path / "run").exists()


def test_signal_noise_follows_the_papers_definitions() -> None:
    from recipes.sweep.stats import signal_noise

    variants = [np.array([1.0, 1.2]), np.array([2.0, 2.2]), np.array([3.0, 3.2])]  # means 1.1, 2.1, 3.1
    sn = signal_noise(variants, [np.array([1.0, 1.1, 1.2]), np.array([3.0, 3.0, 3.3])])
    assert sn.signal == pytest.approx((3.1 - 1.1) / 2.1)
    assert sn.seed_noise == pytest.approx(np.std([1.0, 1.2], ddof=1) / 2.1)
    assert sn.seed_snr == pytest.approx(2.0 / np.std([1.0, 1.2], ddof=1))
    ckpt = (np.std([1.0, 1.1, 1.2], ddof=1) + np.std([3.0, 3.0, 3.3], ddof=1)) / 2
    assert sn.checkpoint_snr == pytest.approx(2.0 / ckpt)
    one_seed = signal_noise([np.array([1.0]), np.array([2.0])])
    assert one_seed.signal > 0 and np.isnan(one_seed.seed_snr) and np.isnan(one_seed.checkpoint_snr)
