"""Whole-source loading for the `score` commands, including cutting documents with `split_pattern`."""

from __future__ import annotations

import json
from pathlib import Path

from curriculum.documents import SourceConfig, load_documents


def test_split_pattern_cuts_documents_and_numbers_the_pieces(tmp_path: Path) -> None:
    path = tmp_path / "plays.jsonl"
    rows = [{"id": "p1", "text": "ROMEO:\nHi.\n\nJULIET:\nHello.\n"}, {"id": "p2", "text": "   \n"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = load_documents(SourceConfig(path=str(path), split_pattern=r"^[A-Z]+:$"))
    assert ds["text"] == ["ROMEO:\nHi.\n\n", "JULIET:\nHello.\n"]  # the blank document is dropped
    assert ds["id"] == ["p1#0", "p1#1"]
