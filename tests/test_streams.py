"""Domain streams: a curriculum orders the data the run will actually see.

Partial passes choose their sequences first (`random`: the domain's quality distribution, `top`:
exactly the best), then order them; passes past an epoch follow a named rule; `phased` boundaries
sit in training time; resume and process count still do not change the data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curriculum.errors import UserError
from curriculum.orders.stream import DomainStream, choose_subset
from tools.train.plan import build_plan
from tools.train.trackers import read_metrics


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    grid = np.union1d(a, b)
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def ks_critical(n: int, m: int, alpha_coefficient: float = 1.95) -> float:
    """Critical value of the two-sample KS test at alpha = 0.001 (c(alpha) = sqrt(-ln(alpha/2)/2) = 1.95)."""
    return alpha_coefficient * np.sqrt((n + m) / (n * m))


SCORES = np.random.default_rng(0).gamma(2.0, 1.0, size=5000)  # skewed, like real quality scores


@pytest.mark.parametrize("order", ["random", "ascending", "descending", {"name": "buckets", "num_buckets": 7}])
@pytest.mark.parametrize("budget", [300, 1700])
def test_random_subset_keeps_the_domain_quality_distribution(order, budget: int) -> None:
    config = {"name": order} if isinstance(order, str) else order
    seen = DomainStream(config, SCORES, key=5, budget=budget).seen()
    assert len(np.unique(seen)) == budget, "a partial pass sees each chosen sequence once"
    statistic = ks_statistic(SCORES[seen], SCORES)
    assert statistic < ks_critical(budget, len(SCORES)), f"KS {statistic:.3f}: the sample is not uniform"
    # The quantiles the run sees span the whole domain: the best decile is in it, not just the worst.
    assert np.quantile(SCORES[seen], 0.95) > np.quantile(SCORES, 0.9)


def test_the_ks_check_can_fail() -> None:
    """The distribution test above rejects what the old behaviour gave (the worst sequences first)."""
    seen = DomainStream({"name": "ascending"}, SCORES, key=5, budget=1700, subset="prefix").seen()
    assert ks_statistic(SCORES[seen], SCORES) > ks_critical(1700, len(SCORES))
    assert np.array_equal(np.sort(seen), np.sort(np.argsort(SCORES, kind="stable")[:1700]))


@pytest.mark.parametrize("order", ["random", "ascending", "descending"])
def test_top_subset_sees_exactly_the_top_n(order: str) -> None:
    budget = 1234
    seen = DomainStream({"name": order}, SCORES, key=9, budget=budget, subset="top").seen()
    assert set(seen.tolist()) == set(np.argsort(-SCORES, kind="stable")[:budget].tolist())


@pytest.mark.parametrize("subset", ["random", "top"])
@pytest.mark.parametrize("budget", [700, 5000, 12_345])
def test_sorted_orders_are_sorted_over_the_seen_subset(subset: str, budget: int) -> None:
    stream = DomainStream({"name": "ascending"}, SCORES, key=1, budget=budget, subset=subset)
    seen = stream.seen()
    n = len(SCORES)
    for k in range(-(-budget // n)):  # each pass (full or partial) is ascending
        block = SCORES[seen[k * n : (k + 1) * n]]
        assert np.all(np.diff(block) >= 0)
    descending = DomainStream({"name": "descending"}, SCORES, key=1, budget=budget, subset=subset).seen()
    assert np.all(np.diff(SCORES[descending[: min(budget, n)]]) <= 0)


@pytest.mark.parametrize("order", ["random", "ascending", {"name": "buckets", "num_buckets": 4}])
@pytest.mark.parametrize("rule", ["reshuffle", "repeat"])
def test_each_full_pass_sees_every_sequence_once(order, rule: str) -> None:
    config = {"name": order} if isinstance(order, str) else order
    n = len(SCORES)
    budget = 2 * n + 900
    seen = DomainStream(config, SCORES, key=3, budget=budget, past_epoch=rule).seen()
    for k in range(2):
        assert np.array_equal(np.sort(seen[k * n : (k + 1) * n]), np.arange(n))
    tail = seen[2 * n :]
    assert len(np.unique(tail)) == 900
    assert ks_statistic(SCORES[tail], SCORES) < ks_critical(900, n)
    same = np.array_equal(seen[:n], seen[n : 2 * n])
    epoch_dependent = config["name"] in ("random", "buckets")
    assert same == (rule == "repeat" or not epoch_dependent)


def test_sweep_is_one_sorted_pass_over_the_whole_budget() -> None:
    n = len(SCORES)
    budget = 2 * n + 1000
    for subset in ("random", "top"):
        seen = DomainStream(
            {"name": "ascending"}, SCORES, key=4, budget=budget, past_epoch="sweep", subset=subset
        ).seen()
        assert np.all(np.diff(SCORES[seen]) >= 0), "one ascending sweep over all passes"
        counts = np.bincount(seen, minlength=n)
        assert set(np.unique(counts)) == {2, 3} and (counts == 3).sum() == 1000
        extra = np.flatnonzero(counts == 3)
        if subset == "top":
            assert set(extra.tolist()) == set(np.argsort(-SCORES, kind="stable")[:1000].tolist())
        else:
            assert ks_statistic(SCORES[extra], SCORES) < ks_critical(1000, n)
    # A random order has no score to place repeats by: one fresh shuffle per pass.
    seen = DomainStream({"name": "random"}, SCORES, key=4, budget=budget, past_epoch="sweep").seen()
    assert np.array_equal(np.sort(seen[:n]), np.arange(n)) and np.array_equal(np.sort(seen[n : 2 * n]), np.arange(n))


def test_subsets_are_keyed_and_stable() -> None:
    a = choose_subset("random", SCORES, 100, key=1)
    assert np.array_equal(a, choose_subset("random", SCORES, 100, key=1))
    assert not np.array_equal(a, choose_subset("random", SCORES, 100, key=2))
    assert np.array_equal(choose_subset("top", SCORES, len(SCORES), key=1), np.arange(len(SCORES)))
    with pytest.raises(IndexError):
        DomainStream({"name": "random"}, SCORES, key=1, budget=10).lookup(np.array([10]))


# ----------------------------------------------------------------------------------- in the plan


def test_ascending_over_a_partial_epoch_rises_through_the_whole_range(make_recipe) -> None:
    """The quickstart's bug: an ascending order over a third of an epoch trained only on the worst third."""
    plan = build_plan(make_recipe(training={"steps": 6, "global_batch_size": 8, "micro_batch_size": 4}))
    split = plan.store.train
    epochs = plan.epochs()
    assert (epochs < 0.6).all(), epochs  # every domain is consumed only partly
    for d in range(3):
        start, stop = split.domain_range(d)
        budget = int(plan.consumed_before(plan.total_steps)[d])
        local = plan.sampler.domain_positions(d, 0, budget)
        scores = split.score[start + local]
        domain = split.score[start:stop]
        assert np.all(np.diff(scores) >= 0)
        assert scores[-1] >= np.quantile(domain, 0.8), "the run must reach the domain's best data"
    prefix = build_plan(
        make_recipe(
            curriculum={"order": {"name": "ascending"}, "subset": "prefix"},
            training={"steps": 6, "global_batch_size": 8, "micro_batch_size": 4},
        )
    )
    start, stop = split.domain_range(1)
    budget = int(prefix.consumed_before(prefix.total_steps)[1])
    assert split.score[start + prefix.sampler.domain_positions(1, 0, budget)].max() <= np.quantile(
        split.score[start:stop], 0.6
    )


