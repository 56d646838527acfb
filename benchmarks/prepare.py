"""`prepare` throughput per core against raw `tokenizers` `encode_batch`, and scaling from 1 to 2 cores.

On the shared corpus through the `shared-baseline` preset's data section (7 domains, 14 gzip
files, so 14 units), with one fixed tokenizer (trained once, first) so every arm tokenizes the
same texts identically. Every arm runs in a fresh process; arms are alternated over
``--repeats`` rounds and the table shows the median seconds and the spread.

Arms:
- ``encode`` (baseline): the texts already in memory, `Tokenizer.encode_batch` on one thread.
- ``encode_fast`` (baseline): the same with `encode_batch_fast` (no character offsets), which
  is what `prepare` calls.
- ``read+encode`` (baseline): gzip + `json.loads` + `encode_batch` on one thread.
- ``prepare/1``: `prepare` with one worker (one tokenizer thread), scorers off: the data path
  (read, validation split, tokenize, sort, pack, write shards, merge, manifest).
- ``prepare/1+score``: the same with the preset's scorers (heuristic; field for forum).
- ``prepare/2``: two worker processes, scorers off.

Then `currimix plan`'s report on the ``prepare/1+score`` store: the previous report (one
`plan.batch` per sampled step, at most 20,000 steps, over in-memory score and quantile arrays;
copied here as the baseline) against the report computed from the allocation, at the preset's
690 steps and at 10^6 steps.

Run: ``python benchmarks/prepare.py [--repeats 3]`` (about 5-8 minutes on 2 busy cores);
``--quick``: one round and the report at 690 steps only (a set-up check; 6 minutes at load 9 on 2 cores). The corpus is
``<repo>/../shared/data`` (``$CURRIMIX_BENCH_DATA`` overrides it, see `benchmarks/harness.py`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `benchmarks.*` from a checkout

from benchmarks import harness  # noqa: E402

ARMS = ("encode", "encode_fast", "read+encode", "prepare/1", "prepare/1+score", "prepare/2")


def recipe(store: Path, tokenizer: Path | None, scorers: bool, workers: int):
    from recipes.loading import load_recipe

    overrides = [f"data.store={store}", f"data.num_proc={workers}", f"run_dir={store.parent / 'run'}"]
    loaded = load_recipe(REPO / "recipes" / "presets" / "shared-baseline.yaml", overrides)
    raw = loaded.model_dump(mode="json")
    for domain in raw["data"]["domains"].values():
        for source in domain["sources"]:
            source["path"] = str(harness.preset_path(source["path"]))  # preset paths are relative to the repo
        if not scorers:
            domain["scorer"] = None
    if tokenizer is not None:
        raw["tokenizer"] = {"path": str(tokenizer)}
    from recipes.loading import recipe_from_dict

    return recipe_from_dict(raw)


def shared_sources() -> list[Path]:
    return sorted(harness.data_dir().rglob("*.gz"))


def child(arm: str, work: Path) -> dict:
    """One arm in this (fresh) process; returns seconds, tokens and peak RSS."""
    from tokenizers import Tokenizer

    tokenizer_dir = work / "tokenizer"
    texts_file = work / "texts.json"
    if arm in ("encode", "encode_fast", "read+encode"):
        tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        if arm in ("encode", "encode_fast"):
            texts = json.loads(texts_file.read_text())
            started, cpu_before = time.perf_counter(), cpu_now()
        else:
            started, cpu_before = time.perf_counter(), cpu_now()
            texts = []
            for path, fields in json.loads((work / "files.json").read_text()):
                with gzip.open(path, "rt", encoding="utf-8") as fh:
                    for line in fh:
                        if line.strip():
                            row = json.loads(line)
                            texts.append("\n\n".join(str(row.get(f) or "") for f in fields))
        tokens = 0
        encode = tok.encode_batch_fast if arm == "encode_fast" else tok.encode_batch
        for i in range(0, len(texts), 1000):
            tokens += sum(len(e.ids) for e in encode(texts[i : i + 1000], add_special_tokens=False))
        seconds = time.perf_counter() - started
        docs = len(texts)
    else:
        from curriculum.store.prepare import prepare_store

        workers = 2 if arm == "prepare/2" else 1
        store = work / f"store-{arm.replace('/', '-')}"
        r = recipe(store, tokenizer_dir, scorers=arm.endswith("+score"), workers=workers)
        started, cpu_before = time.perf_counter(), cpu_now()
        built = prepare_store(r, overwrite=True, show_progress=False)
        seconds = time.perf_counter() - started
        docs = sum(s["documents"] for split in built.meta["stats"].values() for s in split.values())
        tokens = sum(
            s["tokens"] + s["dropped_tokens"] for split in built.meta["stats"].values() for s in split.values()
        )
        tokens -= docs  # EOS tokens are not tokenizer output
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "arm": arm,
        "seconds": seconds,
        "cpu_seconds": cpu_now() - cpu_before,
        "docs": docs,
        "tokens": tokens,
        "rss_mb": peak_rss_mb(),
        "child_rss_mb": kids,
    }


def cpu_now() -> float:
    """CPU seconds of this process and its finished children (workers), user + system."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it is not inherited across exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def old_report_seconds(plan) -> float:
    """The previous `plan_summary` loop (every sampled step's batch), timed; the baseline."""
    import numpy as np

    from tools.train.plan_report import QUINTILES, timeline_segments, within_domain_quantiles

    started = time.perf_counter()
    split = plan.store.train
    score = np.asarray(split.score[:])  # the old store held these in memory
    quantile = within_domain_quantiles(split)
    stride = max(1, -(-plan.total_steps // 20_000))
    lr_tokens = np.zeros(QUINTILES)
    n = len(plan.domains.names)
    for _, a, b in timeline_segments(plan):
        score_sum, quant_sum, seen = np.zeros(n), np.zeros(n), np.zeros(n)
        for step in range(a, b, stride):
            batch = plan.batch(step)
            q = quantile[batch.sequence_ids]
            np.add.at(score_sum, batch.domains, score[batch.sequence_ids])
            np.add.at(quant_sum, batch.domains, q)
            np.add.at(seen, batch.domains, 1)
            bins = np.minimum((q * QUINTILES).astype(int), QUINTILES - 1)
            np.add.at(lr_tokens, bins, plan.lr(step) * plan.store.seq_len * stride)
    return time.perf_counter() - started


def report_child(work: Path, steps_list: tuple[int, ...]) -> dict:
    import warnings

    from tools.train.plan import build_plan
    from tools.train.plan_report import plan_summary

    out = {}
    for steps in steps_list:
        r = recipe(work / "store-prepare-1+score", work / "tokenizer", scorers=True, workers=1)
        raw = r.model_dump(mode="json")
        raw["training"]["steps"] = steps
        raw["mixture"]["max_epochs"] = {"default": 1e9}
        raw["averaging"] = {"snapshots": None}
        from recipes.loading import recipe_from_dict

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            plan = build_plan(recipe_from_dict(raw))
            out[f"build {steps}"] = time.perf_counter() - started
            started = time.perf_counter()
            plan_summary(plan)
            out[f"new {steps}"] = time.perf_counter() - started
            out[f"old {steps}"] = old_report_seconds(plan)
    return out


def setup(work: Path) -> None:
    """The fixed tokenizer (trained by prepare once) and the texts prepare reads (for the baselines)."""
    import pyarrow as pa  # noqa: F401

    from curriculum.store.prepare import plan_units, prepare_store
    from curriculum.store.prepare.readers import read_unit

    r = recipe(work / "tok-store", None, scorers=False, workers=1)
    prepare_store(r, tokenizer_only=True, show_progress=False)
    (work / "tok-store" / "tokenizer").rename(work / "tokenizer")
    texts, files = [], []
    for unit in plan_units(r.data):
        source = r.data.domains[unit["domain"]].sources[unit["source"]]
        table = read_unit(source, unit, source_name="x")
        texts.extend(table.column("text").to_pylist())
        if unit["format"] == "json" and not source.split_pattern:
            files.append([unit["files"][0], source.text_fields])
    (work / "texts.json").write_text(json.dumps(texts))
    (work / "files.json").write_text(json.dumps(files))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round, report at 690 steps only (a set-up check)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (stores, tokenizer) afterwards")
    parser.add_argument("--child", choices=(*ARMS, "report"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--report-steps", type=int, nargs="+", default=[690, 1_000_000], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.report_steps = 1, [690]
    if args.child:
        if args.child == "report":
            print(json.dumps(report_child(args.work, tuple(args.report_steps))))
        else:
            print(json.dumps(child(args.child, args.work)))
        return
    harness.require_data()
    print(harness.header("prepare throughput per core vs encode_batch" + (" (--quick)" if args.quick else "")))
    work = Path(tempfile.mkdtemp(prefix="currimix-bench-prepare-"))
    try:
        run_arms(args, work)
    finally:
        if args.keep:
            print(f"(work folder {work}; delete it when done)")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_arms(args: argparse.Namespace, work: Path) -> None:
    setup(work)
    env = {**os.environ, "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    results: dict[str, list[dict]] = {a: [] for a in ARMS}
    for _ in range(args.repeats):
        for arm in ARMS:  # alternated, so load changes on the shared machine hit every arm alike
            out = subprocess.run(
                [sys.executable, __file__, "--child", arm, "--work", str(work)], env=env, capture_output=True, text=True
            )
            if out.returncode:
                sys.exit(f"arm {arm} failed:\n{out.stderr[-3000:]}")
            results[arm].append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = statistics.median(r["seconds"] for r in results["encode"])
    tokens = results["encode"][0]["tokens"]
    print(
        f"shared corpus via shared-baseline: {results['encode'][0]['docs']:,} documents, {tokens:,} tokens; "
        f"{args.repeats} alternated rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"{'arm':<18}{'median s':>10}{'min-max s':>14}{'tokens/s':>12}{'vs encode':>11}{'per core':>10}"
        f"{'CPU s':>8}{'tokens/CPU-s':>14}{'vs encode':>11}{'RSS MB':>9}{'worker MB':>11}"
    )
    base_cpu = statistics.median(r["cpu_seconds"] for r in results["encode"])
    for arm in ARMS:
        secs = [r["seconds"] for r in results[arm]]
        med = statistics.median(secs)
        cores = 2 if arm == "prepare/2" else 1
        tok = results[arm][0]["tokens"]
        cpu = statistics.median(r["cpu_seconds"] for r in results[arm])
        print(
            f"{arm:<18}{med:>10.2f}{f'{min(secs):.2f}-{max(secs):.2f}':>14}{tok / med:>12,.0f}"
            f"{base / med * tok / tokens:>11.2f}{base / med * tok / tokens / cores:>10.2f}"
            f"{cpu:>8.1f}{tok / cpu:>14,.0f}{base_cpu / cpu * tok / tokens:>11.2f}"
            f"{results[arm][0]['rss_mb']:>9.0f}{results[arm][0]['child_rss_mb']:>11.0f}"
        )
    steps_args = ["--report-steps", *map(str, args.report_steps)]
    out = subprocess.run(
        [sys.executable, __file__, "--child", "report", "--work", str(work), *steps_args],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        sys.exit(f"report failed:\n{out.stderr[-3000:]}")
    rep = json.loads(out.stdout.strip().splitlines()[-1])
    print("\n`currimix plan` report on the prepare/1+score store (shared-baseline recipe)")
    print(f"{'steps':>10}{'plan build s':>14}{'old report s':>14}{'new report s':>14}{'speed-up':>10}")
    for steps in args.report_steps:
        old, new = rep[f"old {steps}"], rep[f"new {steps}"]
        print(f"{steps:>10,}{rep[f'build {steps}']:>14.2f}{old:>14.2f}{new:>14.2f}{old / new:>10.0f}")


if __name__ == "__main__":
    main()
