"""`currimix schedule` on three tiny real runs, and the WSM merge weights in recipes and `currimix average`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from curriculum.errors import UserError
from recipes.cli import app
from recipes.loading import recipe_from_dict
from tests.conftest import recipe_dict
from tools.average.weights import parse_weight_text, resolve_weights
from tools.planner.candidates import candidates, merge_equivalent_lr
from tools.planner.config import CandidateGrid
from tools.train.schedules import build_schedule, decay_curve

runner = CliRunner()
STEPS = 40
SCHEDULES = {
    "constant": {"name": "constant", "peak_lr": 3e-3, "warmup_steps": 4},
    "cosine": {"name": "cosine", "peak_lr": 3e-3, "warmup_steps": 4, "final_lr_ratio": 0.1},
    "wsd": {"name": "wsd", "peak_lr": 3e-3, "warmup_steps": 4, "decay_fraction": 0.3, "final_lr_ratio": 0.0},
}


@pytest.fixture(scope="module")
def runs(corpus_dir: Path, tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three 40-step tiny runs of one recipe under constant, cosine and WSD (the fit trio)."""
    from tools.train.pretrain import train

    root = tmp_path_factory.mktemp("schedule-runs")
    out = {}
    for name, schedule in SCHEDULES.items():
        raw = recipe_dict(
            corpus_dir,
            root / name,
            tiny_store,
            schedule=schedule,
            training={"steps": STEPS, "eval_every_steps": None, "log_every_steps": 2},
            checkpoint={"every_steps": STEPS, "keep_last": 1},
            averaging={"snapshots": 4, "every_steps": 4, "weights": {"name": "wsm"}},
        )
        train(recipe_from_dict(raw), show_progress=False)
        out[name] = root / name
    return out


