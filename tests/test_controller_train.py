"""The controller inside the trainer: resume is bitwise mid-window and across an update, two gloo
ranks draw exactly the batches of one process, and `currimix plan` shows the controller."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import recipe_dict
from tests.launch import needs_accelerate, train_with_processes
from tools.train.trackers import read_metrics

pytestmark = pytest.mark.slow

# Updates every 2 steps; ADO fits once a domain has 3 points (the update after step 6), so the
# weights move at steps 6, 8 and 10 of a 12-step run.
CONTROLLED = {
    "mixture": {
        "mixer": {"name": "static", "weights": {"code": 0.3, "prose": 0.5, "web": 0.2}},
        "controller": {"name": "ado", "every_steps": 2, "gamma2": 0.5, "max_change": 0.2},
    },
    "curriculum": {"order": {"name": "ascending"}},
    "training": {"eval_every_steps": None, "log_batch_ids": True},
    "checkpoint": {"every_steps": None},
    "averaging": {"snapshots": None},
}


def _record(run_dir: Path) -> tuple[dict, dict, dict]:
    metrics = read_metrics(run_dir)
    losses = {r["step"]: r["loss"] for r in metrics if "loss" in r}
    batches = {r["step"]: r["batch_ids"] for r in metrics if "batch_ids" in r}
    control = {
        r["control/update"]: {
            k: v for k, v in r.items() if k.startswith(("control/", "ado/")) and k != "control/seconds"
        }
        for r in metrics
        if "control/update" in r
    }
    return losses, batches, control


def test_resume_is_bitwise_mid_window_and_across_an_update(make_recipe, tmp_path: Path) -> None:
    from tools.train.pretrain import train

    full = make_recipe(run_dir=str(tmp_path / "full"), **CONTROLLED)
    train(full, show_progress=False)
    want = _record(tmp_path / "full")
    assert sorted(want[0]) == list(range(12)) and sorted(want[2]) == [2, 4, 6, 8, 10]
    moved = [want[2][s]["control/code/weight"] for s in (6, 8, 10)]
    assert all(abs(w - 0.3) > 1e-3 for w in moved), "the controller never moved: the test would prove nothing"
    for r in read_metrics(tmp_path / "full"):  # the realised-vs-planned report holds for what was decided
        for name in ("code", "prose", "web"):
            assert abs(r[f"mix/{name}/realised"] - r[f"mix/{name}/planned"]) < 1
    from tools.plotting import controller_weights, plot_controller, plot_plan
    from tools.train.plan import build_plan

    names = ("code", "prose", "web")
    starts, weights = controller_weights(tmp_path / "full", names)
    assert starts.tolist() == [2, 4, 6, 8, 10] and weights[3, 0] == want[2][8]["control/code/weight"]
    assert plot_plan(build_plan(full), tmp_path / "plan.png").stat().st_size > 10_000  # prior + the chosen weights
    assert plot_controller(tmp_path / "full", names, tmp_path / "weights.png").stat().st_size > 10_000
    for stop in (7, 8):  # 7: mid-window, the resumed run makes the update at 8; 8: right at an update
        split = make_recipe(run_dir=str(tmp_path / f"split{stop}"), **CONTROLLED)
        train(split, stop_after_steps=stop, show_progress=False)
        state = json.loads(
            (tmp_path / f"split{stop}" / "checkpoints" / f"step_{stop:08d}" / "controller.json").read_text()
        )
        assert state["allocation"]["window"] == stop // 2
        train(split, resume=True, show_progress=False)
        got = _record(tmp_path / f"split{stop}")
        assert got[1] == want[1], f"stop at {stop}: the resumed run drew other batches"
        assert got[0] == want[0], f"stop at {stop}: losses differ after resume"
        assert got[2] == want[2], f"stop at {stop}: the controller decided differently after resume"


def test_plan_shows_prior_bounds_and_cadence(make_recipe, capsys) -> None:
    from rich.console import Console

    from tools.train.plan import build_plan
    from tools.train.plan_report import plan_summary, print_summary

    plan = build_plan(make_recipe(**CONTROLLED))
    summary = plan_summary(plan)
    control = summary["controller"]
    assert control["name"] == "ado" and control["every_steps"] == 2 and control["max_change"] == 0.2
    assert control["prior"] == {"code": 0.3, "prose": 0.5, "web": 0.2}
    assert control["updates"] == 5
    print_summary(summary, Console(width=160, force_terminal=False))
    out = capsys.readouterr().out
    assert "controller ado" in out and "every 2 steps" in out and "floor 0.01" in out


def test_batches_are_a_pure_function_of_the_decided_window(make_recipe) -> None:
    """Two plans given the same decision draw the same batches; another decision draws others."""
    from tools.train.plan import build_plan

    one, two = (build_plan(make_recipe(**CONTROLLED)) for _ in range(2))
    for plan in (one, two):
        plan.allocation.decide(1, np.array([10, 4, 2]))
    for step in range(2, 4):
        np.testing.assert_array_equal(one.batch(step).sequence_ids, two.batch(step).sequence_ids)
    two.allocation.decide(1, np.array([2, 4, 10]))
    assert not np.array_equal(one.batch(2).domains, two.batch(2).domains)
    np.testing.assert_array_equal(one.batch(0).sequence_ids, two.batch(0).sequence_ids)  # window 0 untouched


@pytest.mark.multiprocess
@needs_accelerate
def test_two_ranks_draw_the_batches_of_one_process_with_the_controller_on(
    corpus_dir: Path, tiny_store: Path, tmp_path: Path
) -> None:
    results = {}
    for world in (1, 2):
        raw = recipe_dict(corpus_dir, tmp_path / f"run{world}", tiny_store, **CONTROLLED)
        raw["training"].update(device="cpu")
        train_with_processes(raw, world, tmp_path)
        results[world] = _record(tmp_path / f"run{world}")
    (loss1, batches1, control1), (loss2, batches2, control2) = results[1], results[2]
    assert sorted(batches1) == list(range(12)) and batches1 == batches2
    assert {s: {k: v for k, v in c.items() if k.endswith("/count")} for s, c in control1.items()} == {
        s: {k: v for k, v in c.items() if k.endswith("/count")} for s, c in control2.items()
    }
    assert any(control1[s]["control/code/count"] != control1[2]["control/code/count"] for s in (6, 8, 10))
    for step, loss in loss1.items():
        assert loss2[step] == pytest.approx(loss, rel=1e-4)
