"""Random-access pseudo-random permutations: element i of a shuffle of range(n) in O(1).

A keyed Feistel network is a bijection on [0, 4^k); "cycle walking" (re-applying it until the
value falls below n) restricts it to a bijection on [0, n). This lets the sampler read position p
of epoch e of a shuffled domain without materialising the shuffle, so resuming at any step costs
the same. Keys come from `derive_key(seed, *parts)`, so every (seed, domain, epoch) has its own shuffle.
"""

from __future__ import annotations

import hashlib

import numpy as np

_ROUNDS = 6
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def derive_key(*parts: int | str) -> int:
    """A 64-bit key from any parts (stable across processes and platforms)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _mix(x: np.ndarray) -> np.ndarray:
    # splitmix64 finaliser: a cheap, well-distributed 64-bit hash.
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _round_keys(key: int) -> np.ndarray:
    return _mix(np.arange(1, _ROUNDS + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(key))


def _feistel(x: np.ndarray, half_bits: int, keys: np.ndarray) -> np.ndarray:
    mask = np.uint64((1 << half_bits) - 1)
    shift = np.uint64(half_bits)
    left, right = x >> shift, x & mask
    with np.errstate(over="ignore"):
        for k in keys:
            left, right = right, left ^ (_mix(right ^ k) & mask)
    return (left << shift) | right


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
    outside = out >= np.uint64(n)
    while outside.any():  # cycle walking: expected < 4 rounds since the domain is < 4n
        out[outside] = _feistel(out[outside], half_bits, keys)
        outside = out >= np.uint64(n)
    return out.astype(np.int64)
