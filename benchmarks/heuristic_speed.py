"""Benchmark: the heuristic scorer's speed against datatrove's GopherQualityFilter, side by side.

    python benchmarks/heuristic_speed.py [--rounds 3] [--revs main HEAD] [--datatrove-python PYTHON]

The issue's speed target compares the heuristic with datatrove's Gopher quality filter *in the
same run*. On a shared machine the load changes within minutes, so this script alternates: each
round times datatrove's filter (in its side-car venv, installed on first use by
`benchmarks/harness.py`; `benchmarks/scorers_datatrove.py`, spaCy warmed up first) and then
every requested git revision of the heuristic scorer
(loaded as in `benchmarks/heuristic_versions.py`), all on the same 6,412 documents of the three
human-label sets, one process each. Speed: documents per second for scoring only; the ratio is
per round (heuristic / datatrove) and over all rounds (total time vs total time). The load
average is printed with every round. The revisions' order rotates from round to round (the one
timed first, right after datatrove's subprocess, runs slower).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core each, like datatrove's single process

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
from heuristic_versions import load_revision  # noqa: E402
from scorers import load_sets, machine  # noqa: E402

from curriculum.scorers import registry  # noqa: E402


def datatrove_seconds(python: Path) -> float:
    """Seconds datatrove's GopherQualityFilter takes on the three label sets (one subprocess)."""
    run = subprocess.run(
        [str(python), str(HERE / "scorers_datatrove.py"), "gopher_quality"], capture_output=True, text=True
    )
    if run.returncode != 0:
        raise SystemExit(f"datatrove side-car failed:\n{run.stderr[-2000:]}")
    return sum(s["seconds"]["gopher_quality"] for s in json.loads(run.stdout).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--revs", nargs="+", default=["main", "HEAD"])
    parser.add_argument(
        "--datatrove-python",
        type=Path,
        help="python of a venv with datatrove (default: the side-car, made on first use)",
    )
    parser.add_argument("--quick", action="store_true", help="one round, this checkout only (a set-up check)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.revs = 1, ["HEAD"]
    harness.require_data()
    args.datatrove_python = args.datatrove_python or harness.sidecar_bin("datatrove")
    if not args.datatrove_python.exists():
        raise SystemExit(f"no datatrove venv python at {args.datatrove_python}")
    print(harness.header("heuristic scorer vs datatrove GopherQualityFilter"), flush=True)
    assert registry.SCORERS  # this checkout's registry first, so the revisions' modules do not clash
    texts = [t for docs, _ in load_sets().values() for t in docs]
    with tempfile.TemporaryDirectory() as tmp:
        modules = {rev: load_revision(rev, Path(tmp)) for rev in args.revs}
        scorers = {rev: m.HeuristicScorer(m.HeuristicConfig()) for rev, m in modules.items()}
        for scorer in scorers.values():
            scorer.score_texts(texts[:20])  # word list loaded, regexes compiled
        totals = {"datatrove": 0.0, **dict.fromkeys(scorers, 0.0)}
        header = ["round", "load avg (1 min)", "datatrove Gopher docs/s", *(f"heuristic@{r} docs/s" for r in scorers)]
        header += [f"ratio @{r}" for r in scorers]
        print("| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|", flush=True)
        for i in range(1, args.rounds + 1):
            load = os.getloadavg()[0]
            seconds = {"datatrove": datatrove_seconds(args.datatrove_python)}
            # The revision timed first after datatrove's subprocess measured ~10% slower than the
            # same code timed second (2026-11-29), so the order rotates from round to round.
            order = list(scorers.items())
            shift = (i - 1) % len(order)
            for rev, scorer in order[shift:] + order[:shift]:
                start = time.perf_counter()
                scorer.score_texts(texts)
                seconds[rev] = time.perf_counter() - start
            for key, value in seconds.items():
                totals[key] += value
            speeds = {k: len(texts) / v for k, v in seconds.items()}
            cells = [str(i), f"{load:.1f}", *(f"{speeds[k]:,.0f}" for k in ["datatrove", *scorers])]
            cells += [f"{speeds[r] / speeds['datatrove']:.1f}x" for r in scorers]
            print("| " + " | ".join(cells) + " |", flush=True)
    n = args.rounds * len(texts)
    print(
        f"\nAll rounds: datatrove {n / totals['datatrove']:,.0f} docs/s; "
        + "; ".join(
            f"heuristic@{r} {n / totals[r]:,.0f} docs/s = {totals['datatrove'] / totals[r]:.1f}x" for r in scorers
        )
        + f". {len(texts):,} documents. Machine: {machine()}."
    )


if __name__ == "__main__":
    main()
