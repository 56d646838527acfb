"""The plan report from the allocation (no batches drawn) agrees with drawing every batch."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tools.train.plan import build_plan
from tools.train.plan_report import QUINTILES, plan_summary, sequence_quantiles, within_domain_quantiles


def brute_force(plan) -> tuple[list[dict], np.ndarray]:
    """The report's numbers from every global batch of the run (what the report used to sample)."""
    split, names = plan.store.train, plan.domains.names
    lr_tokens = np.zeros(QUINTILES)
    quantile = within_domain_quantiles(split)
    per_segment = []
    for seg in plan_summary(plan)["segments"]:
        a, b = seg["steps"]
        scores = {n: [] for n in names}
        quants = []
        for step in range(a, b):
            batch = plan.batch(step)
            q = quantile[batch.sequence_ids]
            quants.extend(q)
            for d, s in zip(batch.domains, split.score[batch.sequence_ids]):
                scores[names[d]].append(s)
            bins = np.minimum((q * QUINTILES).astype(int), QUINTILES - 1)
            np.add.at(lr_tokens, bins, plan.lr(step) * plan.store.seq_len)
        per_segment.append(
            {"mean_score": {n: np.mean(v) if v else None for n, v in scores.items()}, "q": np.mean(quants)}
        )
    return per_segment, lr_tokens


@pytest.mark.parametrize("order", ["ascending", "random"])
def test_report_matches_every_batch(make_recipe, order: str) -> None:
    plan = build_plan(
        make_recipe(
            curriculum={"order": {"name": order}},
            mixture={"mixer": {"name": "temperature", "tau": {"start": 5.0, "end": 1.0, "at": 0.5}}},
        )
    )
    summary = plan_summary(plan)
    exact, lr_tokens = brute_force(plan)
    assert len(summary["segments"]) == len(exact) >= 1
    for seg, ref in zip(summary["segments"], exact):
        for name, value in seg["mean_score"].items():
            assert (value is None) == (ref["mean_score"][name] is None)
            if value is not None:
                assert value == pytest.approx(ref["mean_score"][name], rel=1e-6)
        assert seg["mean_quality_quantile"] == pytest.approx(ref["q"], rel=1e-9)
    # The LR of a sample comes from the allocation's windows (within a step): totals agree closely.
    report = np.array(summary["lr_x_tokens_by_quality_quintile"])
    assert report.sum() == pytest.approx(lr_tokens.sum(), rel=0.05)
    assert np.abs(report - lr_tokens).max() <= 0.1 * lr_tokens.sum()


def test_quantiles_by_binary_search_match_ranking(tiny_store) -> None:
    from curriculum.store.reader import TokenStore

    split = TokenStore(tiny_store).train
    ids = np.arange(len(split))
    q = sequence_quantiles(split, ids)
    for d in range(3):
        start, stop = split.domain_range(d)
        scores = np.asarray(split.score[start:stop], dtype=np.float64)
        assert np.all(np.diff(q[start:stop][np.argsort(scores, kind="stable")]) >= 0)
        assert 0 < q[start:stop].min() and q[start:stop].max() < 1
        assert abs(q[start:stop].mean() - 0.5) < 1e-9  # mean rank of a whole domain is its middle
        for value in np.unique(scores)[:3]:  # ties share their mean rank
            tied = q[start:stop][scores == value]
            assert np.all(tied == tied[0])
            assert tied[0] == pytest.approx(((scores < value).sum() + (len(tied) - 1) / 2 + 0.5) / (stop - start))


def test_report_is_fast_at_a_million_steps(make_recipe) -> None:
    recipe = make_recipe(
        training={"steps": 1_000_000, "global_batch_size": 8, "micro_batch_size": 4},
        mixture={
            "mixer": {"name": "static", "weights": {"code": 0.3, "prose": 0.5, "web": 0.2}},
            "max_epochs": {"default": 1e9},
        },
        checkpoint={"every_steps": 100_000, "keep_last": 1},
        averaging={"snapshots": 3, "every_steps": 1000, "weights": {"name": "ema", "alpha": 0.2}},
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = build_plan(recipe)
    started = time.perf_counter()
    summary = plan_summary(plan)
    assert time.perf_counter() - started < 20  # "a few seconds" on a free core; bound loose for CI noise
    assert summary["steps"] == 1_000_000
