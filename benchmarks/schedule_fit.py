"""How well the schedule planner's laws predict losses they were not fitted on, next to the seed noise.

Two tables, each fitting both laws (tools/planner) on three curves and predicting held-out ones:

1. The published curves of the multi-power-law paper (tests/fixtures/multipower: 25M and 400M
   models, the paper's own split: fit on cosine_24000, constant_24000, wsdcon_9; predict six others
   including 72000-step runs, 3x longer). Errors as the paper computes them (PredE: mean relative
   error over every point of a test curve, WorstE: its largest, both averaged over the test curves),
   beside the paper's published numbers and beside the paper's own fitted parameters run through our
   implementation (a check that our law is theirs).
2. CPU runs of the testbed (benchmarks/schedule_runs.py, then the wsm-vs-wsd grid for seeds): fit on
   constant / cosine / WSD at seed 0, predict the final loss of three held-out schedules and a 2x
   longer cosine, for random and ascending-quality order and with end-of-training upsampling of the
   clean domain, on the training loss, val/dial and val/clean;
   the seed-to-seed spread of the same final losses is read from the grid's seeds 0-2.

    python benchmarks/schedule_fit.py [--skip-published] [--skip-runs] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the repo root

from benchmarks import harness  # noqa: E402
from tests.multipower_curves import FIT, PUBLISHED, TEST, published_curve  # noqa: E402
from tools.planner import LAWS  # noqa: E402
from tools.planner.config import FitConfig  # noqa: E402
from tools.planner.curves import read_run_curve  # noqa: E402
from tools.planner.fit import Fit, fit_law  # noqa: E402
from tools.planner.multipower import MultiPower  # noqa: E402

PAPER_PARAMS = {  # thu-yao-01-luo/MultiPowerLaw src/config.py PARAMS: [L0, A, alpha, B, C, beta, gamma]
    "25": [3.04045406, 0.52468604, 0.50786857, 363.78751622, 2.06560812, 0.58279013, 0.64142257],
    "100": [2.6514477, 0.60115152, 0.45295811, 437.9464276, 2.13245612, 0.59785199, 0.65523644],
    "400": [2.37474466, 0.65421216, 0.42878731, 523.42464371, 2.02462735, 0.59350493, 0.63472457],
}
LAWS_RUN = ("multi_power", "annealing_area")
BENCH = Path("runs/planner-bench")
GRID = Path("runs/sweeps/wsm-vs-wsd/cpu")
HELD_OUT = {
    "random": ("wsd-linear-third", "wsd-cosine-10", "linear-zero", "cosine-long"),
    "ascending": ("wsd-linear-third",),
    "upsample": ("wsd-linear-third",),
}
METRICS = ("loss", "val/dial", "val/clean")  # val/clean: the domain upsampling adds late


def errors(fit: Fit, curves: list) -> dict[str, float]:
    """PredE / WorstE as the paper computes them, and the final value's relative error (mean, worst)."""
    pred_e, worst_e, final = [], [], []
    for curve in curves:
        rel = np.abs(fit.predict(curve) - curve.loss) / curve.loss
        pred_e.append(rel.mean())
        worst_e.append(rel.max())
        final.append(rel[-1])
    return {
        "PredE": float(np.mean(pred_e)),
        "WorstE": float(np.mean(worst_e)),
        "final_mean": float(np.mean(final)),
        "final_worst": float(np.max(final)),
    }


def published(sizes: list[str]) -> dict:
    print("\n== published MultiPowerLaw curves: fit on", ", ".join(FIT), "| predict", ", ".join(TEST))
    print(f"{'size':>5} {'model':<32} {'PredE':>8} {'WorstE':>8} {'final mean':>10} {'final worst':>11} {'fit s':>6}")
    out = {}
    config = FitConfig(skip_fraction=0.0, min_points=8)  # the CSVs start after warmup, as the paper fits them
    for size in sizes:
        fit_curves = [published_curve(size, n) for n in FIT]
        test_curves = [published_curve(size, n) for n in TEST]
        rows = {"paper (published)": {**PUBLISHED[size], "final_mean": float("nan"), "final_worst": float("nan")}}
        law = LAWS.build(LAWS.parse({"name": "multi_power"}))
        names = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
        theirs = MultiPower.from_absolute(dict(zip(names, PAPER_PARAMS[size])), 3e-4)
        rows["paper's parameters, our law"] = errors(Fit(law, "multi_power", theirs, 3e-4, 0.0), test_curves)
        seconds = {}
        for name in LAWS_RUN:
            began = time.perf_counter()
            fit = fit_law({"name": name}, fit_curves, config)
            seconds[name] = time.perf_counter() - began
            rows[f"{name} (our fit)"] = errors(fit, test_curves)
            rows[f"{name} (our fit)"]["params"] = fit.absolute()
        for model, e in rows.items():
            s = seconds.get(model.split(" ")[0], float("nan"))
            print(
                f"{size + 'M':>5} {model:<32} {e['PredE']:>8.5f} {e['WorstE']:>8.5f} "
                f"{e['final_mean']:>10.5f} {e['final_worst']:>11.5f} {s:>6.0f}"
            )
        out[size] = rows
    return out


def final_values(run: Path, metric: str) -> float:
    return float(read_run_curve(run, metric).loss[-1])


