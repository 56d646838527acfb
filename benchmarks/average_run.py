"""One measured job of the averaging benchmark, run in its own process by `benchmarks/average.py`.

    python -m benchmarks.average_run coldread FILE...       read every byte once (16 MiB reads)
    python -m benchmarks.average_run ours OUT INPUT...      tools.average, uniform weights
    python -m benchmarks.average_run naive OUT INPUT...     load every state dict, average, save

Prints one JSON line: seconds spent importing and working.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

START = time.perf_counter()


def cold_read(files: list[Path]) -> int:
    buf = bytearray(16 << 20)
    total = 0
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return total


def ours(output: Path, inputs: list[Path]) -> float:
    from tools.average import average_checkpoints

    imported = time.perf_counter()
    average_checkpoints(inputs, output, "sma")
    return imported


def naive(output: Path, inputs: list[Path]) -> float:
    """The common recipe: every state dict in memory at once, averaged, saved with save_pretrained's files."""
    import shutil

    from safetensors.torch import load_file, save_file

    imported = time.perf_counter()
    states = [load_file(p / "model.safetensors") for p in inputs]
    averaged = {k: sum(s[k].float() for s in states) / len(states) for k in states[0]}
    output.mkdir(parents=True)
    save_file(
        {k: v.to(states[0][k].dtype) for k, v in averaged.items()},
        output / "model.safetensors",
        metadata={"format": "pt"},
    )
    shutil.copy(inputs[0] / "config.json", output / "config.json")
    return imported


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("coldread", "ours", "naive"):
        print(__doc__)
        sys.exit(0 if sys.argv[1:2] in (["-h"], ["--help"]) else 2)
    job, *rest = sys.argv[1:]
    if job == "coldread":
        imported = time.perf_counter()
        nbytes = cold_read([Path(p) for p in rest])
        extra = {"bytes": nbytes}
    else:
        out, *inputs = (Path(p) for p in rest)
        imported = {"ours": ours, "naive": naive}[job](out, inputs)
        extra = {}
    end = time.perf_counter()
    print(json.dumps({"import_s": round(imported - START, 3), "work_s": round(end - imported, 3), **extra}))
