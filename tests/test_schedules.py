"""LR schedules: a contract over every registered schedule (warmup, bounds, monotone decay, exact final
ratio), the power and inverse-sqrt formulas, and decays placed over a named data phase."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curriculum.errors import UserError
from tools.train.schedules import SCHEDULES, build_schedule, decay_curve

PEAK = 1e-3
TOKENS_PER_STEP = 8 * 1024
PHASES = {"upsample": (850, 1000), "tau_low": (500, 1000)}

# One example per schedule: (config, last decay step or None when it never decays to final_lr_ratio).
EXAMPLES: dict[str, tuple[dict, int | None]] = {
    "constant": ({"name": "constant", "peak_lr": PEAK, "warmup_steps": 50}, None),
    "cosine": ({"name": "cosine", "peak_lr": PEAK, "warmup_steps": 50, "final_lr_ratio": 1 / 3}, 999),
    "linear": ({"name": "linear", "peak_lr": PEAK, "warmup_steps": 50, "final_lr_ratio": 0.1}, 999),
    "wsd": (
        {"name": "wsd", "peak_lr": PEAK, "warmup_steps": 50, "decay_phase": "upsample", "final_lr_ratio": 0.0},
        999,
    ),
    "power": (
        {
            "name": "power",
            "peak_lr": PEAK,
            "warmup_steps": 50,
            "a": 0.05,
            "b": -0.51,
            "decay_fraction": 0.1,
            "decay_shape": "linear",
            "final_lr_ratio": 0.01,
        },
        999,
    ),
    "inverse_sqrt": (
        {
            "name": "inverse_sqrt",
            "peak_lr": PEAK,
            "warmup_steps": 50,
            "decay_phase": "tau_low",
            "decay_shape": "cosine",
            "final_lr_ratio": 0.05,
        },
        999,
    ),
}


def build(config: dict, total: int = 1000, phases: dict | None = None):
    return build_schedule(config, total, PHASES if phases is None else phases, tokens_per_step=TOKENS_PER_STEP)


def test_every_schedule_has_a_contract_example() -> None:
    assert set(SCHEDULES.names()) == set(EXAMPLES), "add an example for each new schedule to EXAMPLES"


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_schedule_contract(name: str) -> None:
    config, last_decay = EXAMPLES[name]
    schedule = build(config)
    steps = np.arange(1000)
    lr = schedule.lr(steps)
    assert lr.shape == (1000,) and np.all(np.isfinite(lr)) and np.all(lr >= 0) and np.all(lr <= PEAK * (1 + 1e-12))
    assert np.array_equal(lr, build(config).lr(steps))
    assert np.array_equal(lr[[3, 700, 0]], schedule.lr(np.array([3, 700, 0])))
    assert float(schedule.lr(700)) == lr[700]
    # Linear warmup to the value the schedule starts from (the peak, or the power law's value).
    warm = config["warmup_steps"]
    target = lr[warm - 1]
    np.testing.assert_allclose(lr[:warm], target * np.arange(1, warm + 1) / warm, rtol=1e-12)
    if name != "power":
        assert target == PEAK
    # Never increases after warmup; hits the final ratio exactly on the last decay step and stays.
    assert np.all(np.diff(lr[warm - 1 :]) <= 1e-18)
    if last_decay is not None:
        final = PEAK * config["final_lr_ratio"]
        assert lr[last_decay] == final
        assert np.all(lr[last_decay:] == final)
        assert np.all(lr[warm:last_decay] > final)


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("final", [0.0, 0.1, 1 / 3, 0.7])
def test_decay_curve_ends_exactly(shape: str, final: float) -> None:
    q = np.linspace(0, 1, 101)
    curve = decay_curve(q, shape, final)
    assert curve[0] == 1.0 and curve[-1] == final
    assert np.all(np.diff(curve) <= 0)


def test_moderate_decay_ends_at_a_third_of_peak() -> None:
    for name in ("cosine", "linear"):
        lr = build({"name": name, "peak_lr": 3e-3, "final_lr_ratio": 1 / 3}, total=77).lr(np.arange(77))
        assert lr[-1] == 3e-3 * (1 / 3) and lr.max() < 3e-3


# ------------------------------------------------------------------------------------ inverse sqrt


def test_inverse_sqrt_formula() -> None:
    steps = np.arange(2000)
    lr = build({"name": "inverse_sqrt", "peak_lr": PEAK, "warmup_steps": 100}, total=2000).lr(steps)
    after = steps >= 100
    np.testing.assert_allclose(lr[after], PEAK * np.sqrt(100 / steps[after]), rtol=1e-12)
    assert lr[400] == pytest.approx(PEAK / 2)
    lr = build({"name": "inverse_sqrt", "peak_lr": PEAK, "timescale_steps": 400}, total=2000).lr(steps)
    assert np.all(lr[:401] == PEAK) and lr[1600] == pytest.approx(PEAK / 2)
    lr = build({"name": "inverse_sqrt", "peak_lr": PEAK}, total=10).lr(np.arange(10))  # tau = 1 without warmup
    np.testing.assert_allclose(lr[1:], PEAK / np.sqrt(np.arange(1, 10)), rtol=1e-12)


def test_inverse_sqrt_cooldown_over_last_fraction() -> None:
    schedule = build(
        {
            "name": "inverse_sqrt",
            "peak_lr": PEAK,
            "warmup_steps": 10,
            "decay_fraction": 0.2,
            "decay_shape": "linear",
            "final_lr_ratio": 0.0,
        },
        total=100,
    )
    lr = schedule.lr(np.arange(100))
    np.testing.assert_allclose(lr[10:80], PEAK * np.sqrt(10 / np.arange(10, 80)), rtol=1e-12)
    start_value = np.sqrt(10 / 80)
    np.testing.assert_allclose(lr[80:], PEAK * start_value * (1 - np.arange(1, 21) / 20), rtol=1e-12, atol=1e-18)
    assert lr[99] == 0.0


# ------------------------------------------------------------------------------------------- power


def test_power_formula_in_tokens_and_steps() -> None:
    steps = np.arange(1000)
    lr = build({"name": "power", "peak_lr": PEAK, "a": 0.2, "b": -0.51}).lr(steps)
    law = 0.2 * ((steps + 1.0) * TOKENS_PER_STEP) ** -0.51
    np.testing.assert_allclose(lr, np.minimum(PEAK, law), rtol=1e-12)
    assert lr[0] == PEAK and lr[-1] < PEAK  # capped early, following the law later
    lr = build({"name": "power", "peak_lr": 0.5, "a": 2.0, "b": -0.5, "unit": "steps", "warmup_steps": 4}).lr(steps)
    np.testing.assert_allclose(lr[4:], np.minimum(0.5, 2.0 / np.sqrt(steps[4:] + 1.0)), rtol=1e-12)
    # Warmup rises linearly to the law's value at its last step (n = 4): 2 / sqrt(4) = 1 -> capped at 0.5.
    np.testing.assert_allclose(lr[:4], 0.5 * np.arange(1, 5) / 4, rtol=1e-12)
    lr = build({"name": "power", "peak_lr": 1.0, "a": 2.0, "b": -0.5, "unit": "steps", "warmup_steps": 16}).lr(steps)
    np.testing.assert_allclose(lr[:16], (2.0 / 4.0) * np.arange(1, 17) / 16, rtol=1e-12)  # no jump after warmup
    assert lr[16] < lr[15]


def test_power_needs_tokens_per_step_for_tokens() -> None:
    with pytest.raises(UserError, match="tokens per step"):
        build_schedule({"name": "power", "a": 1.0}, 100)
    assert build_schedule({"name": "power", "a": 1.0, "unit": "steps"}, 100).lr(5) > 0


# ------------------------------------------------------------------------- decays over a data phase


@settings(max_examples=40, deadline=None)
@given(
    total=st.integers(20, 3000),
    tail=st.floats(0.05, 0.5),
    name=st.sampled_from(["wsd", "power", "inverse_sqrt"]),
    final=st.sampled_from([0.0, 0.01, 0.05]),
)
def test_decay_phase_lands_exactly_on_the_phase(total: int, tail: float, name: str, final: float) -> None:
    from mixers.base import Phase

    phase = Phase("upsample", 1 - tail, 1.0).steps(total)
    config = {"name": name, "peak_lr": PEAK, "decay_phase": "upsample", "final_lr_ratio": final}
    if name == "power":
        config.update(a=PEAK * 2, b=-0.3, unit="steps")
    if name == "inverse_sqrt":
        config.update(timescale_steps=20)  # sqrt(20 / 3000) > 0.05, so every final ratio is below the curve
    schedule = build(config, total=total, phases={"upsample": phase})
    lr = schedule.lr(np.arange(total))
    start, stop = phase
    assert lr[stop - 1] == PEAK * final
    if start > 0:
        if name == "wsd":
            assert np.all(lr[:start] == PEAK)
        else:
            plain = {k: v for k, v in config.items() if k not in ("decay_phase", "final_lr_ratio")}
            np.testing.assert_array_equal(lr[:start], build(plain, total=total).lr(np.arange(start)))


def test_decay_over_a_middle_phase_holds_the_final_value_after_it() -> None:
    lr = build(
        {"name": "wsd", "peak_lr": PEAK, "decay_phase": "mid", "final_lr_ratio": 0.25}, phases={"mid": (300, 600)}
    ).lr(np.arange(1000))
    assert np.all(lr[:300] == PEAK) and lr[599] == PEAK * 0.25 and np.all(lr[599:] == PEAK * 0.25)


def test_decay_config_errors() -> None:
    with pytest.raises(UserError, match="not a phase of this plan"):
        build({"name": "inverse_sqrt", "decay_phase": "upsampel"})
    with pytest.raises(UserError, match="inside the warmup"):
        build({"name": "power", "a": 1.0, "warmup_steps": 900, "decay_phase": "upsample"})
    with pytest.raises(UserError, match="above the LR where the decay starts"):
        build({"name": "inverse_sqrt", "warmup_steps": 10, "decay_fraction": 0.1, "final_lr_ratio": 0.5})
    for bad, match in [
        ({"name": "inverse_sqrt", "final_lr_ratio": 0.3}, "only applies to a final decay"),
        ({"name": "power", "a": 1.0, "decay_fraction": 0.1, "decay_phase": "upsample"}, "at most one"),
        ({"name": "power", "a": 1.0, "b": 0.5}, "less than 0"),
        ({"name": "power"}, "a\n"),
        ({"name": "wsd"}, "exactly one"),
    ]:
        with pytest.raises(ValidationError, match=match):
            SCHEDULES.parse(bad)
