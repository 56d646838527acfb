"""Benchmark: the heuristic scorer as of several git revisions, side by side in one run.

    python benchmarks/heuristic_versions.py [REV ...]      (default: main HEAD; e.g. main 63c5b93 HEAD)

Each revision's heuristic scorer is read with ``git show`` and loaded as its own modules
(``curriculum/scorers/heuristic.py``, and its ``heuristic_rules.py`` and ``heuristic_features.py``
where the revision has them: its rules, cuts, weights and feature code; the rest of the package
is this checkout's), then
scored on the three human-label sets of `benchmarks/scorers.py` and on the report half of
`benchmarks/corruption.py`. Speed: documents per second on the 6,412 label-set documents, the
revisions timed alternately twice in one process, so load changes hit them alike.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import corruption  # noqa: E402
import harness  # noqa: E402
from scorers import load_sets, metric  # noqa: E402

from curriculum.scorers import registry  # noqa: E402

#: The heuristic scorer's modules, each importing only those before it. Revisions before the
#: split into rules, features and scorer have only the last.
MODULES = ("heuristic_rules", "heuristic_features", "heuristic")


def load_revision(rev: str, folder: Path):
    """The heuristic module of git revision ``rev`` (with its rules and features), loaded under private names."""
    tag = rev.replace("/", "_").replace("~", "_").replace("^", "_")
    loaded: dict[str, str] = {}  # module -> its private name
    module = None
    for stem in MODULES:
        source = subprocess.run(
            ["git", "show", f"{rev}:curriculum/scorers/{stem}.py"], cwd=HERE.parent, capture_output=True, text=True
        )
        if source.returncode != 0:
            if stem != "heuristic":
                continue  # a revision before the split: everything is in heuristic.py
            raise SystemExit(f"git show {rev}: {source.stderr.strip()}")
        text = source.stdout
        for earlier, private in loaded.items():  # the revision's own rules and features, not this checkout's
            text = text.replace(f"from curriculum.scorers.{earlier} import", f"from {private} import")
        name = f"{stem}_at_{tag}"
        path = folder / f"{name}.py"
        # A second registration of the name "heuristic" would clash with this checkout's.
        path.write_text(text.replace('@SCORERS.register("heuristic", HeuristicConfig)', ""))
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        loaded[stem] = name
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revs", nargs="*", default=["main", "HEAD"], help="git revisions (default: main HEAD)")
    args = parser.parse_args()
    harness.require_data()
    print(harness.header(f"heuristic scorer at {' '.join(args.revs)}"), flush=True)
    assert registry.SCORERS  # the checkout's registry is loaded first
    sets = load_sets()
    report = [t for _, t in corruption.split_documents()["report"]]
    copies, _ = corruption.corrupted_copies(report, "report")
    all_texts = [t for texts, _ in sets.values() for t in texts]
    with tempfile.TemporaryDirectory() as tmp:
        scorers = {rev: load_revision(rev, Path(tmp)) for rev in args.revs}
        scorers = {rev: m.HeuristicScorer(m.HeuristicConfig()) for rev, m in scorers.items()}
        rows = {}
        for rev, scorer in scorers.items():
            row = {}
            for name, (texts, labels) in sets.items():
                row[name] = metric(name, scorer.score_texts(texts), labels)
            row.update(corruption.aucs(scorer.score_texts, report, copies))
            rows[rev] = row
        seconds = dict.fromkeys(scorers, 0.0)
        for _ in range(2):
            for rev, scorer in scorers.items():
                start = time.perf_counter()
                scorer.score_texts(all_texts)
                seconds[rev] += time.perf_counter() - start
    kinds = list(copies)
    cols = ["dclm", "spam", "stackexchange", *kinds, "pooled"]
    print("| heuristic at | DCLM AUC | spam AUC | SE Spearman | " + " | ".join(kinds) + " | pooled | docs/s |")
    print("|---" * (len(cols) + 2) + "|")
    for rev, row in rows.items():
        speed = 2 * len(all_texts) / seconds[rev]
        print(f"| {rev} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + f" | {speed:,.0f} |")


if __name__ == "__main__":
    main()
