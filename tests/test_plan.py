"""The plan and its stateless sampler: pure, rank-independent, exact epochs, within one sample."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curriculum.errors import UserError
from curriculum.store.reader import TokenStore
from tools.train.plan import build_plan


def realised_counts(plan, steps):
    return np.array([np.bincount(plan.batch(s).domains, minlength=len(plan.domains.names)) for s in steps])


@st.composite
def plan_overrides(draw):
    weights = draw(st.lists(st.integers(0, 10), min_size=3, max_size=3).filter(lambda w: sum(w) > 0))
    total = sum(weights)
    return {
        "seed": draw(st.integers(0, 1000)),
        "mixture": {
            "mixer": {"name": "static", "weights": dict(zip(("code", "prose", "web"), [w / total for w in weights]))},
            "resolution_steps": draw(st.sampled_from([1, 3, 8, 64])),
            "on_cap": "warn",
        },
        "curriculum": {
            "order": {"name": draw(st.sampled_from(["random", "ascending", "descending"]))},
            "past_epoch": draw(st.sampled_from(["reshuffle", "repeat"])),
        },
        "training": {
            "steps": draw(st.integers(5, 60)),
            "global_batch_size": draw(st.sampled_from([4, 8, 12])),
            "micro_batch_size": 4,
            "trackers": ["jsonl"],
        },
        "averaging": {"snapshots": None},
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan_overrides())
def test_random_recipes_keep_every_promise(make_recipe, overrides) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # repeats past the cap only warn here
        plan = build_plan(make_recipe(**overrides))
        fresh = build_plan(make_recipe(**overrides))
    steps = range(plan.total_steps)
    realised = np.cumsum(realised_counts(plan, steps), axis=0)
    # Counts never negative, batches always full, cumulative counts within one sample of target.
    assert np.all(np.diff(np.vstack([np.zeros(3), realised]), axis=0) >= 0)
    target = np.array([plan.allocation.target_before(s + 1) for s in steps])
    assert np.abs(realised - target).max() < 1.0
    # The same batch fresh, out of order (as after a resume), and split over 1, 2 or 4 ranks.
    for s in [plan.total_steps - 1, 0, plan.total_steps // 2]:
        batch = plan.batch(s)
        again = fresh.batch(s)
        assert np.array_equal(batch.sequence_ids, again.sequence_ids)
        assert np.array_equal(batch.domains, again.domains)
        for world in (1, 2, 4):
            shards = [batch.shard(r, world) for r in range(world)]
            assert np.array_equal(np.concatenate([x.sequence_ids for x in shards]), batch.sequence_ids)


def test_every_sequence_is_used_exactly_once_per_epoch(make_recipe) -> None:
    store = TokenStore(make_recipe().store_path)
    sizes = np.diff(store.train.domain_offsets)
    steps = int(np.ceil(2.5 * sizes.sum() / 8))  # enough for 2+ epochs of every domain
    for order in ("random", "ascending", "descending"):
        plan = build_plan(
            make_recipe(
                mixture={"mixer": {"name": "static", "weights": "natural"}, "max_epochs": {"default": 3}},
                curriculum={"order": {"name": order}},
                training={"steps": steps, "global_batch_size": 8, "micro_batch_size": 4},
            )
        )
        stream = {d: [] for d in range(3)}
        for s in range(steps):
            batch = plan.batch(s)
            for d in range(3):
                stream[d].extend(batch.sequence_ids[batch.domains == d].tolist())
        for d in range(3):
            start, stop = store.train.domain_range(d)
            # Within a batch the order is shuffled, so compare epochs as sets of the domain's stream.
            consumed = plan.consumed_before(steps)[d]
            ordered = np.concatenate([start + plan.sampler.domain_positions(d, 0, consumed)])
            assert sorted(ordered.tolist()) == sorted(stream[d])
            n = stop - start
            for epoch in range(consumed // n):
                assert sorted(ordered[epoch * n : (epoch + 1) * n].tolist()) == list(range(start, stop))
        if order == "random":
            first, second = (plan.sampler.domain_positions(0, k * sizes[0], (k + 1) * sizes[0]) for k in (0, 1))
            assert not np.array_equal(first, second), "reshuffle should give a new order each epoch"


def test_ascending_curriculum_raises_quality_over_training(make_recipe) -> None:
    plan = build_plan(
        make_recipe(
            curriculum={"order": {"name": "ascending"}},
            training={"steps": 20, "global_batch_size": 8, "micro_batch_size": 4},
        )
    )
    scores = plan.store.train.score
    first = np.mean([scores[plan.batch(s).sequence_ids].mean() for s in range(5)])
    last = np.mean([scores[plan.batch(s).sequence_ids].mean() for s in range(15, 20)])
    assert last > first


def test_caps_and_stop_policy_refuse_repeats(make_recipe) -> None:
    with pytest.raises(UserError, match="cap"):
        build_plan(
            make_recipe(
                training={"steps": 400, "global_batch_size": 8, "micro_batch_size": 4},
                mixture={"mixer": {"name": "static", "weights": {"code": 1.0}}, "max_epochs": {"code": 2}},
            )
        )
    with pytest.raises(UserError, match="prose"):
        build_plan(
            make_recipe(
                training={"steps": 400, "global_batch_size": 8, "micro_batch_size": 4},
                curriculum={"past_epoch": "stop"},
            )
        )
    with pytest.warns(UserWarning, match="cap"):
        build_plan(
            make_recipe(
                training={"steps": 400, "global_batch_size": 8, "micro_batch_size": 4},
                mixture={
                    "mixer": {"name": "static", "weights": {"code": 1.0}},
                    "max_epochs": {"code": 2},
                    "on_cap": "warn",
                },
            )
        )


def test_averaging_window_and_weights(make_recipe) -> None:
    plan = build_plan(
        make_recipe(averaging={"snapshots": 6, "every_steps": 2, "weights": {"name": "ema", "alpha": 0.2}})
    )
    assert plan.averaging.steps == (2, 4, 6, 8, 10, 12)
    weights = np.asarray(plan.averaging.weights)
    expected = 0.8 ** np.arange(5, -1, -1)
    assert np.allclose(weights, expected / expected.sum()) and weights[-1] == weights.max()
    with pytest.raises(UserError, match="does not fit"):
        build_plan(make_recipe(averaging={"snapshots": 7, "every_steps": 2}))


def test_lr_schedule_comes_from_the_plan(make_recipe) -> None:
    plan = build_plan(make_recipe())
    lrs = np.array([plan.lr(s) for s in range(plan.total_steps)])
    assert lrs[0] == pytest.approx(3e-3 / 2)  # warmup of 2 steps
    assert lrs[2:8].max() == pytest.approx(3e-3) and lrs[-1] == pytest.approx(3e-3 * 0.33)
    assert np.all(np.diff(lrs[8:]) < 0)


def test_upweighting_samples_naturally_and_weights_losses(make_recipe) -> None:
    weights = {"code": 0.6, "prose": 0.2, "web": 0.2}
    plan = build_plan(make_recipe(mixture={"mixer": {"name": "static", "weights": weights}, "realise": "weight"}))
    store = plan.store
    natural = np.diff(store.train.domain_offsets) / len(store.train)
    counts = realised_counts(plan, range(plan.total_steps)).sum(axis=0)
    assert np.abs(counts / counts.sum() - natural).max() < 3 / counts.sum()
    batch = plan.batch(3)
    expected = np.array(list(weights.values())) / natural
    assert np.allclose(batch.loss_weights, expected[batch.domains])


def test_plan_owns_the_timing_of_logs_evals_checkpoints_and_snapshots(make_recipe):
    plan = build_plan(
        make_recipe(
            training={
                "steps": 10,
                "global_batch_size": 4,
                "micro_batch_size": 4,
                "log_every_steps": 3,
                "eval_every_steps": 4,
            },
            checkpoint={"every_steps": 5},
            averaging={"snapshots": 2, "every_steps": 3, "weights": {"name": "sma"}},
        )
    )
    done = range(1, 11)
    assert [d for d in done if plan.is_log_step(d)] == [3, 6, 9, 10]
    assert [d for d in done if plan.is_eval_step(d)] == [4, 8, 10]
    assert [d for d in done if plan.is_checkpoint_step(d)] == [5, 10]
    assert [d for d in done if plan.is_checkpoint_step(d, stop_at=7)] == [5, 7, 10]
    assert [d for d in done if plan.is_snapshot_step(d)] == [7, 10]


def test_long_plans_stay_within_their_budget(make_recipe) -> None:
    """The window edges are numpy (not a Python set per step) and a segment's LR range is read at a
    bounded number of steps, both ends included, so `plan` at 10^7 steps needs no per-step memory."""
    from tools.train.plan import window_edges
    from tools.train.plan_report import LR_RANGE_POINTS, lr_sample_steps, plan_summary

    edges = window_edges(10**7, 4096, [5, 10**7 - 1])
    assert edges[0] == 0 and edges[-1] == 10**7 and {5, 10**7 - 1} <= set(edges[:3].tolist() + edges[-2:].tolist())
    sampled = lr_sample_steps(3, 10**9)
    assert len(sampled) <= LR_RANGE_POINTS and sampled[0] == 3 and sampled[-1] == 10**9 - 1
    np.testing.assert_array_equal(lr_sample_steps(3, 10), np.arange(3, 10))

    plan = build_plan(
        make_recipe(
            training={"steps": 200_000, "global_batch_size": 8, "micro_batch_size": 4, "trackers": ["jsonl"]},
            mixture={"mixer": {"name": "static", "weights": "natural"}, "resolution_steps": 4096, "on_cap": "warn"},
            averaging={"snapshots": None},
        )
    )
    (segment,) = plan_summary(plan)["segments"]
    exact = plan.schedule.lr(np.arange(200_000))
    assert segment["lr_range"] == [pytest.approx(exact.min()), pytest.approx(exact.max())]
