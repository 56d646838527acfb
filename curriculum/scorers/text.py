"""Shared text plumbing for the scorers: word tokens and stable 64-bit token hashes.

Hashes must be identical across processes and runs (Python's ``hash`` of str is salted per
process), so tokens are hashed with CRC-32 of their UTF-8 bytes, mixed to 64 bits, behind a
bounded per-process cache (most tokens of a corpus repeat, so the cache hit rate is high).
"""

from __future__ import annotations

import re
import zlib

import numpy as np

#: Words (letters/digits/underscore runs) and runs of other non-space characters ("!!!", "$$").
TOKEN_RE = re.compile(r"\w+|[^\w\s]+")

_CACHE: dict[str, int] = {}
_CACHE_LIMIT = 2_000_000
_MASK64 = (1 << 64) - 1


def tokens(text: str, *, lowercase: bool = True, max_tokens: int | None = None) -> list[str]:
    """Word and punctuation tokens of ``text`` (lowercased by default), at most ``max_tokens``."""
    if lowercase:
        text = text.lower()
    if max_tokens is None:
        return TOKEN_RE.findall(text)
    out = []
    for match in TOKEN_RE.finditer(text):
        if len(out) >= max_tokens:
            break
        out.append(match.group())
    return out


def token_hash(token: str) -> int:
    """A stable 64-bit hash of one token (CRC-32 in both halves, multiplied to spread bits)."""
    value = _CACHE.get(token)
    if value is None:
        raw = token.encode("utf-8", "surrogatepass")
        low = zlib.crc32(raw)
        high = zlib.crc32(raw, 0x9E3779B9)
        value = (((high << 32) | low) * 0xBF58476D1CE4E5B9) & _MASK64
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[token] = value
    return value


def hash_tokens(toks: list[str]) -> np.ndarray:
    """Stable uint64 hashes of a token list."""
    get = _CACHE.get
    values = [get(t) for t in toks]
    if None in values:
        values = [v if v is not None else token_hash(t) for v, t in zip(values, toks)]
    return np.array(values, dtype=np.uint64)


def combine_hashes(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Order-dependent 64-bit combination of two hash arrays (for n-gram hashes)."""
    with np.errstate(over="ignore"):
        mixed = (left * np.uint64(0x9E3779B97F4A7C15)) ^ (right + np.uint64(0x632BE59BD9B4E019))
        return mixed * np.uint64(0xD6E8FEB86659FD93)