@pytest.mark.slow
def test_schedule_fits_ranks_plots_and_emits_a_recipe_section(runs, tmp_path, corpus_dir, tiny_store) -> None:  # noqa: ANN001
    png, emit = tmp_path / "fit.png", tmp_path / "best.yaml"
    config = tmp_path / "planner.yaml"
    config.write_text(yaml.safe_dump({"fit": {"adam_iterations": 60, "lbfgs_iterations": 60, "starts": 3}}))
    args = ["schedule", *map(str, runs.values()), "--steps", "60", "--png", str(png), "--emit", str(emit)]
    result = runner.invoke(app, [*args, "--config", str(config), "--top", "50"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "multi_power" in out and "annealing_area" in out and "final loss predicted at step 60" in out
    assert "constant + WSM merge" in out and "cosine to 0.33" in out and "wsd 20% 1-sqrt to 0" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sections = yaml.safe_load(emit.read_text())
    # the recipe takes the emitted sections as they are, and trains exactly the LR that was ranked
    raw = recipe_dict(corpus_dir, tmp_path / "next", tiny_store, training={"steps": 60}, **sections)
    recipe = recipe_from_dict(raw)
    lr = build_schedule(recipe.schedule, 60).lr(np.arange(60))
    ranked = {c.label: c for c in candidates(CandidateGrid(), 60, 3e-3, 4)}
    best = [line for line in out.splitlines() if line.startswith("  1  ")][0]
    matching = [c for label, c in ranked.items() if best[5:].startswith(label + "  ")]
    assert len(matching) == 1 and matching[0].sections() == sections
    if matching[0].averaging is None:
        assert np.allclose(lr, matching[0].lr)


@pytest.mark.parametrize(
    "pick, extra, match",
    [
        (["constant"], [], "1 loss curve\\(s\\) given, a fit needs at least 2"),
        (["constant", "constant"], [], "the same run folder is given twice"),
        (["constant", "cosine"], ["--metric", "val/none"], "has no 'val/none' records"),
        (["constant", "cosine"], ["--png", "plot.jpg"], "must end in .png"),
        (["constant", "cosine"], ["--steps", "3"], "target steps 3 must exceed the warmup"),
    ],
)
def test_schedule_refuses_with_a_message(runs, tmp_path, monkeypatch, pick, extra, match) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "fast.yaml"
    config.write_text("fit: {adam_iterations: 2, lbfgs_iterations: 0, starts: 1}\nleave_one_out: false\n")
    result = runner.invoke(app, ["schedule", *[str(runs[p]) for p in pick], "--config", str(config), *extra])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    import re

    assert re.search(match, " ".join(result.output.split())), result.output


def test_schedule_refuses_a_bad_config(runs, tmp_path) -> None:  # noqa: ANN001
    config = tmp_path / "bad.yaml"
    config.write_text("candidates: {wsd_decay_fractions: [0.2, 1.5]}\nfit: {huber: 1}\n")
    result = runner.invoke(app, ["schedule", str(runs["constant"]), str(runs["wsd"]), "--config", str(config)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "candidates: Value error, wsd_decay_fractions: [1.5] must lie in (0, 1]" in text
    assert "fit.huber: unknown key" in text


# ------------------------------------------------------------------ WSM merge weights


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("k", [2, 5, 9])
def test_wsm_merge_is_the_decay_it_emulates(shape: str, k: int) -> None:
    """Merging snapshots of a constant-LR run with WSM weights equals, exactly, one run whose LR follows
    the emulated decay (for any fixed sequence of update directions), and that LR samples the shape."""
    weights = resolve_weights({"name": "wsm", "decay_shape": shape, "final_lr_ratio": 0.1}, k)
    assert min(weights) >= 0 and sum(weights) == pytest.approx(1.0)
    spacing, start = 7, 20
    snaps = [start + i * spacing for i in range(k)]
    lr = np.full(snaps[-1], 0.5)
    grads = np.random.default_rng(0).standard_normal((snaps[-1], 3))
    path = np.cumsum(-lr[:, None] * grads, axis=0)  # theta after each step, from theta_0 = 0
    merged = sum(w * path[s - 1] for w, s in zip(weights, snaps))
    equivalent = merge_equivalent_lr(lr, snaps, weights)
    assert merged == pytest.approx(np.sum(-equivalent[:, None] * grads, axis=0))
    q = (np.arange(1, k) - 0.5) / (k - 1)  # the middle of each gap between snapshots
    assert equivalent[snaps[:-1]] / 0.5 == pytest.approx(decay_curve(q, shape, 0.1))


def test_wsm_weights_in_recipes_and_on_the_command_line(make_recipe) -> None:  # noqa: ANN001
    recipe = make_recipe(
        averaging={"snapshots": 5, "every_steps": 2, "weights": {"name": "wsm", "decay_shape": "cosine"}}
    )
    assert recipe.averaging.weights.name == "wsm"
    assert parse_weight_text("wsm", wsm_shape="1-sqrt", wsm_final=0.33).final_lr_ratio == 0.33
    with pytest.raises(UserError, match="--wsm-shape and --wsm-final only apply to --weights wsm"):
        parse_weight_text("sma", wsm_shape="linear")
    with pytest.raises(UserError, match="decay_shape"):
        parse_weight_text("wsm", wsm_shape="square")
    with pytest.raises(Exception, match="final_lr_ratio"):
        make_recipe(averaging={"snapshots": 2, "every_steps": 2, "weights": {"name": "wsm", "final_lr_ratio": 2}})


def test_currimix_average_with_wsm_weights(runs, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "merged"
    args = ["average", "--run", str(runs["constant"]), "--last", "4", "--weights", "wsm", "--wsm-shape", "cosine"]
    result = runner.invoke(app, [*args, "--no-progress", "-o", str(out)])
    assert result.exit_code == 0, result.output
    expected = resolve_weights({"name": "wsm", "decay_shape": "cosine"}, 4)
    shown = [float(line.split()[0]) for line in result.output.splitlines() if " step " in line]
    assert shown == pytest.approx(expected, abs=1e-5)
    assert (out / "config.json").is_file()


def test_merging_candidates_place_snapshots_inside_the_run() -> None:
    grid = CandidateGrid(averaging_fractions=[0.2], wsd_decay_fractions=[0.9], final_lr_ratios=[0.0])
    made = {c.label: c for c in candidates(grid, 100, 1e-3, 20)}
    assert not any(label.startswith("wsd 90%") for label in made)  # a decay into the warmup is left out
    merge = [c for c in made.values() if c.averaging][0]
    wsm = {"name": "wsm", "decay_shape": "linear", "final_lr_ratio": 0.0}
    assert merge.averaging == {"snapshots": 8, "every_steps": 3, "weights": wsm}  # 7 gaps of 3 ~ 20% of 100 steps
    assert len(merge.lr) == 100 and merge.lr[-1] < merge.lr.max() / 5 and merge.lr[78] == merge.lr.max()
