"""Benchmark: what in-loop evaluation costs the quickstart (sets with bits per byte, and probes).

The quickstart recipe (`recipes/presets/quickstart.yaml`, random order) is trained on its own
corpus (built from this Python installation, as `currimix quickstart` builds it) with in-loop
evaluation on (`evaluation.in_loop: true`: the `val` set with bits per byte and the three shipped
probe sets, at each of the 3 eval steps) and off, alternating which goes first, in the same process.
Reported: the wall time of `train` in each mode (median over rounds), the time spent inside the
loop's `validate` and in opening the evaluator (sets' byte counts, probe sets built and tokenized),
as a share of the run without evaluation, and as a share of the rest of the same run (robust to a
machine whose load changes between runs). The target is <= 5% (issue 20).

    python benchmarks/eval_cost.py [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import cache_dir, header  # noqa: E402


def build_inputs(root: Path) -> list[str]:
    """The quickstart's corpus, dial and store under ``root`` (once); the recipe overrides that use them."""
    from curriculum.store.prepare import prepare_store
    from curriculum.store.reader import is_complete_store
    from recipes.loading import load_recipe, preset_path
    from tools.corpus import build_corpus
    from tools.testbed import QualityDialConfig, build_quality_dial

    dial = root / "dial"
    if not (dial / "clean.jsonl").is_file():
        code = build_corpus(root / "corpus")["code"]
        build_quality_dial(
            QualityDialConfig(source=str(code), out=str(dial), eval_documents=150, reference_documents=0)
        )
    overrides = [
        f"data.store={root / 'store'}",
        f"data.domains.dial.sources.0.path={dial / 'dial.jsonl'}",
        f"data.domains.clean.sources.0.path={dial / 'clean.jsonl'}",
    ]
    if not is_complete_store(root / "store"):
        prepare_store(load_recipe(str(preset_path("quickstart")), overrides), show_progress=False)
    return overrides


def timed_run(overrides: list[str], run_dir: Path, in_loop: bool, steps: int | None) -> dict[str, float]:
    """Train once; wall seconds of `train`, of the loop's `validate` calls and of opening the evaluator."""
    import tools.train.pretrain as pretrain
    from recipes.loading import load_recipe, preset_path
    from tools.evaluate.evaluator import Evaluator

    shutil.rmtree(run_dir, ignore_errors=True)
    extra = [f"run_dir={run_dir}", f"evaluation.in_loop={str(in_loop).lower()}"]
    if steps:
        extra += [f"training.steps={steps}", f"training.eval_every_steps={steps // 3}", "averaging.every_steps=2"]
    recipe = load_recipe(str(preset_path("quickstart")), overrides + extra)
    spent = {"validate": 0.0, "open": 0.0}
    validate, open_ = pretrain.validate, Evaluator.open.__func__

    def timed_validate(run, step):
        started = time.perf_counter()
        try:
            return validate(run, step)
        finally:
            spent["validate"] += time.perf_counter() - started

    def timed_open(cls, *args, **kwargs):
        started = time.perf_counter()
        try:
            return open_(cls, *args, **kwargs)
        finally:
            spent["open"] += time.perf_counter() - started

    pretrain.validate, Evaluator.open = timed_validate, classmethod(timed_open)
    try:
        started = time.perf_counter()
        pretrain.train(recipe, show_progress=False)
        total = time.perf_counter() - started
    finally:
        pretrain.validate, Evaluator.open = validate, classmethod(open_)
    return {"train": total, **spent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="Pairs of runs (on/off), alternating which goes first.")
    parser.add_argument("--quick", action="store_true", help="One round of 30-step runs: a set-up check.")
    args = parser.parse_args()
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    root = cache_dir("eval_cost")
    overrides = build_inputs(root)
    rounds, steps = (1, 30) if args.quick else (args.rounds, None)
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for r in range(rounds):
        for in_loop in (True, False) if r % 2 == 0 else (False, True):
            runs[in_loop].append(timed_run(overrides, root / f"run-{int(in_loop)}", in_loop, steps))
            done = runs[in_loop][-1]
            print(
                f"round {r + 1}, evaluation {'on' if in_loop else 'off'}: "
                + ", ".join(f"{k} {v:.2f} s" for k, v in done.items()),
                flush=True,
            )
    med = {mode: {k: statistics.median(x[k] for x in runs[mode]) for k in runs[mode][0]} for mode in runs}
    base = med[False]["train"]
    print(header("in-loop evaluation cost on the quickstart (random order, 240 steps, 3 evaluations)"))
    print(
        f"rounds: {rounds}, medians; each run's train seconds: on {[round(x['train'], 1) for x in runs[True]]}, "
        f"off {[round(x['train'], 1) for x in runs[False]]}"
    )
    print(f"{'mode':<34}{'train s':>9}{'validate s':>12}{'open s':>9}{'vs off':>9}")
    print(f"{'evaluation off (in_loop: false)':<34}{base:>9.2f}{'-':>12}{'-':>9}{'1.000':>9}")
    on = med[True]
    print(
        f"{'evaluation on (val + bpb + probes)':<34}{on['train']:>9.2f}{on['validate']:>12.2f}{on['open']:>9.2f}"
        f"{on['train'] / base:>9.3f}"
    )
    share = (on["validate"] + on["open"]) / base
    print(f"evaluation time (validate + open) / training time without it: {share:.1%} (target <= 5%)")
    # The same share inside the runs with evaluation (evaluation and training interleaved in time, so a
    # busy machine slows both alike): evaluation / the rest of the same run.
    inside = [(x["validate"] + x["open"]) / (x["train"] - x["validate"] - x["open"]) for x in runs[True]]
    print(f"evaluation / the rest of the same run, per run: {', '.join(f'{v:.1%}' for v in inside)}")


if __name__ == "__main__":
    main()
