"""Mixers: a shared contract over every registered mixer, then each mixer's promises checked exactly.

The plan evaluates a mixer at progress = step / total_steps for every step and cuts its windows at
`boundary_step(f, T)` of each breakpoint, so "exact" here means: on the steps the plan assigns to
a phase, the weights are exactly the promised mix (the realised counts are the lead's tests).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curriculum.errors import UserError
from mixers import MIXERS, DomainInfo, build_mixer
from mixers.base import boundary_step
from mixers.mix import Mix
from mixers.temperature import temperature_weights

NAMES = ("web", "math", "code", "wiki")
TOKENS = np.array([80_000, 6_000, 3_000, 1_000], dtype=np.int64)
DOMAINS = DomainInfo(NAMES, TOKENS // 100, TOKENS)
TAIL = {"web": 0.4, "math": 0.3, "code": 0.2, "wiki": 0.1}
COOLDOWN = {"name": "temperature", "tau": {"start": 5, "end": 1, "shape": "step", "at": 0.5}}

# One example per registered mixer, with the phases whose weights are promised constant.
EXAMPLES: dict[str, tuple[dict, tuple[str, ...]]] = {
    "static": ({"name": "static", "weights": TAIL}, ()),
    "temperature": (COOLDOWN, ("tau_high", "tau_low")),
    "upsample": (
        {
            "name": "upsample",
            "base": "natural",
            "tail": TAIL,
            "tail_fraction": 0.15,
            "transition": "linear",
            "transition_fraction": 0.1,
        },
        ("base", "upsample"),
    ),
    "staged": (
        {
            "name": "staged",
            "stages": [{"until": 0.3, "weights": "uniform"}, {"name": "anneal", "until": 1.0, "weights": TAIL}],
        },
        ("stage_1", "anneal"),
    ),
    "interpolate": (
        {"name": "interpolate", "initial": "natural", "final": TAIL, "over": [0.2, 0.7], "shape": "cosine"},
        ("initial", "final"),
    ),
}
STEP_COUNTS = (1, 2, 7, 100, 999)


def progress(total_steps: int) -> np.ndarray:
    return np.arange(total_steps) / total_steps


def rows_equal(weights: np.ndarray, vector: np.ndarray) -> bool:
    return bool(np.array_equal(weights, np.broadcast_to(vector, weights.shape)))


def test_every_mixer_has_a_contract_example() -> None:
    assert set(MIXERS.names()) == set(EXAMPLES), "add an example for each new mixer to EXAMPLES"


@pytest.mark.parametrize("name", MIXERS.names())
def test_mixer_contract(name: str) -> None:
    config, constant_phases = EXAMPLES[name]
    mixer = build_mixer(config, DOMAINS, where="mixture.mixer")
    again = build_mixer(config, DOMAINS, where="mixture.mixer")
    phases = mixer.phases()
    assert [p.start for p in phases] == sorted(p.start for p in phases)
    assert len({p.name for p in phases}) == len(phases)
    for phase in phases:
        assert 0.0 <= phase.start < phase.end <= 1.0
    points = mixer.breakpoints()
    assert points == sorted(points) and all(0.0 <= b <= 1.0 for b in points)
    assert {p.start for p in phases} | {p.end for p in phases} <= set(points)
    for total in STEP_COUNTS:
        p = progress(total)
        weights = mixer.weights(p)
        assert weights.shape == (total, len(NAMES))
        assert np.all(np.isfinite(weights)) and np.all(weights >= 0)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        assert np.array_equal(weights, again.weights(p)), "weights must be deterministic"
        # Vectorised evaluation must not depend on the batch it is evaluated in.
        pieces = np.concatenate([mixer.weights(p[i : i + 3]) for i in range(0, total, 3)])
        assert np.array_equal(weights, pieces)
        assert np.array_equal(weights[::-1], mixer.weights(p[::-1]))
        by_name = {ph.name: ph.steps(total) for ph in phases}
        for phase_name in constant_phases:
            first, stop = by_name[phase_name]
            if stop > first:
                assert rows_equal(weights[first:stop], weights[first]), f"{phase_name} is not constant"


# ------------------------------------------------------------------------------------ temperature


def test_temperature_formula_against_hand_values() -> None:
    tokens = np.array([100, 10, 1])
    expected = np.array([10.0, np.sqrt(10.0), 1.0]) / (11.0 + np.sqrt(10.0))
    np.testing.assert_allclose(temperature_weights(tokens, np.array([2.0]))[0], expected, rtol=1e-12)
    np.testing.assert_allclose(temperature_weights(tokens, np.array([1.0]))[0], [100 / 111, 10 / 111, 1 / 111])
    np.testing.assert_allclose(temperature_weights(tokens, np.array([1000.0]))[0], 1 / 3, atol=3e-3)
    # Huge counts and tiny tau stay finite (log space).
    sharp = temperature_weights(np.array([10**15, 10**14]), np.array([0.01]))[0]
    assert np.isfinite(sharp).all() and sharp[0] == pytest.approx(1.0)


def test_temperature_constant_restrict_and_multipliers() -> None:
    mixer = build_mixer({"name": "temperature", "tau": 2}, DOMAINS)
    expected = np.sqrt(TOKENS) / np.sqrt(TOKENS).sum()
    np.testing.assert_allclose(mixer.weights(progress(5)), np.tile(expected, (5, 1)), rtol=1e-12)
    assert mixer.phases() == []
    mixer = build_mixer(
        {"name": "temperature", "tau": 3, "domains": ["math", "code"], "token_multipliers": {"code": 2}}, DOMAINS
    )
    w = mixer.weights(np.array([0.3]))[0]
    assert w[0] == 0 and w[3] == 0
    assert w[1] / w[2] == pytest.approx(1.0)  # 6000 vs 2 * 3000 tokens
    with pytest.raises(UserError, match=r"mixture.domains: unknown domain 'maths'"):
        build_mixer({"name": "temperature", "domains": ["maths"]}, DOMAINS)
    with pytest.raises(UserError, match="no training tokens"):
        build_mixer({"name": "temperature", "domains": ["math"], "token_multipliers": {"math": 0}}, DOMAINS)


@pytest.mark.parametrize("total", [2, 10, 11, 99, 1000, 1001, 4097])
def test_tau_step_cooldown_gives_exactly_the_two_temperature_mixes(total: int) -> None:
    mixer = build_mixer(COOLDOWN, DOMAINS)
    weights = mixer.weights(progress(total))
    switch = boundary_step(0.5, total)
    hot = temperature_weights(TOKENS, np.array([5.0]))[0]
    cold = temperature_weights(TOKENS, np.array([1.0]))[0]
    assert rows_equal(weights[:switch], hot)
    assert rows_equal(weights[switch:], cold)
    np.testing.assert_allclose(cold, TOKENS / TOKENS.sum(), rtol=1e-12)  # tau 1 is the natural mix
    phases = {p.name: p.steps(total) for p in mixer.phases()}
    assert phases == {"tau_high": (0, switch), "tau_low": (switch, total)}
    assert mixer.breakpoints() == [0.0, 0.5, 1.0]


def test_rising_tau_names_phases_in_time_order() -> None:
    mixer = build_mixer({"name": "temperature", "tau": {"start": 1, "end": 4, "at": 0.25}}, DOMAINS)
    assert [(p.name, p.start, p.end) for p in mixer.phases()] == [("tau_low", 0.0, 0.25), ("tau_high", 0.25, 1.0)]


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_smooth_tau_is_monotone_with_exact_ends(shape: str) -> None:
    mixer = build_mixer(
        {"name": "temperature", "tau": {"start": 5, "end": 1, "shape": shape, "over": [0.2, 0.6]}}, DOMAINS
    )
    total = 500
    p = progress(total)
    tau = mixer.tau(p)
    assert np.all(np.diff(tau) <= 0)
    first, last = boundary_step(0.2, total), boundary_step(0.6, total)
    assert np.all(tau[: first + 1] == 5.0) and np.all(tau[last:] == 1.0)
    assert np.all((tau[first + 1 : last] < 5) & (tau[first + 1 : last] > 1))
    weights = mixer.weights(p)
    assert np.all(np.diff(weights[:, -1]) <= 0)  # the smallest domain loses share as tau falls
    assert np.all(np.diff(weights[:, 0]) >= 0)
    assert [ph.name for ph in mixer.phases()] == ["tau_high", "tau_transition", "tau_low"]
    if shape == "linear":
        assert mixer.tau(np.array([0.4]))[0] == pytest.approx(3.0)


def test_tau_schedule_config_errors() -> None:
    for bad, match in [
        ({"start": 5, "end": 5}, "constant"),
        ({"start": 5, "end": 1, "over": [0, 0.5]}, "over"),
        ({"start": 5, "end": 1, "shape": "linear", "at": 0.3}, "`at`"),
        ({"start": 5, "end": 1, "shape": "cosine", "over": [0.6, 0.4]}, "from < to"),
        ({"start": 0, "end": 1}, "greater than 0"),
    ]:
        with pytest.raises(ValidationError, match=match):
            MIXERS.parse({"name": "temperature", "tau": bad})


# --------------------------------------------------------------------------------------- upsample


@settings(max_examples=60, deadline=None)
@given(total=st.integers(1, 5000), tail_fraction=st.sampled_from([0.05, 0.1, 0.15, 0.2, 0.3, 1 / 3, 0.123]))
def test_upsample_tail_is_exactly_the_last_fraction_of_steps(total: int, tail_fraction: float) -> None:
    mixer = build_mixer({"name": "upsample", "base": "natural", "tail": TAIL, "tail_fraction": tail_fraction}, DOMAINS)
    weights = mixer.weights(progress(total))
    tail_start = boundary_step(1 - tail_fraction, total)
    tail = np.array([TAIL[n] for n in NAMES])
    assert rows_equal(weights[tail_start:], tail)
    assert rows_equal(weights[:tail_start], TOKENS / TOKENS.sum())
    assert abs((total - tail_start) - tail_fraction * total) < 1  # the last X% of steps, to a step
    phases = {p.name: p.steps(total) for p in mixer.phases()}
    assert phases == {"base": (0, tail_start), "upsample": (tail_start, total)}


@pytest.mark.parametrize("shape", ["linear", "cosine"])
@pytest.mark.parametrize("total", [40, 1000, 1001])
def test_upsample_smooth_transition_is_monotone_and_before_the_tail(shape: str, total: int) -> None:
    mixer = build_mixer(
        {
            "name": "upsample",
            "base": "uniform",
            "tail": TAIL,
            "tail_fraction": 0.2,
            "transition": shape,
            "transition_fraction": 0.25,
        },
        DOMAINS,
    )
    weights = mixer.weights(progress(total))
    phases = {p.name: p.steps(total) for p in mixer.phases()}
    ramp_start, tail_start = boundary_step(0.55, total), boundary_step(0.8, total)
    assert phases == {"base": (0, ramp_start), "transition": (ramp_start, tail_start), "upsample": (tail_start, total)}
    tail = np.array([TAIL[n] for n in NAMES])
    assert rows_equal(weights[:ramp_start], 0.25)
    assert rows_equal(weights[tail_start:], tail)
    direction = np.sign(tail - 0.25)
    steps = np.diff(weights, axis=0) * direction
    assert np.all(steps >= -1e-15), "each domain moves monotonically from base to tail"


def test_upsample_boost_and_nested_base() -> None:
    mixer = build_mixer(
        {"name": "upsample", "base": "natural", "boost": {"math": 3, "code": 0}, "tail_fraction": 0.1}, DOMAINS
    )
    boosted = TOKENS * np.array([1, 3, 0, 1])
    np.testing.assert_allclose(mixer.weights(np.array([0.95]))[0], boosted / boosted.sum(), rtol=1e-12)
    nested = build_mixer({"name": "upsample", "base": COOLDOWN, "boost": {"wiki": 4}, "tail_fraction": 0.2}, DOMAINS)
    assert [p.name for p in nested.phases()] == ["tau_high", "base", "tau_low", "upsample"]
    assert nested.breakpoints() == [0.0, 0.5, 0.8, 1.0]
    total = 100
    weights = nested.weights(progress(total))
    cold = temperature_weights(TOKENS, np.array([1.0]))[0] * np.array([1, 1, 1, 4])
    assert rows_equal(weights[:50], temperature_weights(TOKENS, np.array([5.0]))[0])
    np.testing.assert_allclose(weights[80:], np.tile(cold / cold.sum(), (20, 1)), rtol=1e-12)
    with pytest.raises(UserError, match="no weight left"):
        build_mixer({"name": "upsample", "base": {"math": 1.0}, "boost": {"math": 0}}, DOMAINS)
    with pytest.raises(UserError, match=r"mixture.mixer.boost: unknown domain 'maths'"):
        build_mixer({"name": "upsample", "boost": {"maths": 2}}, DOMAINS, where="mixture.mixer")


def test_upsample_config_errors() -> None:
    for bad, match in [
        ({}, "exactly one of `tail`"),
        ({"tail": TAIL, "boost": {"math": 2}}, "exactly one"),
        ({"tail": TAIL, "transition": "linear"}, "needs `transition_fraction`"),
        ({"tail": TAIL, "transition_fraction": 0.1}, "no ramp"),
        ({"tail": TAIL, "tail_fraction": 0.6, "transition": "cosine", "transition_fraction": 0.5}, "exceeds 1"),
        ({"tail": "nat"}, "a mix is"),
        ({"tail": {"web": "lots"}}, "must be numbers"),
    ]:
        with pytest.raises(ValidationError, match=match):
            MIXERS.parse({"name": "upsample", **bad})


def test_nested_mixer_errors_name_the_key_path(corpus_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        Mix({"name": "temperature", "tau": -1}, False, DOMAINS, "mixture.mixer.base")
    assert "mixture.mixer.base.tau" in str(info.value)
    with pytest.raises(UserError, match=r"mixture.mixer.base: unknown mixer 'temprature'"):
        Mix({"name": "temprature"}, False, DOMAINS, "mixture.mixer.base")
    with pytest.raises(UserError, match=r"mixture.mixer.tail: unknown domain 'maths'"):
        build_mixer({"name": "upsample", "tail": {"maths": 1.0}}, DOMAINS, where="mixture.mixer")
    # Through a whole recipe: reported at load time with the key path.
    from recipes.loading import recipe_from_dict
    from tests.conftest import recipe_dict

    raw = recipe_dict(
        corpus_dir,
        tmp_path,
        mixture={"mixer": {"name": "upsample", "boost": {"code": 2}, "base": {"name": "temperature", "tau": -1}}},
    )
    with pytest.raises(UserError, match=r"mixture\.mixer\.base"):
        recipe_from_dict(raw)
    raw = recipe_dict(
        corpus_dir,
        tmp_path,
        mixture={
            "mixer": {"name": "upsample", "boost": {"code": 2}, "base": {"name": "static", "weights": {"cod": 1}}}
        },
    )
    with pytest.raises(UserError, match=r"mixture\.mixer\.base: unknown domain 'cod'"):
        recipe_from_dict(raw)


def test_nested_phase_name_clash_is_refused() -> None:
    with pytest.raises(UserError, match=r"phase names \['base', 'upsample'\]"):
        build_mixer(
            {"name": "upsample", "tail": TAIL, "base": {"name": "upsample", "tail": TAIL, "tail_fraction": 0.5}},
            DOMAINS,
        )


# ----------------------------------------------------------------------------------------- staged


@pytest.mark.parametrize("total", [3, 10, 333, 1000])
def test_staged_switches_exactly_at_the_stage_edges(total: int) -> None:
    mixer = build_mixer(
        {
            "name": "staged",
            "stages": [
                {"until": 1 / 3, "weights": "uniform"},
                {"name": "mid", "until": 0.7, "weights": "natural"},
                {"until": 1.0, "weights": TAIL},
            ],
        },
        DOMAINS,
    )
    weights = mixer.weights(progress(total))
    a, b = boundary_step(1 / 3, total), boundary_step(0.7, total)
    assert rows_equal(weights[:a], 0.25)
    assert rows_equal(weights[a:b], TOKENS / TOKENS.sum())
    assert rows_equal(weights[b:], np.array([TAIL[n] for n in NAMES]))
    assert {p.name: p.steps(total) for p in mixer.phases()} == {"stage_1": (0, a), "mid": (a, b), "stage_3": (b, total)}


def test_staged_config_errors() -> None:
    for stages, match in [
        ([{"until": 0.5, "weights": "uniform"}], "end at `until: 1.0`"),
        (
            [
                {"until": 0.5, "weights": "uniform"},
                {"until": 0.5, "weights": "natural"},
                {"until": 1.0, "weights": "natural"},
            ],
            "strictly increasing",
        ),
        (
            [{"name": "a", "until": 0.5, "weights": "uniform"}, {"name": "a", "until": 1.0, "weights": "natural"}],
            "unique",
        ),
        ([], "at least 1"),
    ]:
        with pytest.raises(ValidationError, match=match):
            MIXERS.parse({"name": "staged", "stages": stages})
    with pytest.raises(UserError, match=r"mixture.stages.1.weights: weights must sum to 1"):
        build_mixer(
            {
                "name": "staged",
                "stages": [{"until": 0.5, "weights": "uniform"}, {"until": 1.0, "weights": {"web": 0.5}}],
            },
            DOMAINS,
        )
    normalised = build_mixer(
        {"name": "staged", "normalize": True, "stages": [{"until": 1.0, "weights": {"web": 2, "math": 2}}]}, DOMAINS
    )
    assert rows_equal(normalised.weights(progress(4)), np.array([0.5, 0.5, 0, 0]))


# ------------------------------------------------------------------------------------ interpolate


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_interpolate_endpoints_and_monotone_path(shape: str) -> None:
    total = 1000
    mixer = build_mixer(
        {"name": "interpolate", "initial": "uniform", "final": TAIL, "over": [0.25, 0.75], "shape": shape}, DOMAINS
    )
    weights = mixer.weights(progress(total))
    a, b = boundary_step(0.25, total), boundary_step(0.75, total)
    tail = np.array([TAIL[n] for n in NAMES])
    assert rows_equal(weights[:a], 0.25)
    assert rows_equal(weights[b:], tail)
    mid = mixer.weights(np.array([0.5]))[0]
    np.testing.assert_allclose(mid, (0.25 + tail) / 2, rtol=1e-12)  # both shapes pass the midpoint halfway
    assert np.all(np.diff(weights, axis=0) * np.sign(tail - 0.25) >= -1e-15)
    assert [(p.name, p.start, p.end) for p in mixer.phases()] == [
        ("initial", 0.0, 0.25),
        ("transition", 0.25, 0.75),
        ("final", 0.75, 1.0),
    ]
    if shape == "linear":
        np.testing.assert_allclose(mixer.weights(np.array([0.375]))[0], 0.75 * 0.25 + 0.25 * tail, rtol=1e-12)


def test_interpolate_over_whole_run_and_errors() -> None:
    mixer = build_mixer({"name": "interpolate", "final": "uniform"}, DOMAINS)
    assert [p.name for p in mixer.phases()] == ["transition"]
    assert rows_equal(mixer.weights(np.array([0.0])), TOKENS / TOKENS.sum())
    with pytest.raises(ValidationError, match="from < to"):
        MIXERS.parse({"name": "interpolate", "final": "uniform", "over": [0.5, 0.5]})