def test_phased_boundaries_are_fractions_of_training(make_recipe) -> None:
    """With a mixture that gives a domain most of its samples late, the segment switch still happens at
    the training fraction, not at the fraction of the domain's budget."""
    steps = 40
    plan = build_plan(
        make_recipe(
            mixture={
                "mixer": {
                    "name": "staged",
                    "stages": [
                        {"name": "early", "until": 0.5, "weights": {"code": 0.1, "prose": 0.8, "web": 0.1}},
                        {"name": "late", "until": 1.0, "weights": {"code": 0.7, "prose": 0.2, "web": 0.1}},
                    ],
                },
                "on_cap": "warn",
            },
            curriculum={"order": {"name": "phased", "boundaries": ["late.start"], "orders": ["random", "ascending"]}},
            training={"steps": steps, "global_batch_size": 8, "micro_batch_size": 4},
        )
    )
    code = plan.domains.names.index("code")
    switch = plan.boundary_step("late.start")
    assert switch == steps // 2
    at_switch = int(plan.consumed_before(switch)[code])
    budget = int(plan.consumed_before(steps)[code])
    assert at_switch < budget / 3  # most of code comes after the switch
    start, _ = plan.store.train.domain_range(code)
    scores = plan.store.train.score[start + plan.sampler.domain_positions(code, 0, budget)]
    n = plan.domains.sequences[code]
    late = scores[at_switch : min(budget, n)]
    assert np.all(np.diff(late) >= 0), "the ascending segment starts exactly at the training boundary"
    assert not np.all(np.diff(scores[:at_switch]) >= 0)
    fraction = build_plan(
        make_recipe(
            curriculum={"order": {"name": "phased", "boundaries": [0.5], "orders": ["random", "ascending"]}},
            training={"steps": steps, "global_batch_size": 8, "micro_batch_size": 4},
            mixture={"mixer": {"name": "static", "weights": "natural"}, "on_cap": "warn"},
        )
    )
    assert fraction.boundary_step(0.5) == switch
    with pytest.raises(UserError, match="names no phase"):
        build_plan(
            make_recipe(
                curriculum={
                    "order": {"name": "phased", "boundaries": ["tail.start"], "orders": ["random", "ascending"]}
                }
            )
        )


