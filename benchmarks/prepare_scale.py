"""Memory and time of the data path as the corpus grows: `prepare`, and a training rank's store + plan.

Synthetic pre-tokenized corpora (bring-your-own-tokens `datasets` folders: 3 domains with
60/30/10 % of the documents, 16-112 random tokens each, a random float quality column) of
10^6 and 10^7 packed sequences (seq_len 8, so disk and time stay small; the per-sequence
arrays, orders and plan are what grow, and they are the same size at any seq_len). Each step
runs in a fresh process and reports its peak RSS (VmHWM) and, at its end, the anonymous and
file-backed parts of its RSS (reads from memory-mapped shards leave page-cache pages mapped:
they count in RSS but are shared and reclaimable, and bounded by the files' size).

- ``prepare``: `prepare_store` over the corpus, all local cores, fixed unit size (8 MB of
  arrow), so the number of units grows with the corpus and memory should not.
- ``rank``: what a training rank does at start: open the store, build the plan (an ascending
  curriculum: the orders come from the merged orders saved by `prepare`), then serve 100
  batches of 512 sequences at random steps, tokens included. Run twice: ``cold`` is the first
  start after `prepare`; ``warm`` the next one.
- ``rank/ties``: the same on a store whose scores all tie (no scorer): the first start computes
  the keyed tie-broken order once (O(sequences)) and saves it; later starts memory-map it.
- ``old rank`` (baseline, same run): what ranks did before the sharded store: load every
  per-sequence score whole and build each domain's ascending order in memory
  (`build_ordering` on a plain array: `stable_rank_order`'s lexsort with a keyed tie-break).
  Sequences inside one long document share its score, so these stores have ties.

Then a projection to 10^12 tokens from the measured per-unit costs.

Run: ``python benchmarks/prepare_scale.py [--sizes 1000000 10000000]`` (~5 min on 2 cores);
``--quick`` is ``--sizes 100000`` (a set-up check, ~35 s at load 9 on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `benchmarks.*` from a checkout

from benchmarks import harness  # noqa: E402

SEQ_LEN = 8
SHARES = {"web": 0.6, "code": 0.3, "math": 0.1}
UNIT_BYTES = 8 << 20
MEAN_DOC_TOKENS = 64


def memory_mb() -> dict[str, float]:
    """Peak RSS (VmHWM) and, now, its anonymous part and its file-backed part (pages of memory-mapped
    files that reads touched: page cache, shared and reclaimable, bounded by the files' size)."""
    fields = {"VmHWM": "rss_mb", "RssAnon": "anon_mb", "RssFile": "file_mb"}
    out = {}
    for line in open("/proc/self/status"):
        key = line.split(":")[0]
        if key in fields:
            out[fields[key]] = int(line.split()[1]) / 1024
    return out


def make_corpus(folder: Path, sequences: int, vocab: int) -> None:
    """Datasets folders whose tokens pack into about ``sequences`` sequences of SEQ_LEN."""
    import datasets
    import pyarrow as pa

    rng = np.random.default_rng(0)
    total_docs = int(sequences * SEQ_LEN / (MEAN_DOC_TOKENS + 1))
    for name, share in SHARES.items():
        n = int(total_docs * share)
        lengths = rng.integers(16, 113, size=n)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        values = rng.integers(2, vocab, size=int(offsets[-1]), dtype=np.int32)
        table = pa.table(
            {
                "input_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)),
                "quality": pa.array(rng.random(n)),
            }
        )
        datasets.Dataset(datasets.table.InMemoryTable(table)).save_to_disk(str(folder / name))


def recipe(corpus: Path, store: Path, tokenizer: Path, scored: bool):
    from recipes.loading import recipe_from_dict

    return recipe_from_dict(
        {
            "name": "scale",
            "run_dir": str(store.parent / "run"),
            "data": {
                "store": str(store),
                "seq_len": SEQ_LEN,
                "val_fraction": 0.001,
                "unit_bytes": UNIT_BYTES,
                "domains": {
                    n: {
                        "sources": [{"path": str(corpus / n), "tokens_field": "input_ids"}],
                        "scorer": {"name": "field", "field": "quality"} if scored else None,
                    }
                    for n in SHARES
                },
            },
            "tokenizer": {"path": str(tokenizer)},
            "mixture": {"mixer": {"name": "static", "weights": "natural"}, "max_epochs": {"default": 1e6}},
            "curriculum": {"order": {"name": "ascending"}},
            "schedule": {"name": "cosine", "peak_lr": 1e-3, "warmup_steps": 10},
            "training": {"steps": 100_000, "global_batch_size": 512, "micro_batch_size": 512},
        }
    )


def child(kind: str, corpus: Path, store: Path, tokenizer: Path, scored: bool) -> dict:
    r = recipe(corpus, store, tokenizer, scored)
    started = time.perf_counter()
    out: dict = {}
    if kind == "prepare":
        from curriculum.store.prepare import prepare_store

        built = prepare_store(r, show_progress=False)
        out["units"] = built.meta["units"]
        out["sequences"] = len(built.train)
        out["ties"] = all(v["ties"] for v in built.meta["orders"]["train"].values())
        out["merge_s"] = built.meta["merge_seconds"]
        out["tokens"] = sum(s["tokens"] for s in built.meta["stats"]["train"].values())
    elif kind == "rank":
        from curriculum.store.reader import TokenStore
        from tools.train.plan import build_plan

        plan = build_plan(r, TokenStore(store))
        out["ready_s"] = time.perf_counter() - started
        rng = np.random.default_rng(1)
        for step in rng.integers(0, plan.total_steps, size=100):
            batch = plan.batch(int(step))
            plan.store.train.sequences(batch.sequence_ids)
    else:  # the old rank start: every score loaded whole, each domain ordered in memory
        import json as _json

        from curriculum.orders import build_ordering
        from curriculum.permutation import derive_key
        from tools.train.plan import build_plan  # noqa: F401  (same imports as a rank: RSS compares data only)

        manifest = _json.loads((store / "manifest.json").read_text())
        for name in SHARES:
            parts = [
                np.load(store / "shards" / s["name"] / "train" / "score.npy")
                for s in manifest["shards"]
                if s["domain"] == name
            ]
            build_ordering({"name": "ascending"}, np.concatenate(parts), derive_key(r.seed, name))
        out["ready_s"] = time.perf_counter() - started
    out["seconds"] = time.perf_counter() - started
    out.update(memory_mb())
    import resource

    out["child_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


def run_child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--quick", action="store_true", help="--sizes 100000: a set-up check")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (corpora, stores) afterwards")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, corpus, store, tokenizer, scored = args.child
        print(json.dumps(child(kind, Path(corpus), Path(store), Path(tokenizer), scored == "1")))
        return
    if args.quick:
        args.sizes = [100_000]
    print(harness.header("data path memory and time vs corpus size" + (" (--quick)" if args.quick else "")))
    work = Path(tempfile.mkdtemp(prefix="currimix-bench-scale-"))
    try:
        rows = measure_sizes(args.sizes, work)
    finally:
        if args.keep:
            print(f"(work folder {work}; delete it when done)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(rows, args.sizes)
    if args.json:
        harness.write_json(
            args.json,
            {**harness.provenance(), "rows": [{"sequences": s, "step": label, **r} for s, label, r in rows]},
        )


def measure_sizes(sizes: list[int], work: Path) -> list[tuple[int, str, dict]]:
    """Every step of the table, each in a fresh process, for every corpus size."""
    from curriculum.tokenizer import train_bpe

    tokenizer = work / "tokenizer"
    made = train_bpe(iter(["a small sample of text to make a tokenizer folder"] * 50), 300, 1)
    made.save_pretrained(str(tokenizer))
    import datasets

    datasets.disable_progress_bars()
    rows = []
    for size in sizes:
        corpus = work / f"corpus-{size}"
        make_corpus(corpus, size, len(made))
        store = work / f"store-{size}"
        prep = run_child("prepare", str(corpus), str(store), str(tokenizer), "1")
        rows.append((size, "prepare", prep))
        for label in ("rank cold", "rank warm"):
            rows.append((size, label, run_child("rank", str(corpus), str(store), str(tokenizer), "1")))
        rows.append((size, "old rank (load + argsort)", run_child("old", str(corpus), str(store), str(tokenizer), "1")))
        if size == max(sizes):
            tied = work / f"store-ties-{size}"
            rows.append(
                (
                    size,
                    "prepare (no scorer: all ties)",
                    run_child("prepare", str(corpus), str(tied), str(tokenizer), "0"),
                )
            )
            for label in ("rank/ties cold", "rank/ties warm"):
                rows.append((size, label, run_child("rank", str(corpus), str(tied), str(tokenizer), "0")))
    return rows


def report(rows: list[tuple[int, str, dict]], sizes: list[int]) -> None:
    """The table and the projection to 10^12 tokens."""
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; seq_len {SEQ_LEN}; unit {UNIT_BYTES >> 20} MB"
    )
    print(
        f"{'target seqs':>12} {'step':<32}{'seconds':>9}{'ready s':>9}{'peak RSS MB':>13}{'anon MB':>9}{'file MB':>9}"
        f"{'worker MB':>11}{'units':>7}{'train seqs':>12}"
    )
    for size, label, r in rows:
        print(
            f"{size:>12,} {label:<32}{r['seconds']:>9.1f}{r.get('ready_s', float('nan')):>9.2f}{r['rss_mb']:>13.0f}"
            f"{r['anon_mb']:>9.0f}{r['file_mb']:>9.0f}"
            f"{r['child_rss_mb']:>11.0f}{r.get('units', ''):>7}{r.get('sequences', ''):>12}"
        )
    big = [r for s, label, r in rows if label == "prepare" and s == max(sizes)][0]
    tokens_per_unit = big["tokens"] / big["units"]
    unit_seconds = (big["seconds"] - big["merge_s"]) / big["units"] * min(os.cpu_count() or 1, big["units"])
    merge_per_seq = big["merge_s"] / big["sequences"]
    print(
        f"\nmeasured (packing path, pre-tokenized input): {tokens_per_unit:,.0f} tokens per {UNIT_BYTES >> 20} MB "
        f"unit in {unit_seconds:.2f} core-s ({tokens_per_unit / unit_seconds:,.0f} tokens/core-s); "
        f"merge of the orders {big['merge_s']:.1f} s for {big['sequences']:,} sequences "
        f"({merge_per_seq * 1e9:.0f} ns/sequence, one process)"
    )
    for seq_len in (2048,):
        sequences = 1e12 / seq_len
        print(
            f"projection to 10^12 tokens (seq_len {seq_len}, {sequences:.2e} sequences): packing "
            f"{1e12 / (tokens_per_unit / unit_seconds) / 3600:,.0f} core-hours; merge "
            f"{sequences * merge_per_seq:,.0f} s on one process"
        )


if __name__ == "__main__":
    main()
