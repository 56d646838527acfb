"""Benchmark: `TokenSplit.gather` (rows of global sequence ids across shards), two revisions side by side.

    python benchmarks/gather.py [--revs 3af7cb5^ HEAD] [--shards 200] [--rounds 5]

`gather` reads the tokens of every training batch and, in 1M-id windows, the scores behind a
keyed rank order over all of a domain's shards. This script writes a synthetic store through the
real writer with ``--shards`` one-shard domains sharing 1M sequences of 8 tokens (the default,
200, stays under the store's 256 open memory maps, so opening costs are not what is timed), loads `curriculum/store/reader.py` of each git revision under a private name, opens the same
store with each, and times ``gather("tokens", ids)`` for random ids: a batch of 512 and a window of
1,000,000 (the revisions are timed in a rotating order per round; the ratio is total vs total).
Every revision's output is checked equal to the first's.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `benchmarks.*` from a checkout

from benchmarks import harness  # noqa: E402
from benchmarks.synthetic_store import write_synthetic_store  # noqa: E402

SEQUENCES = 1_000_000
SIZES = (512, 1_000_000)


def load_store_module(rev: str, folder: Path):
    """`curriculum/store/reader.py` of git revision ``rev``, loaded under a private name."""
    source = subprocess.run(
        ["git", "show", f"{rev}:curriculum/store/reader.py"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if source.returncode != 0:
        raise SystemExit(f"git show {rev}: {source.stderr.strip()}")
    name = "store_at_" + "".join(c if c.isalnum() else "_" for c in rev)
    path = folder / f"{name}.py"
    path.write_text(source.stdout)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revs", nargs="+", default=["3af7cb5^", "HEAD"])
    parser.add_argument("--shards", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one round (a set-up check)")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    with tempfile.TemporaryDirectory() as tmp:
        root = write_synthetic_store(
            Path(tmp) / "store",
            {f"d{i:04d}": SEQUENCES // args.shards for i in range(args.shards)},
            seq_len=8,
            vocab_size=50_000,
            pick_val=lambda rng, n: np.zeros(n, dtype=bool),
            make_tokens=lambda rng, n: rng.integers(1, 50_000, n, dtype=np.uint32).astype(np.uint16),
            fingerprint="gather-benchmark",
        )
        splits = {rev: load_store_module(rev, Path(tmp)).TokenStore(root).splits["train"] for rev in args.revs}
        n = len(next(iter(splits.values())))
        rng = np.random.default_rng(0)
        ids = {size: rng.integers(0, n, size) for size in SIZES}
        totals = {(rev, size): 0.0 for rev in args.revs for size in SIZES}
        for size in SIZES:  # warm: page cache, open memory maps; and the same rows from every revision
            rows = [split.gather("tokens", ids[size]) for split in splits.values()]
            assert all(np.array_equal(rows[0], r) for r in rows[1:]), "revisions disagree"
        for i in range(args.rounds):
            order = args.revs[i % len(args.revs) :] + args.revs[: i % len(args.revs)]
            for size in SIZES:
                repeats = 200 if size < 10_000 else 2
                for rev in order:
                    start = time.perf_counter()
                    for _ in range(repeats):
                        splits[rev].gather("tokens", ids[size])
                    totals[rev, size] += (time.perf_counter() - start) / repeats
    base = args.revs[0]
    print(harness.header(f"TokenSplit.gather at {' '.join(args.revs)}"))
    print(
        f"{n:,} sequences in {args.shards} shards; {args.rounds} rounds; numpy {np.__version__}; "
        f"load average {os.getloadavg()[0]:.1f}\n"
    )
    print("| ids per call | " + " | ".join(f"{rev} ms" for rev in args.revs) + f" | speed-up vs {base} |")
    print("|---" * (len(args.revs) + 2) + "|")
    for size in SIZES:
        ms = [1000 * totals[rev, size] / args.rounds for rev in args.revs]
        ratios = ", ".join(f"{totals[base, size] / totals[rev, size]:.1f}x" for rev in args.revs[1:])
        print(f"| {size:,} | " + " | ".join(f"{m:.2f}" for m in ms) + f" | {ratios} |")


if __name__ == "__main__":
    main()
