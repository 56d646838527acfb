"""Benchmark (a): online controllers on simulated domains whose best mixture is analytic.

Domains follow known power laws with a uniform transfer tau between them
(`mixers.controllers.simulate`): L_k = E_k + B_k m_k^-a, m_k = (1 - tau) n_k + tau N. For every
scenario (two sets of curves x tau in {0, 0.3, 0.6} x loss noise {0, 1%}) each controller variant
runs from the uniform prior for 150 updates of 256 samples, with the trainer's own rounding. The
table gives the analytic optimum, the mixture the controller realised over the run, and the share of
the loss gap between the uniform prior and the optimum that it closed (1 = optimal, < 0 = worse
than uniform), with the uniform prior as the baseline in the same run. Also: the cost of one update
(3 domains, a full history), the figure behind the overhead row.

    python benchmarks/controller_simulation.py [--updates 150]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness  # noqa: E402
from mixers.base import DomainInfo  # noqa: E402
from mixers.controllers import build_controller  # noqa: E402
from mixers.controllers.simulate import Curves, optimal_mixture, simulate  # noqa: E402

DOMAINS = DomainInfo(("a", "b", "c"), np.full(3, 100), np.full(3, 100))
UNIFORM = np.full(3, 1 / 3)
CURVE_SETS = {
    "B 20/8/2": (np.array([2.0, 1.5, 1.0]), np.array([20.0, 8.0, 2.0]), 0.4),
    "B 5/5/1, a .3": (np.array([3.0, 2.0, 1.0]), np.array([5.0, 5.0, 1.0]), 0.3),
}
VARIANTS = {
    "ado (paper: s .5, shared n)": {},
    "ado s 0": {"s": 0.0},
    "ado own n": {"shared_count": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=150)
    args = parser.parse_args()
    print(harness.header("controller (a): ADO on simulated domains with an analytic optimum"))
    print("| curves | tau | noise | optimum | controller | realised | gap closed |")
    print("|---|---|---|---|---|---|---|")
    closed_by: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for label, (e, b, a) in CURVE_SETS.items():
        for tau in (0.0, 0.3, 0.6):
            curves = Curves(e, b, a, tau)
            best = optimal_mixture(curves)
            for noise in (0.0, 0.01):
                for variant, extra in VARIANTS.items():
                    config = {"name": "ado", "every_steps": 1, "history": 64, **extra}
                    run = simulate(build_controller(config, DOMAINS), curves, UNIFORM, updates=args.updates,
                                   samples_per_update=256, noise=noise)  # fmt: skip
                    n = run.seen.sum()
                    gap = curves.total_loss(UNIFORM, n) - curves.total_loss(best, n)
                    closed = (curves.total_loss(UNIFORM, n) - curves.total_loss(run.realised, n)) / gap
                    closed_by[variant].append(closed)
                    print(
                        f"| {label} | {tau} | {noise:.0%} | {np.round(best, 3).tolist()} | {variant} | "
                        f"{np.round(run.realised, 3).tolist()} | {closed:+.2f} |"
                    )
    print()
    print("| controller | mean gap closed (uniform prior = 0, optimum = 1) | min | max | scenarios |")
    print("|---|---|---|---|---|")
    for variant, values in closed_by.items():
        print(f"| {variant} | {np.mean(values):+.2f} | {min(values):+.2f} | {max(values):+.2f} | {len(values)} |")
    # The cost of one update at a full history (3 domains x 256 points), the trainer's overhead.
    ado = build_controller({"name": "ado", "every_steps": 1}, DOMAINS)
    curves = Curves(*CURVE_SETS["B 20/8/2"], 0.3)
    simulate(ado, curves, UNIFORM, updates=256, samples_per_update=256)
    started = time.perf_counter()
    simulate(ado, curves, UNIFORM, updates=20, samples_per_update=256)
    print(f"\none ADO update, 3 domains, 256-point history: {(time.perf_counter() - started) / 20 * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
