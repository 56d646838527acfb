"""Orderings: a contract over every registered ordering (bijection per epoch, deterministic, random
access consistent, `epoch_dependent` truthful), then buckets' and phased orders' own promises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curriculum.orders import ORDERINGS, build_ordering
from curriculum.orders.phased import segment_edges

UNIFORM_THEN_ASCENDING = {"name": "phased", "boundaries": [0.5], "orders": ["random", "ascending"]}
ASCENDING_EACH_PHASE = {"name": "phased", "boundaries": [0.25, 0.5, 0.75], "orders": ["ascending"] * 4}
ASCENDING_TAIL = {"name": "phased", "boundaries": [0.8], "orders": ["random", "ascending"]}

EXAMPLES: dict[str, list[dict]] = {
    "random": [{"name": "random"}],
    "ascending": [{"name": "ascending"}],
    "descending": [{"name": "descending"}],
    "buckets": [{"name": "buckets", "num_buckets": 4}, {"name": "buckets", "num_buckets": 3, "order": "descending"}],
    "phased": [
        UNIFORM_THEN_ASCENDING,
        ASCENDING_EACH_PHASE,
        ASCENDING_TAIL,
        {"name": "phased", "boundaries": [0.3], "orders": ["descending", {"name": "buckets", "num_buckets": 2}]},
    ],
}
CASES = [(name, config) for name in ORDERINGS.names() for config in EXAMPLES.get(name, [])]
CASE_IDS = [f"{name}-{i}" for name in ORDERINGS.names() for i in range(len(EXAMPLES.get(name, [])))]
SIZES = (1, 2, 3, 17, 200)


def scores_for(n: int, seed: int = 0, levels: int = 7) -> np.ndarray:
    """Scores with ties (like integer quality labels), so tie-breaking is exercised too."""
    return np.random.default_rng(seed).integers(0, levels, n).astype(np.float64)


def test_every_ordering_has_a_contract_example() -> None:
    assert set(ORDERINGS.names()) == set(EXAMPLES), "add an example for each new ordering to EXAMPLES"


@pytest.mark.parametrize(("name", "config"), CASES, ids=CASE_IDS)
def test_ordering_contract(name: str, config: dict) -> None:
    for n in SIZES:
        scores = scores_for(n)
        order = build_ordering(config, scores, key=12345)
        again = build_ordering(config, scores, key=12345)
        perms = [order.permutation(epoch) for epoch in range(3)]
        for epoch, perm in enumerate(perms):
            assert perm.dtype == np.int64 and np.array_equal(np.sort(perm), np.arange(n)), "not a bijection"
            assert np.array_equal(perm, again.permutation(epoch)), "not deterministic"
            # Random access agrees with the whole order, in any order of positions.
            positions = np.random.default_rng(epoch).permutation(n)[: max(1, n // 3)]
            assert np.array_equal(order.lookup(epoch, positions), perm[positions])
        if not order.epoch_dependent:
            assert all(np.array_equal(perms[0], p) for p in perms[1:])
        elif n >= 17:
            assert not np.array_equal(perms[0], perms[1]), "epoch_dependent but epochs agree"
    # A different key changes an order that has random parts (scores with ties always have some).
    scores = scores_for(200)
    a, b = build_ordering(config, scores, key=1), build_ordering(config, scores, key=2)
    assert not np.array_equal(a.permutation(0), b.permutation(0))


# ------------------------------------------------------------------------------------------ buckets


@pytest.mark.parametrize("direction", ["ascending", "descending"])
@pytest.mark.parametrize(("n", "k"), [(100, 10), (101, 7), (5, 8), (50, 1)])
def test_buckets_are_monotone_quantiles_shuffled_inside(direction: str, n: int, k: int) -> None:
    scores = np.random.default_rng(n).normal(size=n)
    order = build_ordering({"name": "buckets", "num_buckets": k, "order": direction}, scores, key=7)
    sign = 1 if direction == "ascending" else -1
    edges = np.arange(k + 1) * n // k
    perms = [order.permutation(e) for e in range(2)]
    for perm in perms:
        for lo, mid, hi in zip(edges[:-2], edges[1:-1], edges[2:]):
            if lo < mid < hi:
                assert np.max(sign * scores[perm[lo:mid]]) <= np.min(sign * scores[perm[mid:hi]])
    sizes = np.diff(edges)
    assert sizes.max() - sizes.min() <= 1
    for lo, hi in zip(edges[:-1], edges[1:]):
        # Same members in every epoch, a different shuffle inside (for buckets big enough to tell).
        assert set(perms[0][lo:hi]) == set(perms[1][lo:hi])
        if hi - lo >= 8:
            assert not np.array_equal(perms[0][lo:hi], perms[1][lo:hi])
            assert not np.all(np.diff(sign * scores[perms[0][lo:hi]]) >= 0), "bucket is sorted, not shuffled"


def test_one_bucket_per_sequence_is_ascending_and_one_bucket_is_a_shuffle() -> None:
    scores = scores_for(60)
    ascending = build_ordering({"name": "ascending"}, scores, key=3).permutation()
    assert np.array_equal(
        build_ordering({"name": "buckets", "num_buckets": 60}, scores, key=3).permutation(), ascending
    )
    one = build_ordering({"name": "buckets", "num_buckets": 1}, scores, key=3).permutation()
    assert not np.all(np.diff(scores[one]) >= 0)


# ------------------------------------------------------------------------------------------- phased


@pytest.mark.parametrize("config", [UNIFORM_THEN_ASCENDING, ASCENDING_EACH_PHASE, ASCENDING_TAIL])
@pytest.mark.parametrize("n", [10, 101, 1000])
def test_phased_segments_are_ordered_as_declared(config: dict, n: int) -> None:
    scores = np.random.default_rng(n).normal(size=n)
    order = build_ordering(config, scores, key=11)
    edges = segment_edges(config["boundaries"], n)
    assert edges[0] == 0 and edges[-1] == n
    assert list(edges[1:-1]) == [int(np.ceil(b * n - 1e-9)) for b in config["boundaries"]]
    perms = [order.permutation(e) for e in range(2)]
    for s, kind in enumerate(config["orders"]):
        segment = [p[edges[s] : edges[s + 1]] for p in perms]
        assert set(segment[0]) == set(segment[1]), "the split is the same in every epoch"
        if kind == "ascending":
            assert np.all(np.diff(scores[segment[0]]) >= 0)
            assert np.array_equal(segment[0], segment[1])
        elif len(segment[0]) >= 8:
            assert not np.all(np.diff(scores[segment[0]]) >= 0)
            assert not np.array_equal(segment[0], segment[1]), "random segments are redrawn every epoch"
    assert order.epoch_dependent == ("random" in config["orders"])


def test_phased_split_is_a_random_sample_not_a_score_cut() -> None:
    n = 2000
    scores = np.arange(n, dtype=np.float64)
    perm = build_ordering(ASCENDING_TAIL, scores, key=5).permutation()
    tail = scores[perm[1600:]]
    # The tail is sorted, and spans (nearly) the whole quality range, because the split is random.
    assert np.all(np.diff(tail) > 0) and tail[0] < 50 and tail[-1] > n - 50


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 300),
    cuts=st.lists(st.floats(0.01, 0.99), min_size=1, max_size=4, unique=True),
    kinds=st.lists(st.sampled_from(["random", "ascending", "descending", "buckets"]), min_size=5, max_size=5),
    epoch=st.integers(0, 5),
)
def test_phased_is_a_bijection_for_any_split(n: int, cuts: list[float], kinds: list[str], epoch: int) -> None:
    boundaries = sorted(cuts)
    config = {"name": "phased", "boundaries": boundaries, "orders": kinds[: len(boundaries) + 1]}
    perm = build_ordering(config, scores_for(n, seed=n), key=epoch).permutation(epoch)
    assert np.array_equal(np.sort(perm), np.arange(n))


def test_phased_config_errors() -> None:
    for bad, match in [
        ({"boundaries": [0.5], "orders": ["random"]}, "at least 2"),
        ({"boundaries": [0.5], "orders": ["random"] * 3}, "make 2 segments"),
        ({"boundaries": [0.6, 0.4], "orders": ["random"] * 3}, "strictly increasing"),
        ({"boundaries": [1.0], "orders": ["random"] * 2}, "inside"),
        ({"boundaries": [0.5], "orders": ["random", "ascendin"]}, "unknown ordering 'ascendin'"),
        ({"boundaries": [0.5], "orders": ["random", "phased"]}, "cannot itself be `phased`"),
        ({"boundaries": [0.5], "orders": ["random", {"name": "buckets", "num_buckets": 0}]}, "num_buckets"),
    ]:
        with pytest.raises(ValidationError, match=match):
            ORDERINGS.parse({"name": "phased", **bad})
    with pytest.raises(ValidationError, match="num_buckets"):
        ORDERINGS.parse({"name": "buckets", "num_buckets": 0})
