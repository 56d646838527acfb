"""The schedule planner's laws: fits recover known parameters from curves the law generates (with noise),
predictions of held-out schedules are right, and curves that cannot identify a law are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from curriculum.errors import UserError
from tools.planner import LAWS
from tools.planner.config import FitConfig
from tools.planner.curves import Curve, read_run_curve
from tools.planner.fit import Fit, fit_law
from tools.planner.laws import Terms
from tools.train.schedules import build_schedule

STEPS, WARMUP, PEAK = 300, 15, 3e-3
FIT_TRIO = {
    "constant": {"name": "constant"},
    "cosine": {"name": "cosine", "final_lr_ratio": 0.1},
    "wsd": {"name": "wsd", "decay_fraction": 0.2, "final_lr_ratio": 0.0},
}
HELD_OUT = [
    {"name": "wsd", "decay_fraction": 0.5, "decay_shape": "linear", "final_lr_ratio": 0.33},
    {"name": "linear", "final_lr_ratio": 0.0},
    {"name": "wsd", "decay_fraction": 0.1, "decay_shape": "cosine", "final_lr_ratio": 0.1},
]
# Parameters in units of the peak LR (how the fit works); the multi-power ones are the paper's 25M fit's
# shape (alpha ~ 0.5, beta ~ 0.6, gamma ~ 0.6), scaled to a short run.
TRUE = {
    "multi_power": {"L0": 3.0, "A": 1.2, "alpha": 0.5, "B": 0.4, "C": 0.05, "beta": 0.6, "gamma": 0.6},
    "annealing_area": {"L0": 3.0, "A": 1.2, "alpha": 0.5, "C": 0.4 / 30, "tau": 30.0},
}


def lr_of(spec: dict, steps: int = STEPS) -> np.ndarray:
    return build_schedule({**spec, "peak_lr": PEAK, "warmup_steps": WARMUP}, steps).lr(np.arange(steps))


def truth(name: str) -> Fit:
    law = LAWS.build(LAWS.parse({"name": name}))
    law.longest = STEPS  # the annealing law bounds its timescale by the longest run
    return Fit(law, name, TRUE[name], PEAK, 0.0)


def generated(name: str, noise: float, seed: int = 0) -> list[Curve]:
    """The fit trio, logged every 5 steps as 5-step means (as the trainer logs), with relative noise."""
    rng = np.random.default_rng(seed)
    curves = []
    for label, spec in FIT_TRIO.items():
        steps = np.arange(4, STEPS, 5)
        curve = Curve(label, lr_of(spec), steps, np.ones(len(steps)), np.full(len(steps), 5))
        clean = truth(name).predict(curve)
        curve.loss = clean * (1 + noise * rng.standard_normal(len(steps)))
        curves.append(curve)
    return curves


def relative(fit: Fit, name: str) -> dict[str, float]:
    return {k: abs(fit.params[k] / v - 1) for k, v in TRUE[name].items()}


@pytest.mark.slow
def test_annealing_area_recovers_its_parameters_through_noise() -> None:
    torch.manual_seed(0)
    fit = fit_law({"name": "annealing_area"}, generated("annealing_area", noise=0.001))
    err = relative(fit, "annealing_area")
    # Stated tolerance at 0.1% noise on 60 points per curve: L0 within 1%, every other parameter within 10%.
    assert err["L0"] < 0.01, err
    assert max(err.values()) < 0.10, err
    for spec in HELD_OUT:
        lr = lr_of(spec)
        assert fit.final_loss(lr) == pytest.approx(truth("annealing_area").final_loss(lr), rel=1e-3)


@pytest.mark.slow
def test_multi_power_recovers_its_parameters_without_noise() -> None:
    noiseless = fit_law({"name": "multi_power"}, generated("multi_power", noise=0.0))
    err = relative(noiseless, "multi_power")
    assert max(err.values()) < 1e-3, err  # all seven within 0.1%


@pytest.mark.slow
def test_multi_power_predicts_held_out_schedules_through_noise() -> None:
    noisy = fit_law({"name": "multi_power"}, generated("multi_power", noise=0.001))
    # At 0.1% noise the seven parameters are not identified one by one: the warmup's term B * G(...)
    # decays as a second power law in the LR area, so (A, alpha) trade off against (B, C, beta) inside
    # the noise (L0 stays within 5%). What is held to a tolerance is what the fit is for: the final
    # loss of schedules it never saw, within 0.2%, and of a 2x longer run, within 1%.
    assert relative(noisy, "multi_power")["L0"] < 0.05
    for spec in HELD_OUT:
        lr = lr_of(spec)
        assert noisy.final_loss(lr) == pytest.approx(truth("multi_power").final_loss(lr), rel=2e-3)
    longer = lr_of({"name": "cosine", "final_lr_ratio": 0.1}, steps=2 * STEPS)  # 2x longer than any fitted run
    # the paper's worst error on 3x longer runs is 0.4-1%; at 0.1% noise this extrapolation stays within 1%
    assert noisy.final_loss(longer) == pytest.approx(truth("multi_power").final_loss(longer), rel=1e-2)


def test_window_means_are_what_the_trainer_logs() -> None:
    """An observation averaging w steps is compared with the law's mean over those steps."""
    fit = truth("multi_power")
    lr = lr_of(FIT_TRIO["wsd"])
    per_step = fit.predict(Curve("x", lr, np.arange(STEPS), np.ones(STEPS)))
    window = Curve("x", lr, np.array([99, 299]), np.ones(2), np.array([4, 4]))
    expected = [per_step[96:100].mean(), per_step[296:300].mean()]
    assert fit.predict(window) == pytest.approx(expected, rel=1e-4)  # the centre pair stands for the window


