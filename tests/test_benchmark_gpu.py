"""`benchmarks/gpu.py --tiny` runs the GPU benchmark's own code on CPU, so the script cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_benchmark_tiny_runs_every_arm_and_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--tiny", "--peak-tflops", "0.001", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    rows = json.loads(out.read_text())
    assert [r["arm"] for r in rows] == ["currimix", "transformers Trainer", "currimix MoE (transformers experts)"]
    for row in rows:
        assert "error" not in row, row
        assert row["tokens_per_s"] > 0 and 0 <= row["data_wait"] <= 1
        assert row["mfu"] == row["tokens_per_s"] * row["flops_per_token"] / 1e9
    assert "| arm | params | global batch | tokens/s | MFU | data wait | vs Trainer |" in proc.stdout
    assert "megablocks: not run" in proc.stdout
