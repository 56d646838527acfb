"""Benchmark: which language-ID library for the `langid` scorer (accuracy and speed, English vs not).

    python benchmarks/langid_choice.py [--no-lingua]

The candidates are not project dependencies (pycld2 is, in the `filters` extra), so they come
from the ``langid`` side-car of `benchmarks/harness.py`: py3langid 0.4.0, pycld2 0.42 and
lingua-language-detector 2.1.1 (a 96 MB wheel) installed on first use with ``pip install
--no-deps --target`` under the benchmark cache (pins in ``benchmarks/sidecars/langid.txt``) and
put first on ``sys.path``; their one dependency, numpy, is the project's.

The shared corpus is almost all English (pycld2 calls all 499 DCLM pages and all but 11 Stack
Exchange posts English), so the labelled set is built from what is there, by hand:

- not English (46): SpamAssassin spam mails whose body is plainly in another language, labelled
  by reading them (zh 20, tr 7, ko 5, fr 3, pt 2, de 2, ja 2, ga 1, vi 1, plus 3 Chinese mails sent
  in Big5 but stored as Latin-1, which no reader would call English). They were *found* by
  listing the mails where any of the three detectors said "not English", so the set is biased
  towards mails some detector already flags; mails that all three call English were not read.
- English: the 7 mails among those candidates that are English (Nigerian-letter capitals,
  link lists), and the first 300 clean documents of the corruption benchmark's tune half.

Reported: accuracy of "is English" (the top language is ``en``), ROC-AUC of each library's
English probability/confidence against the label, and documents per second (one process, first
3,000 characters per document, the same for all). pycld2 raises on some byte sequences; such
documents count as "not English" with score 0, and the failures are counted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import corruption  # noqa: E402
import harness  # noqa: E402
import scorers_data  # noqa: E402

from curriculum.scorers.metrics import roc_auc  # noqa: E402

#: SpamAssassin message indices (order of `scorers_data.spamassassin`) labelled by reading them.
NOT_ENGLISH = (
    1574, 1575, 1577, 1641, 1583, 2730, 2734, 2777, 3034, 2554, 2555, 1585, 1644, 1992, 1993, 2008, 2431,
    2500, 2580, 2603, 2636, 2704, 2709, 2791, 2852, 2915, 2943, 2988, 3014, 3041, 3042, 1946, 2203, 2972,
    2142, 2316, 2648, 2687, 2744, 2799, 2504, 3078, 3111, 2433, 2464, 2607,
)  # fmt: skip
ENGLISH_MAILS = (1600, 1679, 1755, 2089, 3020, 2157, 2551)
CHARS = 3000


def labelled_set() -> tuple[list[str], np.ndarray]:
    mails = scorers_data.spamassassin()[0]
    clean = [t for _, t in corruption.split_documents()["tune"]][:300]
    texts = [mails[i] for i in NOT_ENGLISH] + [mails[i] for i in ENGLISH_MAILS] + clean
    labels = np.r_[np.zeros(len(NOT_ENGLISH)), np.ones(len(ENGLISH_MAILS) + len(clean))]
    return [t[:CHARS] for t in texts], labels


def detectors(lingua: bool) -> dict:
    import py3langid
    import pycld2

    identifier = py3langid.langid.LanguageIdentifier.from_model_file(py3langid.langid.MODEL_FILE, norm_probs=True)

    def p3(text: str) -> tuple[bool, float]:
        ranked = dict(identifier.rank(text))
        return max(ranked, key=ranked.get) == "en", float(ranked.get("en", 0.0))

    def cld2(text: str) -> tuple[bool, float]:
        try:
            reliable, _, details = pycld2.detect(text)
        except pycld2.error:
            cld2.failures += 1
            return False, 0.0
        share = sum(percent for _, code, percent, _ in details if code == "en") / 100.0
        return details[0][1] == "en", share

    cld2.failures = 0
    out = {"py3langid 0.4.0 (langid.py model)": p3, "pycld2 0.42": cld2}
    if lingua:
        from lingua import Language, LanguageDetectorBuilder

        det = LanguageDetectorBuilder.from_all_languages().build()

        def lingua(text: str) -> tuple[bool, float]:
            top = det.detect_language_of(text)
            return top == Language.ENGLISH, float(det.compute_language_confidence(text, Language.ENGLISH))

        out["lingua-language-detector 2.1.1 (all languages)"] = lingua
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-lingua", action="store_true", help="leave out lingua (slow: ~16 docs/s)")
    args = parser.parse_args()
    harness.require_data()
    sys.path.insert(0, str(harness.sidecar("langid")))
    print(harness.header("language ID: which library"), flush=True)
    texts, labels = labelled_set()
    print(f"{len(texts)} documents: {int((labels == 0).sum())} not English, {int(labels.sum())} English\n")
    print("| library | accuracy (is English) | ROC-AUC of P(English) | docs/s |")
    print("|---|---|---|---|")
    for name, detect in detectors(not args.no_lingua).items():
        detect(texts[0])  # load the model outside the timing
        start = time.perf_counter()
        results = [detect(t) for t in texts]
        seconds = time.perf_counter() - start
        is_en = np.array([r[0] for r in results])
        prob = np.array([r[1] for r in results])
        note = f" ({detect.failures} raised)" if getattr(detect, "failures", 0) else ""
        print(
            f"| {name}{note} | {np.mean(is_en == labels.astype(bool)):.3f} | {roc_auc(prob, labels):.3f} "
            f"| {len(texts) / seconds:,.0f} |"
        )


if __name__ == "__main__":
    main()