def test_decay_to_zero_is_finite() -> None:
    terms = Terms.of(Curve("wsd", lr_of(FIT_TRIO["wsd"]), np.arange(20, STEPS), np.ones(STEPS - 20)), PEAK)
    values = {k: torch.tensor(v, dtype=torch.float64) for k, v in TRUE["multi_power"].items()}
    assert torch.isfinite(LAWS.build(LAWS.parse({"name": "multi_power"})).per_step(values, terms)).all()


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda cs: cs[:1], "1 loss curve\\(s\\) given, a fit needs at least 2"),
        (lambda cs: [cs[0], Curve("again", cs[0].lr, cs[0].steps, cs[0].loss, cs[0].window)], "constant LR"),
        (lambda cs: [cs[0], Curve("short", cs[1].lr, cs[1].steps[-5:], cs[1].loss[-5:])], "'short' has 5 observations"),
        (
            lambda cs: [cs[0], Curve("nan", cs[1].lr, cs[1].steps, np.where(cs[1].steps == 199, np.nan, cs[1].loss))],
            "step 199",
        ),
        (lambda cs: [cs[0], Curve("zero", cs[1].lr, cs[1].steps, 0 * cs[1].loss)], "not finite or not positive"),
        (lambda cs: [cs[0], cs[0]], "distinct names"),
    ],
)
def test_degenerate_curves_are_refused(change, match) -> None:  # noqa: ANN001
    curves = generated("annealing_area", noise=0.0)
    with pytest.raises(UserError, match=match):
        fit_law({"name": "annealing_area"}, change(curves), FitConfig(adam_iterations=1, lbfgs_iterations=0))


def test_unknown_law_is_refused() -> None:
    with pytest.raises(
        UserError, match="unknown loss-curve law 'chinchilla'; choose one of: annealing_area, multi_power"
    ):
        fit_law({"name": "chinchilla"}, generated("annealing_area", noise=0.0))


def test_run_folder_curve_and_its_refusals(finished_run, tmp_path) -> None:  # noqa: ANN001
    curve = read_run_curve(finished_run)
    assert curve.total_steps == 4 and list(curve.steps) == [0, 1, 2, 3]
    assert curve.lr.max() == pytest.approx(3e-3) and curve.decays()
    with pytest.raises(UserError, match="has no 'val/nope' records; metrics it has: loss"):
        read_run_curve(finished_run, "val/nope")
    with pytest.raises(UserError, match="recipe.yaml not found: give folders of runs trained by"):
        read_run_curve(tmp_path)
    # a run whose logged LR is not its recipe's schedule (resumed under another plan) is refused
    fake = tmp_path / "run"
    fake.mkdir()
    (fake / "recipe.yaml").write_text((finished_run / "recipe.yaml").read_text())
    lines = [json.loads(x) for x in (finished_run / "metrics.jsonl").read_text().splitlines()]
    for record in lines:
        if "lr" in record:
            record["lr"] *= 2
    (fake / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    with pytest.raises(UserError, match="trained \\(or resumed\\) under another schedule"):
        read_run_curve(fake)
