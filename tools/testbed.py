"""The quality-dial testbed: one clean source, each document damaged at a known, graded severity.

The published curriculum findings order documents of *one* distribution by quality. A grid that
puts unlike sources in one domain and orders them by a scorer mostly changes the *content* over
time (spam first, novels last), so it cannot test that claim. Here quality is a dial instead:

- one clean source (e.g. Jane Austen's novels) is cut into chunks of about ``chunk_chars``
  characters at paragraph boundaries, and the chunks are dealt at random into three disjoint parts:
  ``clean.jsonl`` (held-out clean text, the evaluation target), ``reference.jsonl`` (clean text a
  data team would fit reference scorers on) and ``dial.jsonl`` (the training pool);
- every training chunk gets a severity s in (0, 1), spread evenly over the pool (stratified:
  ``s = (k + 0.5) / n`` for a seeded permutation k), and is damaged with the project's own
  corruptions at that severity: each sentence's words shuffled with probability ``shuffle * s`` and
  ``letter_noise * s`` of its letters replaced (`curriculum.scorers.corruptions`);
- each row records ``severity`` and ``quality = 1 - severity``, so the oracle curriculum is the
  `field` scorer on ``quality`` and any other scorer can be checked against the truth.

Ordering by quality is then *not* a change of content: early and late chunks are the same novels,
only more or less damaged. ``corpus.json`` (written last) holds the config and the counts; a
build is deterministic for a config, and a folder built under another config is rebuilt.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from curriculum.errors import UserError
from curriculum.files import atomic_path
from curriculum.registry import StrictModel
from curriculum.scorers.corruptions import SENTENCE_END, char_noise

MARKER = "corpus.json"


class QualityDialConfig(StrictModel):
    """A `corpus:` section of a grid (or `currimix testbed`): the quality-dial corpus."""

    builder: Literal["quality-dial"] = "quality-dial"
    source: str = Field(
        description="A JSON-lines file (optionally .gz) of clean documents, e.g. Jane Austen's chapters."
    )
    text_field: str = Field("text", description="Column holding each document's text.")
    out: str = Field(description="Folder the corpus is written to (dial.jsonl, clean.jsonl, reference.jsonl).")
    chunk_chars: int = Field(1000, ge=100, description="Chunks are whole paragraphs, at least this many characters.")
    eval_documents: int = Field(300, ge=1, description="Clean chunks held out for evaluation (clean.jsonl).")
    reference_documents: int = Field(
        300, ge=0, description="Clean chunks for fitting reference scorers (reference.jsonl); never trained on."
    )
    letter_noise: float = Field(0.15, ge=0, le=1, description="Share of letters replaced at severity 1.")
    shuffle: float = Field(1.0, ge=0, le=1, description="Share of sentences whose words are shuffled at severity 1.")
    seed: int = Field(0, ge=0, description="Seed of the split, the severities and the damage.")

    def fingerprint(self) -> str:
        dumped = self.model_dump(mode="json", exclude={"out"})
        return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:16]


def read_texts(path: Path, field: str) -> list[str]:
    """The ``field`` of every row of a JSON-lines file, in file order."""
    if not path.is_file():
        raise UserError(f"testbed source {str(path)!r} does not exist (the shared corpus lives in ../shared/data)")
    opener = gzip.open if path.suffix == ".gz" else open
    texts = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line).get(field)
            except (json.JSONDecodeError, AttributeError):
                raise UserError(f"{path}:{line_no}: not a JSON object") from None
            if isinstance(text, str) and text.strip():
                texts.append(text)
    if not texts:
        raise UserError(f"testbed source {str(path)!r} has no rows with a non-empty {field!r}")
    return texts


def chunk(texts: list[str], min_chars: int) -> list[str]:
    """Whole paragraphs joined until a chunk has ``min_chars`` characters (never across documents)."""
    chunks = []
    for text in texts:
        current: list[str] = []
        size = 0
        for para in re.split(r"\n\s*\n", text):
            if not para.strip():
                continue
            current.append(para.strip("\n"))
            size += len(para)
            if size >= min_chars:
                chunks.append("\n\n".join(current))
                current, size = [], 0
        if current and size >= min_chars // 2:  # a short tail stands alone only if it is not a scrap
            chunks.append("\n\n".join(current))
    return chunks


def damage(text: str, severity: float, rng: random.Random, *, letter_noise: float, shuffle: float) -> str:
    """``text`` at ``severity``: sentences word-shuffled with probability ``shuffle * severity``, then
    ``letter_noise * severity`` of the letters replaced."""
    paragraphs = []
    for para in text.split("\n\n"):
        sentences = SENTENCE_END.split(para)
        out = []
        for sentence in sentences:
            if rng.random() < shuffle * severity:
                words = sentence.split()
                rng.shuffle(words)
                sentence = " ".join(words)
            out.append(sentence)
        paragraphs.append(" ".join(out))
    return char_noise("\n\n".join(paragraphs), rng, rate=letter_noise * severity)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def build_quality_dial(config: QualityDialConfig) -> dict[str, Any]:
    """Write the corpus into ``config.out`` (atomically: a temp folder renamed into place) unless a
    corpus built under the same config is already there; the contents of its ``corpus.json``."""
    out = Path(config.out)
    existing = read_corpus_marker(out)
    if existing is not None and existing.get("fingerprint") == config.fingerprint():
        return existing
    if existing is None and out.exists():
        raise UserError(
            f"testbed folder {str(out)!r} exists and is not a testbed corpus (no {MARKER}); choose another `out`"
        )
    chunks = chunk(read_texts(Path(config.source), config.text_field), config.chunk_chars)
    held = config.eval_documents + config.reference_documents
    if len(chunks) < held + 100:
        raise UserError(
            f"testbed source {config.source!r} gives {len(chunks)} chunks of >= {config.chunk_chars} characters; "
            f"eval_documents + reference_documents = {held} leave fewer than 100 to train on"
        )
    rng = random.Random(config.seed)
    order = list(range(len(chunks)))
    rng.shuffle(order)
    clean = [chunks[i] for i in order[: config.eval_documents]]
    reference = [chunks[i] for i in order[config.eval_documents : held]]
    pool = [chunks[i] for i in sorted(order[held:])]  # source order, so ids follow the book
    ranks = list(range(len(pool)))
    rng.shuffle(ranks)
    dial = []
    for i, (text, rank) in enumerate(zip(pool, ranks)):
        severity = (rank + 0.5) / len(pool)
        damaged = damage(
            text,
            severity,
            random.Random(f"{config.seed}:{i}"),
            letter_noise=config.letter_noise,
            shuffle=config.shuffle,
        )
        dial.append(
            {"id": f"dial-{i:05d}", "text": damaged, "severity": round(severity, 6), "quality": round(1 - severity, 6)}
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    old = None
    with atomic_path(out) as tmp:
        tmp.mkdir()
        _write_jsonl(tmp / "dial.jsonl", dial)
        _write_jsonl(tmp / "clean.jsonl", [{"id": f"clean-{i:05d}", "text": t} for i, t in enumerate(clean)])
        _write_jsonl(
            tmp / "reference.jsonl", [{"id": f"reference-{i:05d}", "text": t} for i, t in enumerate(reference)]
        )
        marker = {
            "builder": config.builder,
            "fingerprint": config.fingerprint(),
            "config": config.model_dump(mode="json"),
            "documents": {"dial": len(dial), "clean": len(clean), "reference": len(reference)},
            "characters": {"dial": sum(len(r["text"]) for r in dial), "clean": sum(map(len, clean))},
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=1))
        if out.exists():  # a corpus of another config: set aside, replaced, then removed (never a gap)
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return marker


def read_corpus_marker(folder: Path) -> dict[str, Any] | None:
    path = folder / MARKER
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
