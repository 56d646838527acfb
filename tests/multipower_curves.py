"""The published loss curves of the multi-power-law paper (tests/fixtures/multipower, see its README) as `Curve`s.

Each CSV (step, lr, loss) logs every 128th step; the LR of every step is rebuilt from the file name
exactly as the paper's loader does (thu-yao-01-luo/MultiPowerLaw, src/data_loader.py and
src/lr_schedules.py): warmup 2160 steps rising linearly from 0, peak 3e-4; cosine to 3e-5; `wsd` a
geometric decay from step 20000 to 3e-5 at 24000; `wsdld` the same, linear; `wsdcon_X` a two-stage
run of 16000 steps dropping to X e-5 at step 8000. As there, 24000-step curves stop before step
24000, and the paper's split is kept: fit on cosine_24000, constant_24000, wsdcon_9, test the rest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.planner.curves import Curve

FOLDER = Path(__file__).parent / "fixtures" / "multipower"
FIT = ("cosine_24000", "constant_24000", "wsdcon_9")
TEST = ("constant_72000", "cosine_72000", "wsd_20000_24000", "wsdld_20000_24000", "wsdcon_3", "wsdcon_18")
PEAK, END, WARMUP = 3e-4, 3e-5, 2160
# The paper's own evaluation (its README, "Evaluation Metrics"): mean over the test curves of each
# curve's mean and worst relative error over all its points.
PUBLISHED = {"25": {"PredE": 0.00110, "WorstE": 0.00409}, "100": {"PredE": 0.00142, "WorstE": 0.00583},
             "400": {"PredE": 0.00168, "WorstE": 0.00995}}  # fmt: skip


def published_lr(name: str) -> np.ndarray:
    """The LR of every step of the run ``name`` (a CSV's stem)."""
    warm = np.linspace(0, PEAK, WARMUP)
    kind, *rest = name.split("_")
    if kind in ("constant", "cosine"):
        total = int(rest[0])
        s = np.arange(WARMUP, total)
        tail = (
            np.full(len(s), PEAK)
            if kind == "constant"
            else END + 0.5 * (PEAK - END) * (1 + np.cos(np.pi * (s - WARMUP) / (total - WARMUP)))
        )
    elif kind == "wsdcon":
        total, stage, low = 16000, 8000, int(rest[0]) * 1e-5
        tail = np.concatenate([np.full(stage - WARMUP, PEAK), np.full(total - stage, low)])
    elif kind in ("wsd", "wsdld"):
        decay, total = int(rest[0]), int(rest[1])
        s = np.arange(decay, total)
        q = (s - decay) / (total - decay)
        down = PEAK ** (1 - q) * END**q if kind == "wsd" else PEAK * (1 - q) + END * q
        tail = np.concatenate([np.full(decay - WARMUP, PEAK), down])
    else:
        raise ValueError(name)
    return np.concatenate([warm, tail])


def published_curve(size: str, name: str) -> Curve:
    data = np.genfromtxt(FOLDER / f"csv_{size}" / f"{name}.csv", delimiter=",", skip_header=1)
    steps, loss = data[:, 0].astype(np.int64), data[:, 2]
    lr = published_lr(name)
    keep = steps < len(lr)  # the 24000-step files log step 24000 too, past the schedule (the paper drops it)
    return Curve(name, lr, steps[keep], loss[keep])
