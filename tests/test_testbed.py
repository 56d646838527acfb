"""The quality-dial testbed: disjoint parts, an even spread of severities, damage that grows with
severity, deterministic builds, and no clobbering of a folder that is not a testbed corpus."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from curriculum.errors import UserError
from tools.testbed import QualityDialConfig, build_quality_dial, damage

SENTENCES = [
    "The morning was fine and the party set out early.",
    "She had never seen the sea before, and it pleased her.",
    "Nobody could say what the letter had contained.",
    "They walked along the shore until the light began to fail.",
]


def write_source(path: Path, n_docs: int = 60) -> Path:
    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(n_docs):
            paragraphs = ["\n".join(rng.choice(SENTENCES) for _ in range(4)) for _ in range(6)]
            f.write(json.dumps({"id": f"ch{i}", "text": "\n\n".join(paragraphs)}) + "\n")
    return path


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def config(tmp_path: Path, **changes) -> QualityDialConfig:
    fields = {"source": str(write_source(tmp_path / "src.jsonl")), "out": str(tmp_path / "dial")}
    fields.update({"eval_documents": 20, "reference_documents": 10, "chunk_chars": 400, **changes})
    return QualityDialConfig(**fields)


def test_parts_are_disjoint_and_severities_spread_evenly(tmp_path: Path) -> None:
    marker = build_quality_dial(config(tmp_path))
    out = tmp_path / "dial"
    dial, clean, reference = (rows(out / f"{name}.jsonl") for name in ("dial", "clean", "reference"))
    assert marker["documents"] == {"dial": len(dial), "clean": 20, "reference": 10} and len(dial) >= 100
    severities = sorted(r["severity"] for r in dial)
    n = len(severities)
    assert severities == pytest.approx([(k + 0.5) / n for k in range(n)], abs=1e-6)  # stratified, each once
    assert all(r["quality"] == pytest.approx(1 - r["severity"]) for r in dial)
    assert len({r["id"] for r in dial + clean + reference}) == len(dial) + 30


def test_damage_grows_with_severity() -> None:
    text = "\n\n".join(" ".join(SENTENCES) for _ in range(20))

    def changed(severity: float) -> float:
        out = damage(text, severity, random.Random(1), letter_noise=0.15, shuffle=1.0)
        return sum(a != b for a, b in zip(out, text)) / len(text)

    assert changed(0.0) == 0.0
    assert changed(0.2) < changed(0.5) < changed(0.9)


def test_builds_are_deterministic_and_skipped_when_done(tmp_path: Path) -> None:
    build_quality_dial(config(tmp_path))
    first = (tmp_path / "dial" / "dial.jsonl").read_bytes()
    mtime = (tmp_path / "dial" / "dial.jsonl").stat().st_mtime_ns
    build_quality_dial(config(tmp_path))
    assert (tmp_path / "dial" / "dial.jsonl").stat().st_mtime_ns == mtime  # same config: nothing rewritten
    build_quality_dial(config(tmp_path, seed=1))
    assert (tmp_path / "dial" / "dial.jsonl").read_bytes() != first
    build_quality_dial(config(tmp_path))
    assert (tmp_path / "dial" / "dial.jsonl").read_bytes() == first


def test_a_folder_of_other_files_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "dial").mkdir()
    (tmp_path / "dial" / "thesis.txt").write_text("mine")
    with pytest.raises(UserError, match="not a testbed corpus"):
        build_quality_dial(config(tmp_path))
    assert (tmp_path / "dial" / "thesis.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".dial.*"))  # refused before anything was built


def test_too_small_a_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="leave fewer than 100"):
        build_quality_dial(config(tmp_path, eval_documents=200))
