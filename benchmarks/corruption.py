"""Benchmark: does each scorer rank a clean document above corrupted copies of itself?

    python benchmarks/corruption.py [--half report|tune|both] [--quick] [--only LABEL ...] [--json results.json]

Protocol (fixed before any rule was tuned on it; see BENCHMARKS.md "Scorers: corrupted text"):

- Clean documents: up to 150 per source from six sources of the shared corpus that are *not*
  the human-label evaluation sets of `benchmarks/scorers.py`: WikiText-2 articles, the Python
  docs, Jane Austen (these three cut into 300-3,000-character chunks), KJV chapters, GSM8K
  *test* problems with their solutions, and web pages (the 40 C4 sample pages + 20 CCNet head
  pages). Drawn with ``random.Random(SEED)``.
- Split: every source's documents are shuffled with the seed and alternately assigned to the
  ``tune`` half and the ``report`` half. Rules and weights may only be chosen on ``tune``;
  the numbers reported are on ``report``. The boilerplate corruption draws its lines from
  disjoint pools for the two halves (`corruptions.BOILERPLATE_POOLS`).
- Corruptions: the seven of `curriculum.scorers.corruptions`, one copy per (document, kind),
  seeded by (SEED, document index, kind). A copy identical to its original (e.g. mojibake on
  pure-ASCII text without quotes or dashes) is dropped and counted.
- Metric: ROC-AUC of clean (positive) vs corrupted copies (negative) per corruption, and pooled
  over all corruptions (every clean document once vs every corrupted copy). 0.5 = blind;
  below 0.5 = the scorer *prefers* the damaged text.
- Scorers: the length baseline, the heuristic (and its published-rules-only ablation), the
  language-ID scorer, the n-gram LM and its KenLM twin, and the linear classifier. Fitted
  scorers are trained on documents that are never scored here: the generic positives of
  `scorers_data.reference_positives` minus every document of either half, plus the labelled
  pools of DCLM / SpamAssassin / Stack Exchange (classifier negatives: their negative pools and
  the synthetic negatives of `scorers_data.shuffled_negatives`, which include word-shuffled
  text, so the classifier has seen a cousin of one corruption).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import scorers_data  # noqa: E402
from scorers import OUR_RULES, labelled_pools, load_sets, machine  # noqa: E402

from curriculum.scorers import SCORERS, Scorer, build_scorer  # noqa: E402
from curriculum.scorers.corruptions import BOILERPLATE_POOLS, CORRUPTIONS, boilerplate  # noqa: E402
from curriculum.scorers.metrics import roc_auc  # noqa: E402

SEED = 13
PER_SOURCE = 150
HALVES = ("tune", "report")
#: The rows `--quick` keeps: nothing to fit, so a set-up check takes seconds, not minutes.
QUICK_ROWS = ("length (baseline)", "heuristic")


def clean_sources() -> dict[str, list[str]]:
    """The clean documents per source (before sampling)."""
    jsonl = scorers_data._jsonl
    web = [json.loads(line)["text"] for i in (1, 2, 3) for line in _gz_lines(f"c4_sample/c4-sample.0{i}.json.gz")]
    web += [r["text"] for r in jsonl("c4_sample/c4_100_domains_theguardian.jsonl.gz")]
    web += [r["text"] for r in jsonl("ccnet_head_sample/cc_en_head.jsonl.gz")]
    return {
        "wikitext2": scorers_data.paragraphs(scorers_data.wikitext_articles()),
        "python_docs": scorers_data.paragraphs([r["text"] for r in jsonl("python_docs/docs.jsonl.gz")]),
        "jane_austen": scorers_data.paragraphs([r["text"] for r in jsonl("jane_austen/chapters.jsonl.gz")]),
        "kjv_bible": [r["text"] for r in jsonl("kjv_bible/chapters.jsonl.gz")],
        "gsm8k_test": [f"{r['question']}\n\n{r['answer']}" for r in jsonl("gsm8k/test.jsonl.gz")],
        "web": web,
    }


def _gz_lines(relative: str) -> list[str]:
    import gzip

    with gzip.open(scorers_data.DATA / relative, "rt", encoding="utf-8") as fh:
        return [line for line in fh if line.strip()]


def split_documents(seed: int = SEED) -> dict[str, list[tuple[str, str]]]:
    """``{half: [(source, text), ...]}``: up to PER_SOURCE documents per source, alternately split."""
    rng = random.Random(seed)
    halves: dict[str, list[tuple[str, str]]] = {h: [] for h in HALVES}
    for source, docs in clean_sources().items():
        docs = [d for d in docs if d.strip()]
        rng.shuffle(docs)
        for i, doc in enumerate(docs[:PER_SOURCE]):
            halves[HALVES[i % 2]].append((source, doc))
    return halves


def corrupted_copies(docs: list[str], half: str, seed: int = SEED) -> tuple[dict[str, list[str]], dict[str, int]]:
    """``{kind: copies}`` (copies equal to their original dropped) and how many were dropped."""
    pool = BOILERPLATE_POOLS[HALVES.index(half)]
    copies: dict[str, list[str]] = {}
    dropped: dict[str, int] = {}
    for k, (kind, fn) in enumerate(CORRUPTIONS.items()):
        out = []
        for i, doc in enumerate(docs):
            rng = random.Random(seed * 1_000_003 + i * 101 + k)
            bad = boilerplate(doc, rng, pool) if kind == "boilerplate" else fn(doc, rng)
            if bad != doc:
                out.append(bad)
        copies[kind] = out
        dropped[kind] = len(docs) - len(out)
    return copies, dropped


def aucs(score: Callable[[list[str]], np.ndarray], clean: list[str], copies: dict[str, list[str]]) -> dict[str, float]:
    """Per-corruption and pooled ROC-AUC of clean vs corrupted under ``score``."""
    s_clean = score(clean)
    out: dict[str, float] = {}
    pooled = [s_clean]
    for kind, bad in copies.items():
        s_bad = score(bad)
        pooled.append(s_bad)
        out[kind] = roc_auc(np.r_[s_clean, s_bad], np.r_[np.ones(len(clean)), np.zeros(len(bad))])
    n_bad = sum(len(b) for b in copies.values())
    out["pooled"] = roc_auc(np.concatenate(pooled), np.r_[np.ones(len(clean)), np.zeros(n_bad)])
    return out


def scorer_factories(never_scored: set[str]) -> dict[str, Callable[[], Scorer]]:
    """The scorers of the table, fitted ones trained without any benchmark document."""
    pools = labelled_pools(load_sets())
    pos = [t for positives, _ in pools.values() for t in positives]
    neg = [t for _, negatives in pools.values() for t in negatives]
    generic = [t for texts in scorers_data.reference_positives().values() for t in texts if t not in never_scored]
    synthetic = scorers_data.shuffled_negatives(generic[::3])

    def fitted(config: dict, positives: list[str], negatives: list[str]) -> Callable[[], Scorer]:
        def make() -> Scorer:
            scorer = build_scorer(config)
            scorer.fit(positives, negatives)
            return scorer

        return make

    published_only = {"name": "heuristic", "weights": {r: 0.0 for r in OUR_RULES}}
    factories: dict[str, Callable[[], Scorer]] = {
        "length (baseline)": lambda: build_scorer({"name": "length"}),
        "heuristic, published rules only": lambda: build_scorer(published_only),
        "heuristic": lambda: build_scorer({"name": "heuristic"}),
        "ngram (4-gram KN)": fitted({"name": "ngram", "order": 4}, generic + pos, []),
        "classifier (+generic)": fitted({"name": "classifier"}, pos + generic, neg + synthetic),
    }
    if "langid" in SCORERS.names():
        factories["langid (en)"] = lambda: build_scorer({"name": "langid"})
    if "kenlm" in SCORERS.names():
        factories["kenlm (4-gram, ARPA from our trainer)"] = fitted({"name": "kenlm", "order": 4}, generic + pos, [])
    return factories


def table(results: dict[str, dict[str, float]], kinds: list[str]) -> str:
    cols = [*kinds, "pooled"]
    lines = ["| scorer | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for label, values in results.items():
        lines.append(f"| {label} | " + " | ".join(f"{values[c]:.3f}" for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--half", choices=[*HALVES, "both"], default="report")
    parser.add_argument("--only", nargs="*", help="score only these rows (labels as printed)")
    parser.add_argument("--quick", action="store_true", help=f"only the rows {', '.join(QUICK_ROWS)}")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.only = list(QUICK_ROWS)
    started = time.perf_counter()
    harness.require_data()
    print(harness.header("scorers on corrupted text" + (" (--quick)" if args.quick else "")), flush=True)
    halves = split_documents()
    never_scored = {t for docs in halves.values() for _, t in docs}
    factories = scorer_factories(never_scored)
    if args.only:
        factories = {k: v for k, v in factories.items() if k in args.only}
    scorers: dict[str, Scorer] = {}
    for label, make in factories.items():
        t0 = time.perf_counter()
        scorers[label] = make()
        print(f"  built {label} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    report = {**harness.provenance(), "machine": machine(), "seed": SEED, "rows": list(scorers), "halves": {}}
    for half in HALVES if args.half == "both" else (args.half,):
        docs = [t for _, t in halves[half]]
        sources = sorted({s for s, _ in halves[half]})
        copies, dropped = corrupted_copies(docs, half)
        results = {label: aucs(scorer.score_texts, docs, copies) for label, scorer in scorers.items()}
        print(f"\n### half: {half} ({len(docs)} clean documents from {', '.join(sources)})\n")
        print(table(results, list(CORRUPTIONS)))
        print("\ncorrupted copies per kind: " + ", ".join(f"{k} {len(v)}" for k, v in copies.items()))
        if any(dropped.values()):
            print("dropped (identical to the original): " + ", ".join(f"{k} {v}" for k, v in dropped.items() if v))
        report["halves"][half] = {"n_clean": len(docs), "dropped": dropped, "auc": results}
    print(f"\nMachine: {machine()}. Wall time {time.perf_counter() - started:.0f} s. Seed {SEED}.")
    if args.json:
        harness.write_json(args.json, report)


if __name__ == "__main__":
    main()
