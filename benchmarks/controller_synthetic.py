"""Benchmark (b): where does an online controller put its weight on three domains of known difficulty?

A synthetic corpus of three domains, generated here (no download):

- ``noise``: letters drawn uniformly at random: nothing to learn beyond the alphabet;
- ``pattern``: one short sentence repeated: learnt in a few steps, then nothing left to learn;
- ``markov``: an order-2 Markov chain over 12 letters with sparse random transitions (Dirichlet 0.2
  per context): learnable, slowly (144 contexts to learn).

A sensible controller moves weight to ``markov``. The same tiny Llama trains on each arm from the
same seed: ``static`` (uniform, the baseline, in the same run) and ADO from the uniform prior, once per
warmup (``ado-w20``: first update after step 20; ``ado-w60``: after 60, as the paper ignores its first
steps, when every loss falls fast). The table
gives each arm's final held-out loss per domain and the controller's weights at the end; a second
table the weight of each domain at every update (ADO, first seed). Wall time per arm is printed so
the controller's overhead can be read off (its updates are timed in the metrics too).

    python benchmarks/controller_synthetic.py [--seeds 0 1 2] [--steps 300] [--ado-warmups 20 60] [--skip-static]
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
    """``arm``: ``static`` or ``ado-w<N>`` (ADO, updates every 10 steps from step N on)."""
    warmup = int(arm.removeprefix("ado-w")) if arm.startswith("ado-w") else None
    controller = {"name": "ado", "every_steps": 10, "warmup_steps": warmup} if warmup is not None else None
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
    parser.add_argument("--ado-warmups", type=int, nargs="+", default=[20, 60], help="one ADO arm per warmup")
    parser.add_argument("--skip-static", action="store_true", help="reuse static runs already in the workdir")
    parser.add_argument("--workdir", type=Path, default=None, help="default: <benchmark cache>/controller-synthetic")
    args = parser.parse_args()

    from curriculum.store.prepare import prepare_store
    from recipes.loading import recipe_from_dict
    from recipes.sweep.stats import paired
    from tools.train.pretrain import train
    from tools.train.trackers import read_metrics

    work = (args.workdir or harness.cache_dir("controller-synthetic")).resolve()
    print(harness.header("controller (b): ADO vs static on noise / pattern / order-2 Markov"))
    if not (work / "store" / "manifest.json").exists():
        write_corpus(work / "corpus")
        prepare_store(recipe_from_dict(recipe(work, "static", 0, args.steps)), show_progress=False)
    names = ("noise", "pattern", "markov")
    arms = ["static", *(f"ado-w{w}" for w in args.ado_warmups)]
    rows, trajectories, overheads = [], {}, []
    for seed in args.seeds:
        for arm in arms:
            raw = recipe(work, arm, seed, args.steps)
            run_dir = Path(raw["run_dir"])
            if arm == "static" and args.skip_static and (run_dir / "summary.json").exists():
                summary, wall = json.loads((run_dir / "summary.json").read_text()), float("nan")
            else:
                shutil.rmtree(run_dir, ignore_errors=True)
                started = time.perf_counter()
                summary = train(recipe_from_dict(raw), show_progress=False)
                wall = time.perf_counter() - started
            updates = [r for r in read_metrics(run_dir) if "control/update" in r]
            final = {n: updates[-1][f"control/{n}/weight"] for n in names} if updates else None
            if updates:
                overheads.append((f"{arm} seed {seed}", sum(r["control/seconds"] for r in updates), wall, len(updates)))
                if seed == args.seeds[0]:
                    trajectories[arm] = {r["control/update"]: r for r in updates}
            rows.append((seed, arm, summary["val_loss"], final, wall))
    print(
        "| seed | arm | val noise | val pattern | val markov | val mean | final weights noise/pattern/markov | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for seed, arm, val, final, wall in rows:
        weights = "uniform" if final is None else " / ".join(f"{final[n]:.3f}" for n in names)
        cells = " | ".join(f"{val[n]:.4f}" for n in names)
        print(f"| {seed} | {arm} | {cells} | {np.mean(list(val.values())):.4f} | {weights} | {wall:.0f} |")
    val = {(seed, arm): v for seed, arm, v, _, _ in rows}
    print("\n| arm | domain | arm - static held-out loss: mean [95% paired t-interval] | per seed |")
    print("|---|---|---|---|")
    for arm in arms[1:]:
        for n in names:
            d = np.array([val[(s, arm)][n] - val[(s, "static")][n] for s in args.seeds])
            print(f"| {arm} | {n} | {paired(d).text(4)} | {', '.join(f'{x:+.4f}' for x in d)} |")
    print("\n| run | updates | time in updates (reduce + fit + rounding) | wall of the run | share |")
    print("|---|---|---|---|---|")
    for what, spent, wall, n in overheads:
        print(f"| {what} | {n} | {spent:.3f} s | {wall:.0f} s | {spent / wall:.2%} |")
    for arm, trajectory in trajectories.items():
        print(f"\n{arm}, seed {args.seeds[0]}: the weights chosen at each update and the last window's mean losses\n")
        print("| update after step | noise | pattern | markov | loss noise | loss pattern | loss markov |")
        print("|---|---|---|---|---|---|---|")
        for step, r in sorted(trajectory.items()):
            weights = " | ".join(f"{r[f'control/{n}/weight']:.3f}" for n in names)
            losses = " | ".join(f"{r.get(f'control/{n}/loss', float('nan')):.3f}" for n in names)
            print(f"| {step} | {weights} | {losses} |")


if __name__ == "__main__":
    main()
