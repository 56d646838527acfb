"""Two CPU ranks on gloo (`accelerate launch`) see exactly the global batches of one process.

`accelerate launch --cpu --num_processes 2` silently runs ONE process, so the launch uses
`--multi_gpu` with `training.device=cpu` (Accelerator(cpu=True) -> gloo) and the test asserts the
world size the run recorded, so it cannot pass on a single process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import recipe_dict
from tests.launch import needs_accelerate, train_with_processes
from tools.train.trackers import read_metrics

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]


@needs_accelerate
def test_two_ranks_train_on_the_same_global_batches(corpus_dir: Path, tiny_store: Path, tmp_path: Path) -> None:
    results = {}
    for world in (1, 2):
        raw = recipe_dict(corpus_dir, tmp_path / f"run{world}", tiny_store)
        raw["training"].update(device="cpu", log_batch_ids=True, steps=6, eval_every_steps=None)
        raw["checkpoint"] = {"every_steps": None}
        raw["averaging"] = {"snapshots": None}
        summary = train_with_processes(raw, world, tmp_path)
        results[world] = (read_metrics(tmp_path / f"run{world}"), summary)
    one, two = results[1][0], results[2][0]
    assert [r["step"] for r in one if "batch_ids" in r] == list(range(6))
    for a, b in zip((r for r in one if "batch_ids" in r), (r for r in two if "batch_ids" in r)):
        assert a["batch_ids"] == b["batch_ids"], f"step {a['step']}: ranks trained on different data"
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    for domain, loss in results[1][1]["val_loss"].items():
        assert results[2][1]["val_loss"][domain] == pytest.approx(loss, rel=1e-3)