def seed_spread(metric: str) -> dict[str, dict[str, float]]:
    """Relative sd and half-range of the final value over the grid's seeds, per schedule."""
    out = {}
    for label in ("constant", "wsd"):
        runs = sorted(GRID.glob(f"runs/lr-{label}__seed*")) or sorted(GRID.glob(f"**/lr-{label}__seed*"))
        runs = [r for r in runs if (r / "metrics.jsonl").is_file()]
        if len(runs) < 2:
            continue
        values = np.array([final_values(r, metric) for r in runs])
        out[label] = {
            "seeds": len(values),
            "rel_sd": float(values.std(ddof=1) / values.mean()),
            "rel_half_range": float(np.ptp(values) / 2 / values.mean()),
        }
    return out


def cpu_runs() -> dict:
    print("\n== CPU runs (testbed-dial, 240 steps; fit on constant, cosine, wsd at seed 0)")
    print(
        f"{'order':<10} {'metric':<9} {'law':<15} {'held-out run':<18} {'observed':>9} {'predicted':>9} {'rel err':>8}"
    )
    out: dict = {}
    config = FitConfig()
    for order, held in HELD_OUT.items():
        fit_runs = [BENCH / order / s / "seed-0" for s in ("constant", "cosine", "wsd")]
        if not all((r / "final").is_dir() for r in fit_runs):
            print(f"{order}: fit runs missing; run benchmarks/schedule_runs.py first")
            continue
        for metric in METRICS:
            curves = [read_run_curve(r, metric, name=r.parent.name) for r in fit_runs]
            for name in LAWS_RUN:
                fit = fit_law({"name": name}, curves, config)
                errs = []
                for label in held:
                    run = BENCH / order / label / "seed-0"
                    if not (run / "final").is_dir():
                        continue
                    curve = read_run_curve(run, metric)
                    predicted = float(fit.predict(curve)[-1])
                    observed = float(curve.loss[-1])
                    err = abs(predicted - observed) / observed
                    errs.append(err)
                    out.setdefault(order, {}).setdefault(metric, {}).setdefault(name, {})[label] = {
                        "observed": observed,
                        "predicted": predicted,
                        "rel_err": err,
                    }
                    print(
                        f"{order:<10} {metric:<9} {name:<15} {label:<18} {observed:>9.4f} {predicted:>9.4f} {err:>8.4f}"
                    )
                if errs:
                    summary = {"mean": float(np.mean(errs)), "worst": float(np.max(errs)), "n": len(errs)}
                    out[order][metric][name]["summary"] = summary
                    print(
                        f"{order:<10} {metric:<9} {name:<15} {'mean / worst':<18} {summary['mean']:>19.4f} {summary['worst']:>8.4f}"
                    )
    print("\n== the fixed-data assumption: in-sample fit (mean |rel residual|) by order, and random-order fits")
    print("   predicting the ascending / upsampling runs (planning with fixed-data runs, then changing the data)")
    out["by_order"] = {}
    for metric in METRICS:
        fits = {}
        for order in HELD_OUT:
            runs = [BENCH / order / s / "seed-0" for s in ("constant", "cosine", "wsd")]
            if not all((r / "final").is_dir() for r in runs):
                continue
            curves = [read_run_curve(r, metric, name=r.parent.name) for r in runs]
            for name in LAWS_RUN:
                fit = fit_law({"name": name}, curves, config)
                fits[order, name] = fit
                cut = [c.after(int(0.1 * c.total_steps)) for c in curves]
                resid = float(np.mean([np.mean(np.abs(fit.predict(c) - c.loss) / c.loss) for c in cut]))
                out["by_order"].setdefault(metric, {}).setdefault(order, {})[name] = {"in_sample": resid}
                print(f"{metric:<9} {order:<10} {name:<15} in-sample mean |rel residual| {resid:.4f}")
        for order in [o for o in HELD_OUT if o != "random"]:
            runs = [BENCH / order / s / "seed-0" for s in ("constant", "cosine", "wsd", *HELD_OUT[order])]
            runs = [r for r in runs if (r / "final").is_dir()]
            for name in LAWS_RUN:
                if ("random", name) not in fits or not runs:
                    continue
                errs = []
                for run in runs:
                    curve = read_run_curve(run, metric)
                    errs.append(float(abs(fits["random", name].predict(curve)[-1] - curve.loss[-1]) / curve.loss[-1]))
                out["by_order"][metric][f"random->{order} {name}"] = {"mean": float(np.mean(errs)), "worst": max(errs)}
                print(
                    f"{metric:<9} random fit -> {len(errs)} {order} runs {name:<15} final rel err mean {np.mean(errs):.4f} worst {max(errs):.4f}"
                )
    print("\n== seed-to-seed spread of the same final values (wsm-vs-wsd grid, random order)")
    out["seed_spread"] = {}
    for metric in METRICS:
        spread = seed_spread(metric)
        out["seed_spread"][metric] = spread
        for label, s in spread.items():
            print(
                f"{metric:<9} {label:<9} seeds {s['seeds']}  rel sd {s['rel_sd']:.4f}  rel half-range {s['rel_half_range']:.4f}"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-published", action="store_true")
    parser.add_argument("--skip-runs", action="store_true")
    parser.add_argument("--sizes", nargs="+", default=["25", "400"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)  # two shared cores: one is enough for these sizes
    print(f"commit {harness.commit()} | {harness.machine()} | torch {torch.__version__}, 1 thread")
    results: dict = {"provenance": harness.provenance()}
    if not args.skip_published:
        results["published"] = published(args.sizes)
    if not args.skip_runs:
        results["cpu_runs"] = cpu_runs()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
