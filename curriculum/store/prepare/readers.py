"""Reading one unit of `prepare`'s work into a pyarrow Table: columns, never rows.

A unit is a whole input file, a byte range of a large uncompressed JSON-lines or line-split text
file, or a row range of a `datasets` folder. Its documents come back as a pyarrow Table with a
``text`` column (or the pre-tokenized ``tokens_field``), an ``id`` column and the source's other
columns, read straight by pyarrow: no `datasets` map, no cache folder beside the input.

Generated document ids do not depend on how files are cut into units (so the validation split
and the store's contents do not either): JSON lines are named by their byte offset in the
(uncompressed) file, ``<domain>/<source>:<file>@<byte>``; other rows by their row in the file,
``<domain>/<source>:<file>:<row>``; rows of a `datasets` folder by their row, ``<domain>/<source>:<row>``.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import io
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from curriculum.documents import SourceConfig, compile_split_pattern, split_text
from curriculum.errors import UserError
from curriculum.validation import (
    check_columns,
    check_ids_present,
    check_json_depth,
    check_json_line_bytes,
    check_utf8_text,
    report_empty_documents,
)

_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 11, 12, 13, 32]] = True


def read_bytes(path: str, start: int = 0, stop: int | None = None) -> tuple[int, bytes]:
    """(base, data): the lines of ``path`` that start in [start, stop) and the byte offset ``base``
    where the first of them starts (the whole file, decompressed, from base 0 when stop is None)."""
    if stop is None:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return 0, fh.read()
        if path.endswith(".zst"):
            return 0, pa.input_stream(path, compression="zstd").read()
        return 0, Path(path).read_bytes()
    with open(path, "rb") as fh:
        if start > 0:
            fh.seek(start - 1)
            fh.readline()  # to the first line starting at or after `start`
        pos = fh.tell()
        data = fh.read(max(stop - pos, 0))
        if data and not data.endswith(b"\n"):
            data += fh.readline()  # the last line started before `stop`: it is ours
    return pos, data


def line_starts(data: bytes) -> np.ndarray:
    """Byte offsets of the non-blank lines of ``data`` (what a JSON-lines parser turns into rows)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if not len(buf):
        return np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], np.flatnonzero(buf == 10) + 1])
    starts = starts[starts < len(buf)]
    solid = (~_WHITESPACE[buf]).astype(np.int64)
    return starts[np.add.reduceat(solid, starts) > 0]


def _suspect(table: pa.Table, fields: list[str], id_field: str | None) -> bool:
    """Whether the parsed table may hide a row `check_json_line_bytes` refuses (a missing or
    non-string text field, a null or non-scalar id); only then are the lines checked in Python."""
    for name in fields:
        if name not in table.column_names:
            return True
        column = table.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) or column.null_count:
            return True
    if id_field is not None:
        if id_field not in table.column_names:
            return True
        column = table.column(id_field)
        scalar = (
            pa.types.is_string(column.type) or pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        )
        return not scalar or bool(column.null_count)
    return False


