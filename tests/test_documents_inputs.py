"""Document inputs nobody listed (issue 18): null ids, dangling links and FIFOs, binary bytes in plain
text, a text field named twice, a split pattern that backtracks: each a message, in both readers
(`prepare`'s pyarrow units and the `score` commands' whole-source Dataset)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from curriculum.documents import SourceConfig, load_documents, resolve_files
from curriculum.errors import UserError
from curriculum.store.prepare.readers import read_unit
from recipes.loading import recipe_from_dict
from tests.conftest import recipe_dict


def _whole(path: Path, fmt: str) -> dict:
    return {"format": fmt, "files": [str(path)], "file_indices": [0], "start": 0, "stop": None}


def test_a_null_id_in_parquet_is_named_by_its_row(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"id": ["a", None, "c"], "text": ["x y", "z", "w"]}), path)
    with pytest.raises(UserError, match=r"row 1 has a null id in column 'id' \(1 such rows\)"):
        read_unit(SourceConfig(path=str(path)), _whole(path, "parquet"), "d/0")
    with pytest.raises(UserError, match="row 1 has a null id"):
        load_documents(SourceConfig(path=str(path)))


def test_a_null_default_id_in_json_lines_is_named_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{"id": null, "text": "y"}\n')
    with pytest.raises(UserError, match=r"d\.jsonl:2: id field 'id' is null"):
        read_unit(SourceConfig(path=str(path)), _whole(path, "json"), "d/0")
    with pytest.raises(UserError, match="row 1 has a null id"):
        load_documents(SourceConfig(path=str(path)))


def test_ids_generated_when_there_is_no_id_column_still_work(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "x"}\n{"text": "y"}\n')
    table = read_unit(SourceConfig(path=str(path)), _whole(path, "json"), "d/0")
    assert table.column("id").to_pylist() == ["d/0:0@0", "d/0:0@14"]


def test_links_and_fifos_among_the_matches_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    (tmp_path / "b.jsonl").symlink_to(tmp_path / "gone.jsonl")
    with pytest.raises(UserError, match="is a symbolic link to .*gone.jsonl', which does not exist"):
        resolve_files(SourceConfig(path=str(tmp_path / "*.jsonl")))
    (tmp_path / "b.jsonl").unlink()
    (tmp_path / "b.jsonl").symlink_to(tmp_path / "a.jsonl")  # a link to a file is fine
    assert len(resolve_files(SourceConfig(path=str(tmp_path / "*.jsonl")))[1]) == 2
    os.mkfifo(tmp_path / "c.jsonl")  # reading it would block forever
    for path in (tmp_path / "*.jsonl", tmp_path, tmp_path / "c.jsonl"):
        with pytest.raises(UserError, match="is a FIFO"):
            resolve_files(SourceConfig(path=str(path)))


def test_binary_bytes_in_plain_text_are_refused_like_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_bytes(b"fine\nalso fine\nbad \xff\xfe here\n")
    with pytest.raises(UserError, match=r"d\.txt:3: not UTF-8 text \(byte 0xff at column 5; 2 such bytes"):
        read_unit(SourceConfig(path=str(path)), _whole(path, "text"), "d/0")
    with pytest.raises(UserError, match=r"d\.txt:3: not UTF-8 text"):
        load_documents(SourceConfig(path=str(path)))
    # a byte range of a large file counts lines from the file's start
    unit = {**_whole(path, "text"), "start": 6, "stop": len(path.read_bytes())}
    with pytest.raises(UserError, match=r"d\.txt:3: not UTF-8"):
        read_unit(SourceConfig(path=str(path), text_split="line"), unit, "d/0")


@pytest.mark.parametrize(
    "text_field, phrase", [(["text", "text"], "more than once"), ([], "at least one"), ("", "at least one")]
)
def test_text_field_is_checked_when_the_recipe_loads(text_field: object, phrase: str) -> None:
    with pytest.raises(ValidationError, match=phrase):
        SourceConfig(path="x.jsonl", text_field=text_field)
    assert SourceConfig(path="x.jsonl", text_field=["question", "answer"]).text_fields == ["question", "answer"]


def test_a_backtracking_split_pattern_stops_within_its_budget(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "x", "text": "a" * 40 + "!"}) + "\n")
    source = SourceConfig(path=str(path), split_pattern="^(a|a)+$", split_timeout_s=0.3)
    for load in (lambda: load_documents(source), lambda: read_unit(source, _whole(path, "json"), "d/0")):
        started = time.perf_counter()
        with pytest.raises(UserError, match="ran past its budget of split_timeout_s = 0.3 s on document 'x"):
            load()
        assert time.perf_counter() - started < 5
    # `^(a+)+$`, exponential under `re`, is linear under the `regex` engine
    fine = load_documents(SourceConfig(path=str(path), split_pattern="^(a+)+$", split_timeout_s=1))
    assert fine["text"] == ["a" * 40 + "!"]


def test_the_split_budget_does_not_change_the_data_fingerprint(tmp_path: Path) -> None:
    raw = recipe_dict(tmp_path, tmp_path / "run")
    before = recipe_from_dict(raw).data_fingerprint()
    raw["data"]["domains"]["code"]["sources"][0]["split_timeout_s"] = 60
    assert recipe_from_dict(raw).data_fingerprint() == before
    raw["data"]["domains"]["code"]["sources"][0]["split_pattern"] = "^x"
    assert recipe_from_dict(raw).data_fingerprint() != before


def test_an_id_column_of_lists_is_named(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"id": [[1], [2]], "text": ["x", "y"]}), path)
    with pytest.raises(UserError, match=r"id column 'id' holds list<element: int64> values"):
        read_unit(SourceConfig(path=str(path)), _whole(path, "parquet"), "d/0")


def test_source_paths_that_name_no_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 1 character"):
        SourceConfig(path="")  # would read the working folder
    with pytest.raises(ValidationError, match="NUL byte"):
        SourceConfig(path="a\0b.jsonl")
    for path in (tmp_path / ("x" * 300) / "a.jsonl", tmp_path / ("x" * 300) / "*.jsonl"):
        with pytest.raises(UserError, match="File name too long"):
            resolve_files(SourceConfig(path=str(path)))


def test_pre_tokenized_lists_must_be_integers_without_nulls() -> None:
    from curriculum.store.prepare.work import token_column

    with pytest.raises(UserError, match="lists of double"):
        token_column(pa.table({"t": [[1.5, 2.0]]}), "t", 100, "u")
    with pytest.raises(UserError, match="with 1 nulls"):
        token_column(pa.table({"t": [[1, None, 3]]}), "t", 100, "u")
    flat, lengths = token_column(pa.table({"t": [[1, 2], [3]]}), "t", 100, "u")
    assert flat.tolist() == [1, 2, 3] and lengths.tolist() == [2, 1]


def test_json_nested_past_the_limit_is_refused_before_a_parser_crashes(tmp_path: Path) -> None:
    """pyarrow's JSON reader segfaults on ~20,000 levels (the whole `prepare` died with status 139)."""
    from curriculum.validation import MAX_JSON_DEPTH, check_json_depth

    path = tmp_path / "d.jsonl"
    deep = '{"text": "a", "x": ' + "[" * 30000 + "]" * 30000 + "}\n"
    fine = '{"text": "brackets [[[[ in ]]]] text \\" [[[ are not nesting", "x": [[1]]}\n'
    path.write_text(fine * 3 + deep)
    with pytest.raises(
        UserError, match=rf"d\.jsonl:4: JSON nested 30001 levels deep, more than the limit of {MAX_JSON_DEPTH}"
    ):
        read_unit(SourceConfig(path=str(path)), _whole(path, "json"), "d/0")
    with pytest.raises(UserError, match=r"d\.jsonl:4: JSON nested more than"):
        load_documents(SourceConfig(path=str(path)))
    unit = {**_whole(path, "json"), "start": len(fine) + 1, "stop": path.stat().st_size}
    with pytest.raises(UserError, match=r"d\.jsonl:4: JSON nested"):  # a byte range counts lines from the file's start
        read_unit(SourceConfig(path=str(path)), unit, "d/0")
    check_json_depth(('{"text": "' + "[" * 5000 + '"}\n').encode(), "x")  # inside a string: no nesting at all
    check_json_depth(("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "\n").encode(), "x")  # at the limit
