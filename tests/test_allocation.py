"""Property tests of the mixture allocation: integer counts never drift a sample from target."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.train.allocation import Allocation, edf_window_counts, spread_window


@st.composite
def weight_schedules(draw):
    """Piecewise weight schedules with abrupt switches, zeros and tiny weights (the hard cases)."""
    n_domains = draw(st.integers(2, 7))
    n_edges = draw(st.integers(1, 60))
    slots = np.array(draw(st.lists(st.integers(1, 9), min_size=n_edges, max_size=n_edges)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weights = np.zeros((n_edges, n_domains))
    current = rng.dirichlet(np.ones(n_domains))
    for e in range(n_edges):
        if rng.random() < 0.4:
            kind = rng.integers(3)
            if kind == 0:
                current = np.zeros(n_domains)
                current[rng.integers(n_domains)] = 1.0
            elif kind == 1:
                current = rng.dirichlet(np.full(n_domains, 0.2))
            else:
                current = rng.random(n_domains) ** 4
                current /= current.sum()
        weights[e] = current
    return weights, slots


@settings(max_examples=300, deadline=None)
@given(weight_schedules())
def test_edf_counts_stay_within_one_sample_of_target(schedule) -> None:
    weights, slots = schedule
    cum_targets = np.vstack([np.zeros(weights.shape[1]), np.cumsum(weights * slots[:, None], axis=0)])
    counts = edf_window_counts(cum_targets, slots)
    assert (counts >= 0).all()
    assert np.array_equal(counts.sum(axis=1), slots)
    realised = np.cumsum(counts, axis=0)
    assert np.abs(realised - cum_targets[1:]).max() < 1.0


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 70), st.integers(1, 12), st.lists(st.floats(0, 1), min_size=2, max_size=7), st.integers(0, 2**31))
def test_spread_window_is_exact_within_one_sample(steps, batch, raw, seed) -> None:
    rng = np.random.default_rng(seed)
    total = steps * batch
    weights = np.asarray(raw) + 1e-9
    counts = rng.multinomial(total, weights / weights.sum())
    cumulative = spread_window(tuple(int(c) for c in counts), steps, batch)
    assert np.array_equal(cumulative[-1], counts)
    per_step = np.diff(cumulative, axis=0)
    assert (per_step >= 0).all() and (per_step.sum(axis=1) == batch).all()
    target = counts[None, :] * np.arange(steps + 1)[:, None] / steps
    assert np.abs(cumulative - target).max() < 1.0


def test_allocation_lookups_are_consistent_and_order_free() -> None:
    edges = np.array([0, 5, 8, 20])
    window_counts = np.array([[10, 10, 0], [3, 3, 6], [24, 24, 0]])
    alloc = Allocation(edges, window_counts, batch_size=4)
    forward = [alloc.consumed_before(s) for s in range(21)]
    backward = [alloc.consumed_before(s) for s in reversed(range(21))][::-1]
    assert all(np.array_equal(a, b) for a, b in zip(forward, backward))
    assert np.array_equal(forward[-1], window_counts.sum(axis=0))
    for s in range(20):
        assert alloc.counts(s).sum() == 4
        assert np.abs(alloc.consumed_before(s + 1) - alloc.target_before(s + 1)).max() < 1.0
