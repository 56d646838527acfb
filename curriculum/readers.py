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

import gzip
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from curriculum.documents import SourceConfig
from curriculum.errors import UserError

_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 11, 12, 13, 32]] = True


def read_bytes(path: str, start: int = 0, stop: int | None = None) -> bytes:
    """The lines of ``path`` that start in [start, stop) (whole file, decompressed, when stop is None)."""
    if stop is None:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read()
        if path.endswith(".zst"):
            return pa.input_stream(path, compression="zstd").read()
        return Path(path).read_bytes()
    with open(path, "rb") as fh:
        if start > 0:
            fh.seek(start - 1)
            fh.readline()  # to the first line starting at or after `start`
        pos = fh.tell()
        data = fh.read(max(stop - pos, 0))
        if data and not data.endswith(b"\n"):
            data += fh.readline()  # the last line started before `stop`: it is ours
    return data


def line_starts(data: bytes) -> np.ndarray:
    """Byte offsets of the non-blank lines of ``data`` (what a JSON-lines parser turns into rows)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if not len(buf):
        return np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], np.flatnonzero(buf == 10) + 1])
    starts = starts[starts < len(buf)]
    solid = (~_WHITESPACE[buf]).astype(np.int64)
    return starts[np.add.reduceat(solid, starts) > 0]


def read_json_lines(data: bytes, origin: str) -> pa.Table:
    if not data.strip():
        return pa.table({})
    try:
        return pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=1 << 24))
    except pa.ArrowInvalid as exc:
        raise UserError(f"{origin}: not valid JSON lines: {exc}") from None


def read_text(data: bytes, mode: str) -> list[str]:
    text = data.decode("utf-8", errors="replace")
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
    for key, wanted in where.items():
        if key not in table.column_names:
            raise UserError(f"{origin}: `where` names unknown column {key!r} (columns: {table.column_names})")
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
    for k, path in zip(unit["file_indices"], unit["files"]):
        origin = f"data source {source.path!r}, file {path!r}"
        if fmt == "arrow":
            table = _arrow_rows(path, unit["start"], unit["stop"], origin)
            ids.append([f"{source_name}:{r}" for r in range(unit["start"], unit["start"] + table.num_rows)])
        elif fmt == "json":
            data = read_bytes(path, unit["start"], unit["stop"]) if unit["stop"] is not None else read_bytes(path)
            base = _range_base(path, unit["start"]) if unit["stop"] is not None else 0
            table = read_json_lines(data, origin)
            starts = line_starts(data)
            if table.num_rows != len(starts):
                raise UserError(f"{origin}: {table.num_rows} JSON rows in {len(starts)} non-blank lines")
            ids.append([f"{source_name}:{k}@{base + int(s)}" for s in starts])
        elif fmt == "parquet":
            try:
                table = pq.read_table(path)
            except (pa.ArrowInvalid, OSError) as exc:
                raise UserError(f"{origin}: not a readable parquet file: {exc}") from None
            ids.append([f"{source_name}:{k}:{r}" for r in range(table.num_rows)])
        else:
            data = read_bytes(path, unit["start"], unit["stop"]) if unit["stop"] is not None else read_bytes(path)
            texts = read_text(data, source.text_split)
            table = pa.table({"text": pa.array(texts, pa.string())})
            first = unit["start"] if unit["stop"] is not None else 0
            ids.append([f"{source_name}:{k}:{first}+{r}" for r in range(table.num_rows)])
        tables.append(table)
    return _columns(source, tables, ids, source_name)


def _range_base(path: str, start: int) -> int:
    """The byte offset where reading a range starting at ``start`` really begins."""
    if start == 0:
        return 0
    with open(path, "rb") as fh:
        fh.seek(start - 1)
        fh.readline()
        return fh.tell()


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


def _columns(source: SourceConfig, tables: list[pa.Table], ids: list[list[str]], source_name: str) -> pa.Table:
    tables = [t for t in tables if t.num_columns]
    id_lists = [i for i in ids if i]
    if not tables:
        return pa.table({"text": pa.array([], pa.string()), "id": pa.array([], pa.string())})
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    generated = [x for chunk in id_lists for x in chunk]
    origin = f"data source {source.path!r}"
    tokens_field = getattr(source, "tokens_field", None)
    fields = (
        [] if tokens_field else ([source.text_field] if isinstance(source.text_field, str) else list(source.text_field))
    )
    needed = fields + ([tokens_field] if tokens_field else []) + ([source.id_field] if source.id_field else [])
    missing = [f for f in needed if f not in table.column_names]
    if missing:
        raise UserError(f"{origin}: no column {missing} (columns: {table.column_names})")
    id_field = source.id_field or ("id" if "id" in table.column_names else None)
    doc_ids = pc.cast(table.column(id_field), pa.string()) if id_field else pa.array(generated, pa.string())
    if "id" in table.column_names:
        table = table.drop_columns(["id"])
    table = table.append_column("id", doc_ids)
    if fields:
        text = _as_text(table, fields)
        if "text" in table.column_names:
            table = table.drop_columns(["text"])
        table = table.append_column("text", text)
    if source.where:
        table = _where(table, source.where, origin)
    if source.max_documents is not None and table.num_rows > source.max_documents:
        table = table.slice(0, source.max_documents)
    if source.split_pattern and fields:
        table = split_table(table, source)
    return table


def split_table(table: pa.Table, source: SourceConfig) -> pa.Table:
    """Cut each document where ``split_pattern`` matches; pieces get ids ``<id>#<k>`` (text + id only)."""
    try:
        pattern = re.compile(source.split_pattern, re.MULTILINE)
    except re.error as exc:
        raise UserError(
            f"data source {source.path!r}: split_pattern {source.split_pattern!r} is not a valid "
            f"regular expression ({exc})"
        ) from None
    texts, ids = [], []
    for text, doc_id in zip(table.column("text").to_pylist(), table.column("id").to_pylist()):
        starts = sorted({0} | {m.start() for m in pattern.finditer(text)})
        pieces = [p for p in (text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])) if p.strip()]
        texts.extend(pieces)
        ids.extend(f"{doc_id}#{k}" for k in range(len(pieces)))
    return pa.table({"text": pa.array(texts, pa.string()), "id": pa.array(ids, pa.string())})
