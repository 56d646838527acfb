"""Sampler benchmark: currimix's stateless batches vs skipping through a DataLoader to resume.

Builds a synthetic token store (3 domains, ~1M sequences) in a temp folder, then measures, for
plans of 10^4 .. 10^7 steps with a global batch of 512 sequences:

* plan build time (once per run: the EDF allocation over windows of 64 steps),
* time to the first batch when resuming at step t (the plan is rebuilt first, as after a restart,
  but its build time is reported in its own column),
* steady index generation: global batches/s and tokens/s over 2,000 consecutive steps.

Baseline, in the same run: a torch DataLoader over the same number of sequences (the index
dataset only returns the index, so only the sampler costs), resumed with accelerate's
`skip_first_batches`, sequential and shuffled.

    python benchmarks/sampler.py            # prints a markdown table
    python benchmarks/sampler.py --quick    # 10^4 and 10^6 steps only
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10_000, 1_000_000, 10_000_000])
    parser.add_argument("--quick", action="store_true", help="Only 10^4 and 10^6 steps.")
    return parser


if __name__ == "__main__" and {"-h", "--help"} & set(sys.argv[1:]):
    build_parser().parse_args()  # prints the help and exits before importing torch

import numpy as np  # noqa: E402
import torch  # noqa: E402
from accelerate import skip_first_batches  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks.*` from a checkout

from benchmarks import harness  # noqa: E402
from recipes.loading import recipe_from_dict  # noqa: E402
from tools.train.plan import build_plan  # noqa: E402

SEQ_LEN = 8  # the store's own length; index throughput is reported for 2048-token sequences
NOMINAL_SEQ_LEN = 2048
BATCH = 512
DOMAINS = {"web": 600_000, "code": 300_000, "math": 100_000}


def synthetic_store(root: Path) -> Path:
    """A store with DOMAINS sequences (random scores), one shard per domain, through the real writer."""
    from benchmarks.synthetic_store import write_synthetic_store

    def pick_val(rng: np.random.Generator, count: int) -> np.ndarray:  # 64 of the documents
        is_val = np.zeros(count, dtype=bool)
        is_val[rng.choice(count, 64, replace=False)] = True
        return is_val

    sizes = {name: n + 64 for name, n in DOMAINS.items()}
    return write_synthetic_store(
        root,
        sizes,
        seq_len=SEQ_LEN,
        vocab_size=2,
        pick_val=pick_val,
        make_tokens=lambda rng, n: np.ones(n, dtype=np.uint16),
        fingerprint="synthetic",
    )


def recipe(store: Path, steps: int, mixer: dict, order: str):
    return recipe_from_dict(
        {
            "name": "bench",
            "run_dir": str(store.parent / "run"),
            "data": {
                "store": str(store),
                "seq_len": SEQ_LEN,
                "domains": {n: {"sources": [{"path": str(store)}]} for n in DOMAINS},
            },
            "mixture": {"mixer": mixer},
            "curriculum": {"order": {"name": order}},
            "schedule": {"name": "cosine", "peak_lr": 1e-3, "warmup_steps": 10},
            "training": {"steps": steps, "global_batch_size": BATCH, "micro_batch_size": BATCH},
        }
    )


MIXERS = {
    "static": {"name": "static", "weights": {"web": 0.5, "code": 0.3, "math": 0.2}},
    "temperature 5->1": {"name": "temperature", "tau": {"start": 5, "end": 1, "shape": "step", "at": 0.5}},
    "upsample 15%": {"name": "upsample", "base": "natural", "boost": {"math": 4, "code": 2}, "tail_fraction": 0.15},
}


def bench_ours(store: Path, steps: int, mixer: str, order: str, resume_at: list[int]) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        plan = build_plan(recipe(store, steps, MIXERS[mixer], order))
        build = time.perf_counter() - t0
    first = {}
    for step in resume_at:
        if step >= steps:
            continue
        fresh = build_plan(recipe(store, steps, MIXERS[mixer], order))  # as after a restart
        t0 = time.perf_counter()
        fresh.batch(step)
        first[step] = time.perf_counter() - t0
    start = steps // 3
    n = min(2000, steps - start)
    t0 = time.perf_counter()
    for step in range(start, start + n):
        plan.batch(step)
    rate = n / (time.perf_counter() - t0)
    return {"build_s": build, "first_batch_s": first, "batches_per_s": rate}


class Indices(Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def bench_skip_long_epoch(step: int) -> float:
    """A sequential index sampler whose single epoch is long enough: only the skipping costs."""
    loader = DataLoader(Indices(BATCH * (step + 1)), batch_size=BATCH, shuffle=False)
    t0 = time.perf_counter()
    next(iter(skip_first_batches(loader, step)))
    return time.perf_counter() - t0


def bench_skip_epochs(n: int, step: int, shuffle: bool) -> float:
    """What resuming at ``step`` costs a loader that must replay earlier epochs (multi-epoch runs)."""
    loader = DataLoader(
        Indices(n), batch_size=BATCH, shuffle=shuffle, generator=torch.Generator().manual_seed(0) if shuffle else None
    )
    t0 = time.perf_counter()
    remaining = step
    while remaining >= len(loader):  # full epochs are iterated through to keep the RNG in step
        for _ in loader.batch_sampler:
            pass
        remaining -= len(loader)
    next(iter(skip_first_batches(loader, remaining)))
    return time.perf_counter() - t0


def main() -> None:
    args = build_parser().parse_args()
    steps_list = [10_000, 1_000_000] if args.quick else args.steps
    n_seqs = sum(DOMAINS.values())
    print(harness.header("sampler: stateless batches vs skipping through a loader"))
    print(f"torch threads {torch.get_num_threads()}  global batch {BATCH}, {n_seqs:,} sequences in 3 domains\n")
    with tempfile.TemporaryDirectory() as tmp:
        store = synthetic_store(Path(tmp) / "store")
        print(
            "| sampler | plan steps T | order | plan build (s) | first batch, resume at 10^3 (ms) | ... at T/2 (ms) "
            "| ... at T-1 (ms) | batches/s | index tokens/s (2048-token seqs) |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for steps in steps_list:
            for mixer, order in (("static", "random"), ("temperature 5->1", "ascending"), ("upsample 15%", "random")):
                points = [1_000, steps // 2, steps - 1]
                r = bench_ours(store, steps, mixer, order, points)
                cells = [f"{r['first_batch_s'][s] * 1e3:.2f}" for s in points]
                print(
                    f"| currimix, {mixer} | {steps:,} | {order} | {r['build_s']:.2f} | "
                    + " | ".join(cells)
                    + f" | {r['batches_per_s']:,.0f} | {r['batches_per_s'] * BATCH * NOMINAL_SEQ_LEN:,.0f} |"
                )
        for steps in (10_000, 1_000_000):  # 10^7 would take minutes: the cost is linear in the step
            cells = [f"{bench_skip_long_epoch(s) * 1e3:,.1f}" for s in (1_000, steps // 2, steps - 1)]
            print(
                f"| DataLoader + skip_first_batches, sequential, one long epoch | {steps:,} | store order | - | "
                + " | ".join(cells)
                + " | - | - |"
            )
            cells = [f"{bench_skip_epochs(n_seqs, s, True) * 1e3:,.1f}" for s in (1_000, steps // 2, steps - 1)]
            print(
                f"| DataLoader + skip_first_batches, shuffled, {n_seqs:,} sequences (epochs replayed) | {steps:,} "
                "| random | - | " + " | ".join(cells) + " | - | - |"
            )


if __name__ == "__main__":
    main()
