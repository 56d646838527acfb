"""Two CPU ranks on gloo under `accelerate launch`, for the multi-process tests.

`accelerate launch --cpu --num_processes 2` silently runs ONE process, so the command uses
`--multi_gpu` and the recipe sets `training.device=cpu` (Accelerator(cpu=True) -> gloo); tests
assert the world size the run recorded, so they cannot pass on a single process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).with_name("accelerate")
needs_accelerate = pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate launcher not installed")


def free_port() -> int:
    with socket.socket() as sock:  # a port nobody else uses (the default 29500 may be taken)
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def two_cpu_ranks(*cli_args: str) -> list[str]:
    """`accelerate launch` of ``currimix CLI_ARGS`` on two processes of this machine."""
    launch = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    return [*launch, "-m", "recipes.cli", *cli_args]


def run_command(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run with this checkout first on the path and one OpenMP thread per process (two ranks share 2 cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def train_with_processes(raw: dict, world: int, tmp_path: Path) -> dict:
    """`currimix train` of the recipe mapping ``raw`` on ``world`` (1 or 2) CPU processes; asserts it
    ran on that many and returns its summary.json."""
    import json

    import yaml

    path = tmp_path / f"recipe{world}.yaml"
    path.write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-m", "recipes.cli", "train", str(path), "--no-progress"]
    if world == 2:
        cmd = two_cpu_ranks("train", str(path), "--no-progress")
    proc = run_command(cmd, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-12000:]
    summary = json.loads((Path(raw["run_dir"]) / "summary.json").read_text())
    assert summary["processes"] == world
    return summary
