"""Readers for the labelled corpus in ``<repo>/../shared/data`` used by `benchmarks/scorers.py`.

Every reader returns plain Python lists of texts (plus labels where the source has them).
The folder comes from `harness.data_dir` (this file's location, or ``$CURRIMIX_BENCH_DATA``),
so the benchmark runs from any working folder. Only the Python standard library is used here,
so the datatrove side-car venv can import it.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

DATA = harness.data_dir()


def _jsonl(relative: str) -> list[dict]:
    with gzip.open(DATA / relative, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def dclm() -> tuple[list[str], list[int]]:
    """DCLM human quality labels (majority vote): texts and 0/1 labels."""
    rows = _jsonl("dclm_human_quality/majority_data.jsonl.gz")
    return [r["text"] for r in rows], [int(r["label"]) for r in rows]


def spamassassin() -> tuple[list[str], list[int]]:
    """SpamAssassin e-mails: texts and labels (1 = ham, 0 = spam)."""
    rows = _jsonl("spamassassin/messages.jsonl.gz")
    return [r["text"] for r in rows], [int(r["label"] == "ham") for r in rows]


def stackexchange() -> tuple[list[str], list[int]]:
    """Stack Exchange beer + coffee posts: texts and vote scores."""
    rows = _jsonl("stackexchange_beer_coffee/posts.jsonl.gz")
    return [r["text"] for r in rows], [int(r["score"]) for r in rows]


def wikitext_articles() -> list[str]:
    """WikiText-2 valid + test, one document per article (split at ` = Title = ` lines)."""
    out: list[str] = []
    for name in ("valid.txt.gz", "test.txt.gz"):
        with gzip.open(DATA / "wikitext2" / name, "rt", encoding="utf-8") as fh:
            text = fh.read()
        parts = re.split(r"\n \n (?== [^=])", text)
        out.extend(p.strip() for p in parts if p.strip())
    return out


def paragraphs(texts: list[str], *, min_chars: int = 300, max_chars: int = 3000) -> list[str]:
    """Cut long documents into blank-line-separated chunks of roughly web-page size."""
    out: list[str] = []
    for text in texts:
        chunk = ""
        for para in re.split(r"\n\s*\n", text):
            chunk = f"{chunk}\n\n{para}" if chunk else para
            if len(chunk) >= max_chars:
                out.append(chunk)
                chunk = ""
        if len(chunk) >= min_chars:
            out.append(chunk)
    return out


def reference_positives() -> dict[str, list[str]]:
    """High-quality text that is *not* an evaluation set: the generic positive pool."""
    gsm8k = _jsonl("gsm8k/train.jsonl.gz")
    return {
        "wikitext2": paragraphs(wikitext_articles()),
        "python_docs": paragraphs([r["text"] for r in _jsonl("python_docs/docs.jsonl.gz")]),
        "jane_austen": paragraphs([r["text"] for r in _jsonl("jane_austen/chapters.jsonl.gz")]),
        "c4_theguardian": [r["text"] for r in _jsonl("c4_sample/c4_100_domains_theguardian.jsonl.gz")],
        "gsm8k_train": [f"{r['question']}\n\n{r['answer']}" for r in gsm8k[:2000]],
    }


def shuffled_negatives(texts: list[str], *, seed: int = 0) -> list[str]:
    """Synthetic junk from good text: word-shuffled and line-shuffled copies, keyword lists."""
    rng = random.Random(seed)
    out: list[str] = []
    for i, text in enumerate(texts):
        words = text.split()
        kind = i % 3
        if kind == 0:  # word salad: right vocabulary, no syntax
            rng.shuffle(words)
            out.append(" ".join(words))
        elif kind == 1:  # keyword/tag list: short lines of a few words, no sentences
            rng.shuffle(words)
            out.append("\n".join(" ".join(words[j : j + rng.randint(1, 4)]) for j in range(0, min(len(words), 200), 3)))
        else:  # fragment soup: lines of different documents' openings
            lines = [ln for ln in text.split("\n") if ln.strip()]
            rng.shuffle(lines)
            out.append("\n".join(ln[:60] for ln in lines[:30]))
    return out


if __name__ == "__main__":
    print(__doc__)
