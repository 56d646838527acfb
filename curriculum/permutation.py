"""Random-access pseudo-random permutations: element i of a shuffle of range(n) in O(1).

A keyed Feistel network is a bijection on [0, 2^(2h)); "cycle walking" (re-applying it until the
value falls below n) restricts it to a bijection on [0, n). This lets the sampler read position p
of epoch e of a shuffled domain without materialising the shuffle, so resuming at any step costs
the same. Keys come from `derive_key(seed, *parts)`, so every (seed, domain, epoch) has its own
shuffle. The round function is a multiply-shift hash (cheap in numpy, good enough to shuffle data:
no cryptographic claim is made).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

_ROUNDS = 6


def derive_key(*parts: int | str) -> int:
    """A 64-bit key from any parts (stable across processes and platforms)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


@lru_cache(maxsize=4096)
def _round_keys(key: int) -> list[tuple[np.uint64, np.uint64]]:
    rng = np.random.Generator(np.random.PCG64(key))
    raw = rng.integers(0, 2**63, size=(_ROUNDS, 2), dtype=np.uint64)
    # Odd multipliers keep the multiply-shift hash well spread; the xor term decorrelates rounds.
    return [(np.uint64(m) | np.uint64(1), np.uint64(x)) for m, x in raw]


def _feistel(x: np.ndarray, half_bits: int, keys: list[tuple[np.uint64, np.uint64]]) -> np.ndarray:
    mask = np.uint64((1 << half_bits) - 1)
    half = np.uint64(half_bits)
    top = np.uint64(64 - half_bits)
    left, right = x >> half, x & mask
    for mult, xor in keys:
        # F(right) = top `half_bits` bits of (right ^ xor) * mult: unsigned overflow wraps by design.
        left, right = right, left ^ (((right ^ xor) * mult) >> top)
    return (left << half) | right


def permute(positions: np.ndarray, n: int, key: int) -> np.ndarray:
    """Element ``positions`` of the keyed shuffle of range(n); a bijection of [0, n) for every key."""
    positions = np.asarray(positions, dtype=np.int64)
    if n <= 1:
        return np.zeros_like(positions)
    if positions.size and (positions.min() < 0 or positions.max() >= n):
        raise IndexError(f"positions must lie in [0, {n})")
    half_bits = max(1, ((n - 1).bit_length() + 1) // 2)
    keys = _round_keys(key)
    out = _feistel(positions.astype(np.uint64), half_bits, keys)
    limit = np.uint64(n)
    outside = np.flatnonzero(out >= limit)
    while outside.size:  # cycle walking: each pass keeps a fraction < 3/4 outside (the domain is < 4n)
        walked = _feistel(out[outside], half_bits, keys)
        out[outside] = walked
        outside = outside[walked >= limit]
    return out.astype(np.int64)