@pytest.mark.parametrize(
    "curriculum",
    [
        {"order": {"name": "ascending"}, "subset": "top", "past_epoch": "sweep"},
        {"order": {"name": "phased", "boundaries": [0.5], "orders": ["random", "ascending"]}, "subset": "random"},
    ],
)
def test_resume_is_bitwise_with_subsets_and_training_time_phases(make_recipe, tmp_path: Path, curriculum) -> None:
    from tools.train.pretrain import train

    common = {
        "curriculum": curriculum,
        "mixture": {"mixer": {"name": "static", "weights": "natural"}, "on_cap": "warn"},
    }
    full = make_recipe(run_dir=str(tmp_path / "full"), **common)
    train(full, show_progress=False)
    split = make_recipe(run_dir=str(tmp_path / "split"), **common)
    train(split, stop_after_steps=5, show_progress=False)
    train(split, resume=True, show_progress=False)
    losses = [{r["step"]: r["loss"] for r in read_metrics(tmp_path / run) if "loss" in r} for run in ("full", "split")]
    assert sorted(losses[0]) == list(range(12)) and losses[0] == losses[1]


def test_plan_reports_coverage_and_warns_on_one_end(make_recipe) -> None:
    from tools.train.plan_report import coverage_summary

    short = {"steps": 6, "global_batch_size": 8, "micro_batch_size": 4}
    fair = coverage_summary(build_plan(make_recipe(training=short)))
    for c in fair.values():
        assert c["warning"] is None and c["quantile_range"][0] < 0.2 and c["quantile_range"][1] > 0.8
        assert c["end_quantile"] > c["start_quantile"]
    worst = coverage_summary(
        build_plan(make_recipe(training=short, curriculum={"order": {"name": "ascending"}, "subset": "prefix"}))
    )
    assert all("lowest part" in c["warning"] for c in worst.values())
    chosen = coverage_summary(
        build_plan(make_recipe(training=short, curriculum={"order": {"name": "ascending"}, "subset": "top"}))
    )
    assert all(c["warning"] is None and c["quantile_range"][0] > 0.3 for c in chosen.values())


def test_a_sweep_too_large_to_hold_is_refused(monkeypatch) -> None:
    import curriculum.orders.stream as stream

    monkeypatch.setattr(stream, "MAX_SWEEP_ITEMS", 10_000)
    with pytest.raises(UserError, match="past_epoch: reshuffle"):
        DomainStream({"name": "ascending"}, SCORES, key=1, budget=20_000, past_epoch="sweep")
    DomainStream({"name": "ascending"}, SCORES, key=1, budget=20_000, past_epoch="reshuffle")
