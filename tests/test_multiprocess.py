"""Two CPU ranks on gloo (`accelerate launch`) see exactly the global batches of one process.

`accelerate launch --cpu --num_processes 2` silently runs ONE process, so the launch uses
`--multi_gpu` with `training.device=cpu` (Accelerator(cpu=True) -> gloo) and the test asserts the
world size the run recorded, so it cannot pass on a single process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recipes.trackers import read_metrics
from tests.conftest import recipe_dict

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:  # a port nobody else uses (the default 29500 may be taken)
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(
    shutil.which("accelerate") is None and not Path(sys.executable).with_name("accelerate").exists(),
    reason="accelerate launcher not installed",
)
def test_two_ranks_train_on_the_same_global_batches(corpus_dir: Path, tiny_store: Path, tmp_path: Path) -> None:
    launcher = str(Path(sys.executable).with_name("accelerate"))
    results = {}
    for world in (1, 2):
        raw = recipe_dict(corpus_dir, tmp_path / f"run{world}", tiny_store)
        raw["training"].update(device="cpu", log_batch_ids=True, steps=6, eval_every_steps=None)
        raw["checkpoint"] = {"every_steps": None}
        raw["averaging"] = {"snapshots": None}
        path = tmp_path / f"recipe{world}.yaml"
        path.write_text(yaml.safe_dump(raw))
        cmd = [sys.executable, "-m", "recipes.cli", "train", str(path), "--no-progress"]
        if world == 2:
            cmd = [
                launcher,
                "launch",
                "--multi_gpu",
                "--num_processes",
                "2",
                "--num_machines",
                "1",
                "--mixed_precision",
                "no",
                "--dynamo_backend",
                "no",
                "--main_process_port",
                str(_free_port()),
                "-m",
                "recipes.cli",
                "train",
                str(path),
                "--no-progress",
            ]
        proc = _launch(cmd, tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-12000:]
        summary = json.loads((tmp_path / f"run{world}" / "summary.json").read_text())
        assert summary["processes"] == world
        results[world] = (read_metrics(tmp_path / f"run{world}"), summary)
    one, two = results[1][0], results[2][0]
    assert [r["step"] for r in one if "batch_ids" in r] == list(range(6))
    for a, b in zip((r for r in one if "batch_ids" in r), (r for r in two if "batch_ids" in r)):
        assert a["batch_ids"] == b["batch_ids"], f"step {a['step']}: ranks trained on different data"
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    for domain, loss in results[1][1]["val_loss"].items():
        assert results[2][1]["val_loss"][domain] == pytest.approx(loss, rel=1e-3)
