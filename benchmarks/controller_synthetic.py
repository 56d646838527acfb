"""Benchmark (b): where does an online controller put its weight on three domains of known difficulty?

A synthetic corpus of three domains, generated here (no download):

- ``noise``: letters drawn uniformly at random: nothing to learn beyond the alphabet;
- ``pattern``: one short sentence repeated: learnt in a few steps, then nothing left to learn;
- ``markov``: an order-2 Markov chain over 12 letters with sparse random transitions (Dirichlet 0.2
  per context): learnable, slowly (144 contexts to learn).

A sensible controller moves weight to ``markov``. The same tiny Llama trains on each arm from the
same seed: ``static`` (uniform, the baseline, in the same run) and ``ado`` (uniform prior). The table
gives each arm's final held-out loss per domain and the controller's weights at the end; a second
table the weight of each domain at every update (ADO, first seed). Wall time per arm is printed so
the controller's overhead can be read off (its updates are timed in the metrics too).

    python benchmarks/controller_synthetic.py [--seeds 0 1 2] [--steps 300] [--workdir runs/bench/controller-synthetic]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import harness  # noqa: E402

LETTERS = "abcdefghijkl"
DOCS_PER_DOMAIN = 400
DOC_CHARS = 1500


def noise_doc(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(LETTERS + " "), DOC_CHARS))


def pattern_doc(rng: np.random.Generator) -> str:
    sentence = "the quick brown fox jumps over the lazy dog. "
    start = int(rng.integers(len(sentence)))
    return (sentence * (DOC_CHARS // len(sentence) + 2))[start : start + DOC_CHARS]


def markov_table(seed: int = 1234) -> np.ndarray:
    """P(next | previous two) over LETTERS + space: sparse rows, so there is much to learn, slowly."""
    rng = np.random.default_rng(seed)
    k = len(LETTERS) + 1
    return rng.dirichlet(np.full(k, 0.2), size=(k, k))


def markov_doc(rng: np.random.Generator, table: np.ndarray) -> str:
    alphabet = LETTERS + " "
    a, b = rng.integers(len(alphabet), size=2)
    out = []
    for _ in range(DOC_CHARS):
        c = int(rng.choice(len(alphabet), p=table[a, b]))
        out.append(alphabet[c])
        a, b = b, c
    return "".join(out)


def write_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng, table = np.random.default_rng(0), markov_table()
    makers = {"noise": noise_doc, "pattern": pattern_doc, "markov": lambda r: markov_doc(r, table)}
    for name, make in makers.items():
        with (folder / f"{name}.jsonl").open("w") as f:
            for i in range(DOCS_PER_DOMAIN):
                f.write(json.dumps({"id": f"{name}-{i}", "text": make(rng)}) + "\n")


def recipe(workdir: Path, arm: str, seed: int, steps: int) -> dict:
    controller = {"name": "ado", "every_steps": 10, "warmup_steps": 20} if arm == "ado" else None
    return {
        "name": f"{arm}-{seed}",
        "seed": seed,
        "run_dir": str(workdir / "runs" / f"{arm}-{seed}"),
        "data": {
            "store": str(workdir / "store"),
            "seq_len": 64,
            "val_fraction": 0.05,
            "domains": {
                n: {"sources": [{"path": str(workdir / "corpus" / f"{n}.jsonl")}]}
                for n in ("noise", "pattern", "markov")
            },
        },
        "tokenizer": {"vocab_size": 320, "min_frequency": 2},
        "model": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128},
        "mixture": {"mixer": {"name": "static", "weights": "uniform"}, "controller": controller, "on_cap": "warn"},
        "curriculum": {"order": {"name": "random"}},
        "schedule": {"name": "wsd", "peak_lr": 3e-3, "warmup_steps": 20, "decay_fraction": 0.2, "final_lr_ratio": 0.1},
        "training": {
            "steps": steps,
            "global_batch_size": 16,
            "micro_batch_size": 16,
            "log_every_steps": 10,
            "eval_every_steps": None,
            "eval_sequences_per_domain": 32,
            "trackers": ["jsonl"],
        },
        "checkpoint": {"every_steps": None},
        "averaging": {"snapshots": None},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "bench" / "controller-synthetic")
    args = parser.parse_args()

    from curriculum.store.prepare import prepare_store
    from recipes.loading import recipe_from_dict
    from tools.train.pretrain import train
    from tools.train.trackers import read_metrics

    work = args.workdir.resolve()
    print(harness.header("controller (b): ADO vs static on noise / pattern / order-2 Markov"))
    if not (work / "store" / "manifest.json").exists():
        write_corpus(work / "corpus")
        prepare_store(recipe_from_dict(recipe(work, "static", 0, args.steps)), show_progress=False)
    rows, trajectories, overheads = [], {}, []
    for seed in args.seeds:
        for arm in ("static", "ado"):
            raw = recipe(work, arm, seed, args.steps)
            shutil.rmtree(raw["run_dir"], ignore_errors=True)
            started = time.perf_counter()
            summary = train(recipe_from_dict(raw), show_progress=False)
            wall = time.perf_counter() - started
            metrics = read_metrics(Path(raw["run_dir"]))
            updates = [r for r in metrics if "control/update" in r]
            final = {n: updates[-1][f"control/{n}/weight"] for n in ("noise", "pattern", "markov")} if updates else None
            overheads.append((arm, sum(r["control/seconds"] for r in updates), wall, len(updates)))
            if arm == "ado" and seed == args.seeds[0]:
                trajectories = {r["control/update"]: r for r in updates}
            rows.append((seed, arm, summary["val_loss"], final, wall))
    print(
        "| seed | arm | val noise | val pattern | val markov | val mean | final weights noise/pattern/markov | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for seed, arm, val, final, wall in rows:
        weights = "uniform" if final is None else " / ".join(f"{final[n]:.3f}" for n in ("noise", "pattern", "markov"))
        mean = np.mean(list(val.values()))
        print(
            f"| {seed} | {arm} | {val['noise']:.4f} | {val['pattern']:.4f} | {val['markov']:.4f} | {mean:.4f} | {weights} | {wall:.0f} |"
        )
    from recipes.sweep.stats import paired

    val = {(seed, arm): v for seed, arm, v, _, _ in rows}
    print()
    print("| domain | ado - static held-out loss: mean [95% paired t-interval] | per seed |")
    print("|---|---|---|")
    for n in ("noise", "pattern", "markov"):
        d = np.array([val[(s, "ado")][n] - val[(s, "static")][n] for s in args.seeds])
        print(f"| {n} | {paired(d).text(4)} | {', '.join(f'{x:+.4f}' for x in d)} |")
    print()
    print("| arm | updates | time in updates (reduce + fit + rounding) | wall of the run | share |")
    print("|---|---|---|---|---|")
    for arm, spent, wall, n in overheads:
        if n:
            print(f"| {arm} | {n} | {spent:.3f} s | {wall:.0f} s | {spent / wall:.2%} |")
    print()
    print("| update after step | noise | pattern | markov | loss noise | loss pattern | loss markov |")
    print("|---|---|---|---|---|---|---|")
    for step, r in sorted(trajectories.items()):
        print(
            f"| {step} | "
            + " | ".join(f"{r[f'control/{n}/weight']:.3f}" for n in ("noise", "pattern", "markov"))
            + " | "
            + " | ".join(f"{r.get(f'control/{n}/loss', float('nan')):.3f}" for n in ("noise", "pattern", "markov"))
            + " |"
        )


if __name__ == "__main__":
    main()
