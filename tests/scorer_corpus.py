"""Text for the scorer tests: slices of ../shared/data when present, else generated offline.

CI may run from a clone without ../shared, so the scorer contract must not depend on it: the
fallback uses real English prose (the standard library's docstrings and reference topics) as good
text and generated spam/boilerplate pages as bad text. Tests of agreement with human labels still
need the real corpus and skip without it.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import random
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MAIL = DATA / "spamassassin" / "messages.jsonl.gz"

_SPAM_LINES = [
    "FREE money!!! Click here to claim your $$$ prize now",
    "Dear friend, I am a prince with $10,000,000",
    "BUY NOW!!! Limited offer, 90% OFF, order today",
    "Unsubscribe here: http://x.example/remove",
    "Lose weight fast!!! Guaranteed results or your money back",
    "CONGRATULATIONS you WON a FREE cruise",
]


def _jsonl(relative: str, limit: int) -> list[dict]:
    with gzip.open(DATA / relative, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in itertools.islice(fh, limit)]


@lru_cache(maxsize=1)
def _generated() -> dict[str, list[str]]:
    from tools.corpus import docstrings, noisy_document, read_source, reference_topics, stdlib_files

    prose = [d for path in stdlib_files(1_500_000) for d in docstrings(read_source(path) or "")]
    prose += reference_topics()
    rng = random.Random(0)
    words = sorted({w for text in prose[:200] for w in text.split() if w.isalpha()})
    sentences = [s for text in prose[:200] for s in text.split(". ") if 30 < len(s) < 200]
    spam = ["\n".join(rng.sample(_SPAM_LINES, 3)) + "\n" + noisy_document(rng, words, sentences) for _ in range(80)]
    return {"good": prose[:100], "ham": prose[100:160], "spam": spam, "dclm": prose[160:175] + spam[:15]}


def scorer_corpus() -> dict[str, list[str]]:
    """good (curated prose), ham / spam e-mail (or stand-ins), and a few DCLM web pages."""
    if not MAIL.exists():
        return _generated()
    mail = _jsonl("spamassassin/messages.jsonl.gz", 3126)
    return {
        "good": [r["text"] for r in _jsonl("python_docs/docs.jsonl.gz", 40)]
        + [r["question"] + "\n\n" + r["answer"] for r in _jsonl("gsm8k/train.jsonl.gz", 60)],
        "ham": [r["text"] for r in mail if r["label"] == "ham"][:60],
        "spam": [r["text"] for r in mail if r["label"] == "spam"][:60],
        "dclm": [r["text"] for r in _jsonl("dclm_human_quality/majority_data.jsonl.gz", 30)],
    }


def mail_file(folder: Path) -> Path:
    """The SpamAssassin jsonl.gz, or a generated one with the same fields in ``folder``."""
    if MAIL.exists():
        return MAIL
    path = folder / "messages.jsonl.gz"
    if not path.exists():
        corpus = _generated()
        rows = [("ham", t) for t in corpus["good"][:90]] + [("spam", t) for t in corpus["spam"]]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # written whole, then renamed
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            for i, (label, text) in enumerate(rows):
                record = {
                    "id": f"m{i}",
                    "group": label,
                    "label": label,
                    "difficulty": None,
                    "body_from_html": False,
                    "md5": str(i),
                    "subject": text.split("\n")[0][:60],
                    "text": text,
                }
                fh.write(json.dumps(record) + "\n")
        os.replace(tmp, path)
    return path
