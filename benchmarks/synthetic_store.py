"""A synthetic token store through the real writer (one shard per domain, then the manifest), for benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np


def write_synthetic_store(
    root: Path,
    domains: dict[str, int],
    *,
    seq_len: int,
    vocab_size: int,
    pick_val: Callable[[np.random.Generator, int], np.ndarray],
    make_tokens: Callable[[np.random.Generator, int], np.ndarray],
    fingerprint: str,
    seed: int = 0,
) -> Path:
    """``domains[name]`` one-sequence documents each with a normal random score; ``pick_val(rng, n)``
    marks the validation ones and ``make_tokens(rng, n_tokens)`` gives their tokens (EOS id 0)."""
    from curriculum.store.prepare.finalize import finalize_store
    from curriculum.store.shards import write_shard

    rng = np.random.default_rng(seed)
    units = []
    for i, (name, count) in enumerate(domains.items()):
        is_val = pick_val(rng, count)
        unit = {"index": i, "name": f"{name}-{i:06d}", "files": [], "start": 0, "stop": None}
        write_shard(
            root / "shards" / unit["name"],
            domain=name,
            unit=unit,
            ids=[f"{name}-{j}" for j in range(count)],
            scores=rng.normal(size=count),
            tiebreak=np.arange(count),
            is_val=is_val,
            flat_tokens=make_tokens(rng, count * (seq_len - 1)),
            lengths=np.full(count, seq_len - 1),
            seq_len=seq_len,
            token_dtype=np.dtype(np.uint16),
            eos_id=0,
        )
        units.append(unit)
    extra = {"token_dtype": "uint16", "eos_id": 0, "vocab_size": vocab_size, "data_fingerprint": fingerprint}
    finalize_store(root, units, list(domains), seq_len, extra)
    return root


if __name__ == "__main__":
    print(__doc__)