def _is_utf8(data: bytes, chunk: int = 1 << 24) -> bool:
    """Whether ``data`` is valid UTF-8 (pyarrow's JSON reader lets bad bytes into strings); decoded
    in chunks and thrown away, so memory stays flat."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(view), chunk):
            decoder.decode(view[start : start + chunk])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _line_number(path: str, base: int) -> int:
    """The 1-based number of the line starting at byte ``base`` (counted only to report an error)."""
    count = 0
    with open(path, "rb") as fh:
        while fh.tell() < base:
            chunk = fh.read(min(1 << 24, base - fh.tell()))
            if not chunk:
                break
            count += chunk.count(b"\n")
    return count + 1


def read_checked_json(
    data: bytes, path: str, base: int, whole_file: bool, fields: list[str], id_field: str | None
) -> pa.Table:
    """JSON lines parsed by pyarrow, with `curriculum.validation`'s per-line checks: file:line
    messages for malformed lines, non-UTF-8 bytes, a line that is not an object, non-string text,
    a column changing type, a null id, and an empty file. The Python line pass runs only when
    pyarrow failed or its table looks suspect, so a clean file costs nothing extra."""
    if whole_file and not data.strip():
        raise UserError(f"{path}: holds no documents (the file is empty or blank)")
    check_json_depth(data, path, 1 if base == 0 else functools.partial(_line_number, path, base))
    try:
        table = (
            pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=1 << 24)) if data.strip() else None
        )
        error = None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        table, error = None, exc
    if id_field is None and table is not None and "id" in table.column_names:
        id_field = "id"  # the default id column (`SourceConfig.id_column`): its rows are checked alike
    if table is not None and _is_utf8(data) and not _suspect(table, fields, id_field):
        return table
    if error is None and table is None:
        return pa.table({})
    first = 1 if base == 0 else _line_number(path, base)
    check_json_line_bytes(io.BytesIO(data), path, first, fields, id_field, whole_file)
    if error is not None:  # pyarrow refused what the line check accepts (rare: e.g. nesting depth)
        raise UserError(f"{path}: not valid JSON lines: {error}")
    return table


def read_text(data: bytes, mode: str, origin: str = "text", first_line: int | Callable[[], int] = 1) -> list[str]:
    """The documents of plain text: the whole text, its blank-line paragraphs or its lines; bytes
    that are not UTF-8 are refused with ``origin:line`` (`check_utf8_text`)."""
    text = check_utf8_text(data, origin, first_line)
    if mode == "document":
        return [text]
    if mode == "paragraph":
        return [p for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    return [line for line in text.splitlines(keepends=True) if line.strip()]


def _as_text(table: pa.Table, fields: list[str]) -> pa.Array:
    cols = [pc.fill_null(pc.cast(table.column(f), pa.string()), "") for f in fields]
    return cols[0] if len(cols) == 1 else pc.binary_join_element_wise(*cols, "\n\n")


def _where(table: pa.Table, where: dict[str, Any], origin: str) -> pa.Table:
    mask = None
    check_columns(origin, list(where), table, "`where` names unknown columns")
    for key, wanted in where.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        column = table.column(key)
        try:
            hit = pc.is_in(column, value_set=pa.array(values).cast(column.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            hit = pa.array([v in values for v in column.to_pylist()])  # mixed types: compare as Python values
        hit = pc.fill_null(hit, False)
        mask = hit if mask is None else pc.and_(mask, hit)
    return table.filter(mask)


def read_unit(source: SourceConfig, unit: dict[str, Any], source_name: str) -> pa.Table:
    """The documents of one unit: ``text`` (or the tokens field), ``id`` and the other columns."""
    fmt = unit["format"]
    tables, ids = [], []
    fields = [] if source.tokens_field else source.text_fields
    for k, path in zip(unit["file_indices"], unit["files"]):
        origin = f"data source {source.path!r}, file {path!r}"
        if fmt == "arrow":
            table = _arrow_rows(path, unit["start"], unit["stop"], origin)
            ids.append([f"{source_name}:{r}" for r in range(unit["start"], unit["start"] + table.num_rows)])
        elif fmt == "json":
            base, data = _read_or_explain(path, unit)
            table = read_checked_json(data, path, base, unit["stop"] is None, fields, source.id_field)
            starts = line_starts(data)
            if table.num_rows != len(starts):
                raise UserError(f"{origin}: {table.num_rows} JSON rows in {len(starts)} non-blank lines")
            ids.append([f"{source_name}:{k}@{base + int(s)}" for s in starts])
        elif fmt == "parquet":
            try:
                table = pq.read_table(path)
            except (pa.ArrowInvalid, OSError) as exc:
                raise UserError(f"{origin}: could not read parquet files: {exc}") from None
            ids.append([f"{source_name}:{k}:{r}" for r in range(table.num_rows)])
        else:
            base, data = _read_or_explain(path, unit)
            line = functools.partial(_line_number, path, base) if base else 1  # counted only for an error
            texts = read_text(data, source.text_split, path, line)
            table = pa.table({"text": pa.array(texts, pa.string())})
            first = unit["start"] if unit["stop"] is not None else 0
            ids.append([f"{source_name}:{k}:{first}+{r}" for r in range(table.num_rows)])
        tables.append(table)
    return _columns(source, fields, tables, ids)


def _read_or_explain(path: str, unit: dict[str, Any]) -> tuple[int, bytes]:
    """The unit's (base, bytes), see `read_bytes`; a file that cannot be read or decompressed is a
    UserError naming it."""
    try:
        return read_bytes(path, unit["start"], unit["stop"])
    except (OSError, EOFError, pa.ArrowInvalid) as exc:  # gzip: bad magic number, truncated stream
        raise UserError(f"{path}: cannot be read ({exc})") from None


def _arrow_rows(path: str, start: int, stop: int, origin: str) -> pa.Table:
    import datasets

    loaded = datasets.load_from_disk(path)
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise UserError(f"{origin}: a DatasetDict without a `train` split")
        loaded = loaded["train"]
    if loaded._indices is not None:  # a selected / shuffled view: materialise its rows
        loaded = loaded.flatten_indices()
    return loaded.data.table.slice(start, stop - start)


def _columns(source: SourceConfig, fields: list[str], tables: list[pa.Table], ids: list[list[str]]) -> pa.Table:
    tables = [t for t in tables if t.num_columns]
    id_lists = [i for i in ids if i]
    if not tables:
        return pa.table({"text": pa.array([], pa.string()), "id": pa.array([], pa.string())})
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    generated = [x for chunk in id_lists for x in chunk]
    origin = f"data source {source.path!r}"
    tokens_field = source.tokens_field
    needed = fields + ([tokens_field] if tokens_field else []) + ([source.id_field] if source.id_field else [])
    check_columns(origin, needed, table)
    id_field = source.id_column(table.column_names)
    if id_field:
        kind = table.column(id_field).type
        checks = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_floating)
        if not any(check(kind) for check in checks) and not pa.types.is_null(kind):  # null: reported next
            raise UserError(f"{origin}: id column {id_field!r} holds {kind} values, expected strings or numbers")
        check_ids_present(table.column(id_field), origin, id_field)
    doc_ids = pc.cast(table.column(id_field), pa.string()) if id_field else pa.array(generated, pa.string())
    if "id" in table.column_names:
        table = table.drop_columns(["id"])
    table = table.append_column("id", doc_ids)
    for name in fields:  # a cast would turn numbers into text silently
        kind = table.column(name).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
            raise UserError(f"{origin}: column {name!r} holds {kind} values, expected strings of text")
    if fields:
        text = _as_text(table, fields)
        if "text" in table.column_names:
            table = table.drop_columns(["text"])
        table = table.append_column("text", text)
    if source.where:
        table = _where(table, source.where, origin)
    if source.max_documents is not None and table.num_rows > source.max_documents:
        table = table.slice(0, source.max_documents)
    if fields:
        table = drop_empty_documents(table, origin)
    if source.split_pattern and fields:
        table = split_table(table, source)
    return table


def drop_empty_documents(table: pa.Table, origin: str) -> pa.Table:
    """Remove documents whose text is empty or blank (each would pack as a lone EOS token): some is a
    warning with the count, all of them an error (`curriculum.validation.report_empty_documents`)."""
    if not table.num_rows:
        return table
    keep = pc.not_equal(pc.utf8_length(pc.utf8_trim_whitespace(table.column("text"))), 0)
    kept = table.filter(keep)
    report_empty_documents(origin, table.num_rows, kept.num_rows)
    return kept


def split_table(table: pa.Table, source: SourceConfig) -> pa.Table:
    """Cut each document where ``split_pattern`` matches; pieces get ids ``<id>#<k>`` (text + id only)."""
    pattern = compile_split_pattern(source)
    texts, ids = [], []
    for text, doc_id in zip(table.column("text").to_pylist(), table.column("id").to_pylist()):
        pieces, piece_ids = split_text(pattern, text, doc_id, source.split_timeout_s, f"data source {source.path!r}")
        texts.extend(pieces)
        ids.extend(piece_ids)
    return pa.table({"text": pa.array(texts, pa.string()), "id": pa.array(ids, pa.string())})
