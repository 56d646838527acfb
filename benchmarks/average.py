"""Benchmark: average K=6 fp32 checkpoints of a ~374M Llama (9 GB) with `tools.average`, side by
side with a naive load-all-and-average script and mergekit's linear merge.

Every job runs in its own process (`benchmarks/average_run.py`, or ``mergekit-yaml`` from its own
virtual environment), timed from launch to exit, imports included. While it runs, the parent
samples ``/proc/<pid>/status`` of the job and its children every 5 ms:

- **private** memory is ``RssAnon`` (anonymous pages: what the process allocated itself), the
  number the targets are about;
- **total RSS** (peak ``VmRSS``, and ``ru_maxrss`` from ``wait4``) also counts file pages that
  memory-mapping maps into the process, which the kernel can drop at will.

"Cold" runs follow ``echo 3 > /proc/sys/vm/drop_caches`` (or, without permission or with
``--quick``, a ``POSIX_FADV_DONTNEED`` of every input file); "warm" runs follow a full read of the inputs.

    python benchmarks/average.py [--quick] [--data DIR] [--mergekit-venv DIR] [--skip mergekit ...]

The inputs are built on first use (`benchmarks/average_build.py`) under the benchmark cache
(``<cache>/average/full``, 9 GB; ``--quick``: two ~30 MB checkpoints of a 7M Llama in
``<cache>/average/quick``, one round: a set-up check, ~1 minute once the side-car exists).
mergekit 0.1.5 is the ``mergekit`` side-car of `benchmarks/harness.py`: a venv installed on first use from the pins in
``benchmarks/sidecars/mergekit.txt`` (torch through the repo's ``constraints.txt``, so the CPU build).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `benchmarks.*` from a checkout, however the script is started

from benchmarks import harness  # noqa: E402
from benchmarks.average_build import BENCH_CONFIG, QUICK_CONFIG, build_checkpoints  # noqa: E402

GIB = 2**30


def drop_caches(files: list[Path], everything: bool = True) -> str:
    """Evict the inputs from the page cache (``everything``: the whole machine's, where permitted); returns how."""
    os.sync()
    try:
        if not everything:
            raise PermissionError
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "drop_caches"
    except OSError:
        for path in files:
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
        return "fadvise(DONTNEED)"


def warm(files: list[Path]) -> None:
    buf = bytearray(16 << 20)
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS", "RssAnon", "RssFile", "VmHWM")):
                    name, value = line.split(":")
                    out[name] = int(value.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def _tree(pid: int) -> list[int]:
    pids, i = [pid], 0
    while i < len(pids):
        try:
            for task in os.listdir(f"/proc/{pids[i]}/task"):
                with open(f"/proc/{pids[i]}/task/{task}/children") as f:
                    pids += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
        i += 1
    return pids


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``cmd``; wall time, peak private (RssAnon) and total RSS of its process tree, its JSON output."""
    peak = {"anon": 0, "rss": 0, "file_at_peak_rss": 0}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            stats = [_status(p) for p in _tree(proc.pid)]
            anon = sum(s.get("RssAnon", 0) for s in stats)
            rss = sum(s.get("VmRSS", 0) for s in stats)
            peak["anon"] = max(peak["anon"], anon)
            peak["hwm"] = max(peak.get("hwm", 0), stats[0].get("VmHWM", 0) if stats else 0)
            if rss > peak["rss"]:
                peak["rss"], peak["file_at_peak_rss"] = rss, sum(s.get("RssFile", 0) for s in stats)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}):\n{err[-3000:]}")
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        result = {}
    # VmHWM is the kernel's exact peak RSS of the main process; the tree sum catches children.
    return {"wall_s": wall, "peak_anon": peak["anon"], "peak_rss": max(peak["rss"], peak.get("hwm", 0)), **result}


def mergekit_cmd(venv: Path, inputs: list[Path], output: Path, workdir: Path) -> list[str]:
    lines = ["merge_method: linear", "dtype: float32", "models:"]
    for p in inputs:
        lines += [f"  - model: {p}", "    parameters:", "      weight: 1.0"]
    config = workdir / "mergekit-linear.yml"
    config.write_text("\n".join(lines) + "\n")
    return [str(venv / "bin" / "mergekit-yaml"), str(config), str(output)]


def machine() -> str:
    import torch

    return f"{harness.machine()}, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="folder of the inputs (default: under the benchmark cache)")
    parser.add_argument("-k", type=int, help="checkpoints to average (default 6; --quick 2)")
    parser.add_argument("--mergekit-venv", type=Path, help="a venv with mergekit-yaml (default: the side-car)")
    parser.add_argument("--skip", nargs="*", default=[], help="jobs to skip: ours_cold naive mergekit")
    parser.add_argument(
        "--repeat", type=int, help="rounds of every job; the table shows medians (default 3; --quick 1)"
    )
    parser.add_argument("--quick", action="store_true", help="a 7M model, K=2, one round: checks the set-up")
    parser.add_argument("--json", type=Path, help="also write the medians here")
    args = parser.parse_args()
    args.k = args.k or (2 if args.quick else 6)
    args.repeat = args.repeat or (1 if args.quick else 3)
    config = QUICK_CONFIG if args.quick else BENCH_CONFIG
    args.data = args.data or harness.cache_dir("average", "quick" if args.quick else "full")
    if "mergekit" not in args.skip and args.mergekit_venv is None:
        args.mergekit_venv = harness.sidecar("mergekit")
    print(harness.header("checkpoint averaging: streaming vs load-all vs mergekit" + (" (--quick)" * args.quick)))

    inputs = build_checkpoints(args.data, args.k, config)
    files = [p / "model.safetensors" for p in inputs]
    total = sum(f.stat().st_size for f in files)
    work = args.data / "outputs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    py = [sys.executable, "-m", "benchmarks.average_run"]
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=pythonpath)
    print(machine(), flush=True)
    print(f"inputs: {len(files)} x {files[0].stat().st_size / 1e9:.2f} GB = {total / 1e9:.2f} GB", flush=True)

    runs: dict[str, list[dict]] = {}

    def run(name: str, cmd: list[str], cold: bool, job_env: dict[str, str] = env) -> None:
        shutil.rmtree(work / "out", ignore_errors=True)
        if cold:
            how = drop_caches(files, everything=not args.quick)
        else:
            warm(files)
            how = "warm"
        load = os.getloadavg()[0]
        r = {**measure(cmd, job_env), "cache": how, "load": load}
        runs.setdefault(name, []).append(r)
        print(
            f"{name:16s} {how:12s} wall {r['wall_s']:6.2f} s  private {r['peak_anon'] / GIB:5.2f} GiB  "
            f"RSS {r['peak_rss'] / GIB:5.2f} GiB  load {load:4.2f}  "
            f"{json.dumps({k: v for k, v in r.items() if k.endswith('_s') and k != 'wall_s'})}",
            flush=True,
        )

    has_mergekit = args.mergekit_venv is not None and (args.mergekit_venv / "bin" / "mergekit-yaml").is_file()
    if not has_mergekit and "mergekit" not in args.skip:
        print(f"mergekit skipped: no {args.mergekit_venv}/bin/mergekit-yaml")
    for _ in range(args.repeat):
        run("cold read", [*py, "coldread", *map(str, files)], cold=True)
        if "ours_cold" not in args.skip:
            run("ours (cold)", [*py, "ours", str(work / "out"), *map(str, inputs)], cold=True)
        run("ours (warm)", [*py, "ours", str(work / "out"), *map(str, inputs)], cold=False)
        if "naive" not in args.skip:
            run("naive (warm)", [*py, "naive", str(work / "out"), *map(str, inputs)], cold=False)
        if "mergekit" not in args.skip and has_mergekit:
            t = time.perf_counter()
            subprocess.run(
                [str(args.mergekit_venv / "bin" / "mergekit-yaml"), "--help"], capture_output=True, check=True
            )
            help_s = time.perf_counter() - t
            mergekit_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}  # its venv, not this checkout
            run("mergekit (warm)", mergekit_cmd(args.mergekit_venv, inputs, work / "out", work), False, mergekit_env)
            runs["mergekit (warm)"][-1]["import_s"] = round(help_s, 3)  # `mergekit-yaml --help`: startup + imports
    shutil.rmtree(work, ignore_errors=True)
    rows = {
        name: {
            k: (statistics.median(r[k] for r in rs) if isinstance(rs[0][k], (int, float)) else rs[0][k]) for k in rs[0]
        }
        for name, rs in runs.items()
    }

    largest = _largest_tensor_bytes(files[0])
    budget = files[0].stat().st_size + 2 * largest + 300 * 2**20
    cold_read_s = rows["cold read"]["wall_s"]
    print(
        f"\nprivate-memory target: one output shard {files[0].stat().st_size / GIB:.2f} GiB + 2 x largest tensor "
        f"{largest / GIB:.3f} GiB + 300 MiB = {budget / GIB:.2f} GiB; wall targets: <= 1.5 x cold read "
        f"({1.5 * cold_read_s:.1f} s)"
        + (
            f", <= 0.5 x mergekit ({0.5 * rows['mergekit (warm)']['wall_s']:.1f} s)"
            if "mergekit (warm)" in rows
            else ""
        )
    )
    print(
        f"\nmedians of {args.repeat} rounds; 1-minute load average during the runs: "
        f"{min(r['load'] for rs in runs.values() for r in rs):.2f} to {max(r['load'] for rs in runs.values() for r in rs):.2f}"
    )
    print(
        "\n| job | page cache | wall (s) | min-max (s) | of which startup+import (s) | x cold read | peak private (GiB) | peak total RSS (GiB) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        walls = [x["wall_s"] for x in runs[name]]
        print(
            f"| {name} | {r['cache']} | {r['wall_s']:.1f} | {min(walls):.1f}-{max(walls):.1f} | {r.get('import_s', float('nan')):.1f} | "
            f"{r['wall_s'] / cold_read_s:.2f} | {r['peak_anon'] / GIB:.2f} | {r['peak_rss'] / GIB:.2f} |"
        )
    if args.json:
        harness.write_json(
            args.json,
            {**harness.provenance(), "machine": machine(), "k": args.k, "repeat": args.repeat, "quick": args.quick}
            | {"input_bytes": total, "rows": rows},
        )


def _largest_tensor_bytes(path: Path) -> int:
    import struct

    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return max(v["data_offsets"][1] - v["data_offsets"][0] for v in header.values())


if __name__ == "__main__":
    main()
