"""Train the CPU runs the schedule-planner benchmark (benchmarks/schedule_fit.py) fits and predicts.

The testbed recipe (recipes/presets/testbed-dial.yaml: 0.17M-parameter Llama on the quality-dial
corpus, 240 steps of 32 x 128 tokens) under LR schedules of the same peak (3e-3, 20 warmup steps):
three to fit on (constant, cosine to 1%, WSD 20% 1-sqrt to 1%: the paper's fit trio), three held
out, and a 2x longer cosine, in random order; the trio and one held-out one in ascending quality
order (does the fixed-data assumption hold under a curriculum?), and the same four with end-of-training
upsampling (`upsample` mixer: the last 20% of steps, where the WSD decay sits, draw half their
sequences from the held-out-clean domain, which is otherwise never trained on: a mixture that changes
late). Seed 0; the seed-to-seed spread
comes from the wsm-vs-wsd grid (recipes/presets/grids/wsm-vs-wsd.yaml), whose constant and WSD
runs are these recipes at seeds 0-2. Training loss is logged every 4 steps and validation every 20,
so every run has a dense curve. Finished runs are skipped.

    python benchmarks/schedule_runs.py [--only random|ascending|upsample] [--seeds 0]

Build the corpus and store first (as the testbed grids do): see BENCHMARKS.md, "Schedule planner".
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from recipes.loading import apply_overrides, read_recipe_yaml, recipe_from_dict, resolve_recipe_path
from tools.train.pretrain import train

ROOT = Path("runs/planner-bench")
PEAK = 0.003
WARM = 20
SCHEDULES: dict[str, dict] = {
    # the fit trio (the multi-power-law paper fits constant, cosine and a two-stage/WSD run)
    "constant": {"name": "constant"},
    "cosine": {"name": "cosine", "final_lr_ratio": 0.01},
    "wsd": {"name": "wsd", "decay_fraction": 0.2, "decay_shape": "1-sqrt", "final_lr_ratio": 0.01},
    # held out
    "wsd-linear-third": {"name": "wsd", "decay_fraction": 0.3, "decay_shape": "linear", "final_lr_ratio": 0.33},
    "wsd-cosine-10": {"name": "wsd", "decay_fraction": 0.1, "decay_shape": "cosine", "final_lr_ratio": 0.1},
    "linear-zero": {"name": "linear", "final_lr_ratio": 0.0},
}
LONG = {"cosine-long": ({"name": "cosine", "final_lr_ratio": 0.01}, 480)}  # 2x: 3x did not fit the CPU budget
ASCENDING = ("constant", "cosine", "wsd", "wsd-linear-third")  # the trio and one held out: the CPU budget
# Half clean text in the tail: 48 steps x 32 x 0.5 = 768 of the 1,076 clean training sequences, so none repeats.
UPSAMPLE = "{name: upsample, base: {dial: 1.0, clean: 0.0}, tail: {dial: 0.5, clean: 0.5}, tail_fraction: 0.2}"
FIT = ("constant", "cosine", "wsd")


def run_one(order: str, label: str, schedule: dict, steps: int, seed: int) -> None:
    run_dir = ROOT / order / label / f"seed-{seed}"
    if (run_dir / "final").is_dir():
        return
    raw = read_recipe_yaml(resolve_recipe_path("testbed-dial"))
    mix = [f"mixture.mixer={UPSAMPLE}"] if order == "upsample" else []
    raw = apply_overrides(
        raw,
        [
            *mix,
            f"run_dir={run_dir}",
            f"seed={seed}",
            f"curriculum.order={{name: {'random' if order == 'upsample' else order}}}",
            f"schedule={dict(schedule, peak_lr=PEAK, warmup_steps=WARM)}",
            f"training.steps={steps}",
            "training.log_every_steps=4",
            "training.eval_every_steps=20",
            "mixture.on_cap=warn",
            "averaging.every_steps=12",
        ],
    )
    recipe = recipe_from_dict(raw, source=f"schedule bench {order}/{label}/seed-{seed}")
    began = time.perf_counter()
    train(recipe, overwrite=run_dir.exists(), show_progress=False)
    print(f"{order:9s} {label:18s} seed {seed}: {time.perf_counter() - began:5.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["random", "ascending", "upsample"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    torch.set_num_threads(1)  # two shared cores: at 2 threads beside another job a run took 300 s, at 1 thread 40 s
    plan = []  # seed 0 of both orders first: the fit and the curriculum table need only those
    for seed in args.seeds:
        for order in ("random", "ascending", "upsample"):
            if args.only not in (None, order) or (order != "random" and seed != 0):
                continue
            labels = tuple(SCHEDULES) if order == "random" else ASCENDING
            plan += [(order, label, SCHEDULES[label], 240, seed) for label in labels]
            if seed == 0 and order == "random":
                plan += [(order, label, s, n, 0) for label, (s, n) in LONG.items()]
    for order, label, schedule, steps, seed in plan:
        run_one(order, label, schedule, steps, seed)


if __name__ == "__main__":
    main()
