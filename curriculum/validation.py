"""Checks on data inputs that name the file, the line and the cause instead of a library traceback.

Each check is one small function, called from the reader (`curriculum.documents`), from `prepare`
(`curriculum.store.prepare`, `curriculum.store.prepare.readers`) or from the store reader (`curriculum.store.reader`), so the readers stay short and the
checks move with them when the store's layout changes:

- `check_json_lines`: a `.jsonl` file is UTF-8, non-empty, one JSON object per line, and every row
  has the text (and id) fields as strings; the first bad line is reported as ``file:line: cause``.
  Reading is a plain Python pass (a few seconds per GB), done before `datasets` sees the file.
- `check_utf8_text` / `check_text_file`: plain text is UTF-8 too (the first bad byte by line and
  column, and the count), where it used to become U+FFFD without a word.
- `check_ids_present`: no document id is null.
- `check_columns`: a source has the columns its settings name (text, id, `where` keys).
- `check_text_columns`: the text columns of any loaded source hold strings (parquet, arrow, ...).
- `drop_empty_documents` / `report_empty_documents`: null or blank texts would become pure-EOS
  sequences; all of them empty is an error, some is a warning, and those documents are dropped.
- `check_unique_ids` / `check_unique_id_batches`: document ids pick the validation split, so
  duplicates are refused (`prepare` checks a whole domain over its shards' document tables).
- `read_store_meta` / `check_shard_table` / `load_store_array` / `check_domain_ids`: a damaged or
  edited ``manifest.json`` (or format-1 ``meta.json``; its schema is `curriculum.store.manifest`), shard
  table or ``.npy`` file of a token store is a UserError naming the file, the field and the fix.
- `is_token_store`: what `prepare --overwrite` may replace (only a currimix store, finished or not).
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np

from curriculum.errors import UserError
from curriculum.store.manifest import manifest_problems

if TYPE_CHECKING:
    import datasets

JSON_LINES_SUFFIXES = (".jsonl", ".jsonl.gz")
# Deeper JSON crashes parsers (pyarrow's reader segfaults near 20,000 levels, Python's raises RecursionError
# near 1,000); no document corpus needs more, so it is a fixed limit rather than a setting.
MAX_JSON_DEPTH = 512
_JSON_STRING = re.compile(rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')  # unrolled: one step per run of plain bytes
STORE_ENTRIES = ("units.json", "manifest.json", "shards", "tokenizer", "orders")  # what `prepare` writes
STORE_META_KEYS = ("format", "seq_len", "token_dtype", "eos_id", "vocab_size", "domains", "stats")
_DAMAGED = "the store is damaged; run `currimix prepare --overwrite` to rebuild it"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _raw_lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            yield from fh
    except (OSError, EOFError) as exc:  # gzip: bad magic number, truncated stream
        raise UserError(f"{path}: cannot be read ({exc})") from None


def check_json_lines(path: str | Path, fields: list[str], id_field: str | None) -> None:
    """Raise a UserError naming ``path``, the line and the cause for the first line that is not a
    UTF-8 JSON object with string ``fields`` (and a string or number ``id_field``)."""
    path = Path(path)
    check_json_line_bytes(_raw_lines(path), path, 1, fields, id_field, whole_file=True)


def check_json_line_bytes(
    lines: Iterable[bytes],
    origin: str | Path,
    first_line: int,
    fields: list[str],
    id_field: str | None,
    whole_file: bool,
) -> None:
    """`check_json_lines` over raw ``lines`` numbered from ``first_line`` (a unit of `prepare` may be
    a byte range of a file); ``whole_file``: no rows at all is an error."""
    path = origin
    rows = 0
    types: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(lines, start=first_line):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{path}:{number}: not UTF-8 text (byte {raw[exc.start]:#04x} at column {exc.start + 1}); "
                "re-encode the file as UTF-8"
            ) from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        except RecursionError:
            raise UserError(
                f"{path}:{number}: JSON nested more than {MAX_JSON_DEPTH} levels deep; flatten that field or "
                "leave the row out"
            ) from None
        if not isinstance(row, dict):
            raise UserError(
                f"{path}:{number}: a JSON lines file holds one object per line, this line is {_json_type(row)}"
            )
        rows += 1
        for key, value in row.items():  # a column has one type: arrow cannot load e.g. 1 and "a"
            kind = _json_type(value)
            first = types.setdefault(key, (kind, number)) if value is not None else (kind, number)
            if first[0] != kind:
                raise UserError(
                    f"{path}:{number}: field {key!r} is {kind} here but {first[0]} on line {first[1]}; "
                    "each field must have one type in every row"
                )
        for field in fields:
            if field not in row:
                raise UserError(
                    f"{path}:{number}: no {field!r} field (this row has {sorted(row)}); every row needs the text field"
                )
            value = row[field]
            if value is not None and not isinstance(value, str):
                raise UserError(
                    f"{path}:{number}: field {field!r} is {_json_type(value)} ({json.dumps(value)[:40]}), "
                    "expected a string of text"
                )
        if id_field is not None:
            value = row.get(id_field)
            if id_field not in row:
                raise UserError(
                    f"{path}:{number}: no {id_field!r} field (this row has {sorted(row)}); document ids come from "
                    f"the {id_field!r} column, so every row needs one (or set `id_field` to another column)"
                )
            if value is None or isinstance(value, (bool, list, dict)):
                raise UserError(
                    f"{path}:{number}: id field {id_field!r} is {_json_type(value)}, expected a string or number"
                )
    if rows == 0 and whole_file:
        raise UserError(f"{path}: holds no documents (the file is empty or blank)")


def check_ids_present(ids: Any, where: str, id_field: str) -> None:
    """A document-id column (pyarrow) has no nulls: ids pick the validation split and break ties,
    so a missing one cannot be made up; the first null row is named (0-based, within ``where``)."""
    if not ids.null_count:
        return
    import pyarrow.compute as pc

    first = int(pc.index(pc.is_null(ids), True).as_py())
    raise UserError(
        f"{where}: row {first} has a null id in column {id_field!r} ({ids.null_count} such rows); give every "
        "document an id, or set `id_field` to a column that has one"
    )


def check_utf8_text(data: bytes, origin: str | Path, first_line: int | Callable[[], int] = 1) -> str:
    """``data`` decoded as UTF-8, or a UserError naming ``origin``, the line and column of the first
    byte that is not UTF-8 and how many such bytes there are. Plain text is held to the same rule as
    JSON lines: bytes that are not text are refused, never silently turned into U+FFFD.
    ``first_line`` may be a function, called only to report an error (counting lines costs a read)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first = first_line() if callable(first_line) else first_line
        line = first + data.count(b"\n", 0, exc.start)
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = sum(1 for ch in data.decode("utf-8", "surrogateescape") if "\udc80" <= ch <= "\udcff")
        raise UserError(
            f"{origin}:{line}: not UTF-8 text (byte {data[exc.start]:#04x} at column {column}; {bad:,} such bytes "
            "in this file or range: binary data?); re-encode the file as UTF-8 or leave it out of the source"
        ) from None


def check_text_file(path: str | Path) -> None:
    """A plain-text source file (``.gz`` or not) is UTF-8 (see `check_utf8_text`)."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: cannot be read ({exc})") from None
    check_utf8_text(data, path)


def check_json_depth(data: bytes, origin: str | Path, first_line: int | Callable[[], int] = 1) -> None:
    """Refuse JSON lines nested more than `MAX_JSON_DEPTH` levels deep, naming ``origin:line``, before a
    parser sees them. A line can only be that deep if it holds that many ``[`` or ``{``: those are
    counted per line with numpy (a fraction of pyarrow's parse time), and only such lines are measured
    exactly, with their strings blanked out."""
    buf = np.frombuffer(data, dtype=np.uint8)
    chunk = 1 << 24
    start = 0
    while start < len(buf):
        stop = data.find(b"\n", min(start + chunk, len(buf)))
        stop = len(buf) if stop < 0 else stop + 1
        piece = buf[start:stop]
        opens = np.cumsum((piece == 91) | (piece == 123), dtype=np.int32)  # '[' or '{'
        ends = np.flatnonzero(piece == 10)
        if not len(ends) or ends[-1] != len(piece) - 1:
            ends = np.append(ends, len(piece) - 1)
        per_line = np.diff(opens[ends], prepend=0)
        for k in np.flatnonzero(per_line > MAX_JSON_DEPTH).tolist():
            a = start + (int(ends[k - 1]) + 1 if k else 0)
            skeleton = np.frombuffer(_JSON_STRING.sub(b'""', data[a : start + int(ends[k]) + 1]), dtype=np.uint8)
            step = ((skeleton == 91) | (skeleton == 123)).astype(np.int32) - ((skeleton == 93) | (skeleton == 125))
            depth = int(np.cumsum(step).max())
            if depth > MAX_JSON_DEPTH:
                line = (first_line() if callable(first_line) else first_line) + data.count(b"\n", 0, a)
                raise UserError(
                    f"{origin}:{line}: JSON nested {depth} levels deep, more than the "
                    f"limit of {MAX_JSON_DEPTH} (deeper JSON crashes the parsers); flatten that field or leave the "
                    "row out"
                )
        start = stop


def check_columns(where: str, needed: list[str], data: Any, what: str = "no column") -> None:
    """Every column in ``needed`` is one of ``data``'s (a Dataset or a pyarrow Table); else a UserError
    naming the missing ones (``what``) and the columns there are."""
    columns = data.column_names
    missing = [c for c in needed if c not in columns]
    if missing:
        raise UserError(f"{where}: {what} {missing} (columns: {columns})")


def check_text_columns(ds: "datasets.Dataset", fields: list[str], where: str) -> None:
    """The text columns of a loaded source hold strings (or nulls)."""
    import datasets

    for name in fields:
        feature = ds.features.get(name)
        if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string", "null"):
            continue
        kind = feature.dtype if isinstance(feature, datasets.Value) else type(feature).__name__
        raise UserError(f"{where}: column {name!r} holds {kind} values, expected strings of text")


def drop_empty_documents(ds: "datasets.Dataset", where: str, num_proc: int | None = None) -> "datasets.Dataset":
    """Remove documents whose text is empty or blank (each would pack as a lone EOS token); all of
    them empty is an error, some a warning with the count."""
    keep = ds.filter(
        lambda text: bool(text and text.strip()), input_columns="text", num_proc=num_proc, desc=f"check {where}"
    )
    report_empty_documents(where, len(ds), len(keep))
    return keep


def report_empty_documents(where: str, total: int, kept: int) -> None:
    """After dropping the empty documents of ``total``: none kept is an error, some dropped a warning
    with the count (for both readers: this Dataset one and `curriculum.store.prepare.readers`' pyarrow one)."""
    dropped = total - kept
    if dropped and not kept:
        raise UserError(f"{where}: all {total} documents have empty or null text; check `text_field`")
    if dropped:
        print(f"warning: {where}: dropped {dropped} of {total} documents with empty or null text", file=sys.stderr)


def check_unique_ids(ds: "datasets.Dataset", where: str, batch_size: int = 100_000) -> None:
    """Refuse duplicate document ids of a loaded Dataset; see `check_unique_id_batches`."""

    def batches() -> Iterator[list[str]]:
        for start in range(0, len(ds), batch_size):
            yield ds[start : start + batch_size]["id"]

    check_unique_id_batches(batches, where)


def check_unique_id_batches(batches: Callable[[], Iterable[list[str]]], where: str) -> None:
    """Refuse duplicate document ids (they decide the validation split and the packing tie-break).

    ``batches()`` yields the ids batch by batch (e.g. the document tables of a domain's shards).
    Ids are hashed to 64 bits, so memory is 8 bytes per document; hash collisions are confirmed
    against the ids themselves (a second pass over the batches) before anything is reported."""
    parts = []
    for ids in batches():
        parts.append(
            np.fromiter(
                (int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little") for i in ids),
                dtype=np.uint64,
                count=len(ids),
            )
        )
    hashes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    values, counts = np.unique(hashes, return_counts=True)
    suspects = set(values[counts > 1].tolist())
    if not suspects:
        return
    repeated: collections.Counter[str] = collections.Counter()
    for ids in batches():
        repeated.update(
            i for i in ids if int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little") in suspects
        )
    duplicates = {k: n for k, n in repeated.items() if n > 1}
    if duplicates:
        shown = ", ".join(f"{k!r} x{n}" for k, n in list(duplicates.items())[:5])
        raise UserError(
            f"{where}: {len(duplicates)} document id(s) appear more than once ({shown}); ids choose the "
            "validation split, so they must be unique: deduplicate the documents or set `id_field` to a unique column"
        )


def is_token_store(folder: Path) -> bool:
    """Whether ``folder`` holds a currimix token store, so `prepare --overwrite` may replace it: a
    sharded store's manifest.json, a format-1 store's meta.json, or an unfinished sharded prepare
    (its units.json lists the units of work)."""
    for name, keys in (
        ("manifest.json", STORE_META_KEYS),
        ("meta.json", ("format", "seq_len", "domains", "token_dtype")),
    ):
        try:
            meta = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and all(k in meta for k in keys):
            return True
    try:
        units = json.loads((folder / "units.json").read_text())
    except (OSError, ValueError):
        units = None
    if isinstance(units, list) and all(isinstance(u, dict) and {"name", "domain"} <= set(u) for u in units):
        return True
    # A damaged units.json still marks an unfinished prepare beside its shards or tokenizer when nothing
    # else is in the folder: otherwise neither resuming nor --overwrite could get past it.
    entries = [p.name for p in folder.iterdir()] if (folder / "units.json").is_file() else []
    return bool({"shards", "tokenizer"} & set(entries)) and all(
        name in STORE_ENTRIES or name.startswith(".") for name in entries
    )


def read_store_meta(path: Path, formats: tuple[int, ...]) -> dict[str, Any]:
    """A store's manifest.json (or a format-1 meta.json), checked for its format and the keys readers need."""
    root = path.parent
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); {_DAMAGED}") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path} should hold a JSON object, not {_json_type(meta)}; {_DAMAGED}")
    if meta.get("format") not in formats:
        raise UserError(
            f"token store {str(root)!r} has format {meta.get('format')}, this currimix reads formats "
            f"{', '.join(map(str, formats))}; run `prepare --overwrite` again"
        )
    keys = STORE_META_KEYS + (("shards",) if path.name == "manifest.json" else ())
    missing = [k for k in keys if k not in meta]
    if missing:
        raise UserError(f"{path} lacks {missing}; {_DAMAGED}")
    if not isinstance(meta["domains"], list) or not all(isinstance(d, str) for d in meta["domains"]):
        raise UserError(f"{path}: 'domains' should be a list of names; {_DAMAGED}")
    for key in ("seq_len", "eos_id", "vocab_size"):
        if not isinstance(meta[key], int) or isinstance(meta[key], bool) or meta[key] < 0:
            raise UserError(f"{path}: {key!r} should be a non-negative integer, got {meta[key]!r}; {_DAMAGED}")
    try:
        np.dtype(meta["token_dtype"])
    except TypeError:
        raise UserError(f"{path}: token_dtype {meta['token_dtype']!r} is not a numpy dtype; {_DAMAGED}") from None
    if "shards" in keys:
        check_shard_table(meta, path)
    problems = manifest_problems(meta)  # the full schema: bounds, cross-field rules, the layout digest
    if problems:
        raise UserError(
            f"{path} cannot be trusted to describe the store's files; {_DAMAGED} (or restore the original "
            f"{path.name}):",
            problems,
        )
    return meta


def check_shard_table(meta: dict[str, Any], path: Path) -> None:
    """The manifest's shards name known domains, in domain order, with per-split sequence counts
    (the readers' global ids are built from this table)."""
    index = {name: d for d, name in enumerate(meta["domains"])}
    shards = meta["shards"]
    if not isinstance(shards, list):
        raise UserError(f"{path}: 'shards' should be a list; {_DAMAGED}")
    last = 0
    for k, shard in enumerate(shards):
        try:
            domain = index[shard["domain"]]
            counts = [int(shard["splits"][split]["sequences"]) for split in ("train", "val")]
            name = shard["name"]
        except (KeyError, TypeError, ValueError):
            raise UserError(
                f"{path}: shard {k} lacks its name, a known domain or per-split sequence counts; {_DAMAGED}"
            ) from None
        if not isinstance(name, str) or "/" in name or name.startswith(".") or min(counts) < 0:
            raise UserError(f"{path}: shard {k} has a bad name or negative counts; {_DAMAGED}")
        if domain < last:
            raise UserError(f"{path}: shards are not in domain order (shard {k}, {shard['domain']!r}); {_DAMAGED}")
        last = domain


def load_store_array(path: Path, kind: str, length: int | None = None, mmap: bool = False) -> np.ndarray:
    """A 1-D ``.npy`` array of a store (``kind``: 'i' integers, 'f' floats), of ``length`` entries;
    ``mmap`` maps it instead of reading it (the header is still checked, the data is not read)."""
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except FileNotFoundError:
        raise UserError(f"{path} is missing; {_DAMAGED}") from None
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path} is not a readable .npy array ({exc}); {_DAMAGED}") from None
    _check_array_shape(path, array.shape, array.dtype, kind, length)
    return array


def _check_array_shape(path: Path, shape: tuple[int, ...], dtype: np.dtype, kind: str, length: int | None) -> None:
    """A store array is 1-D, of ``kind`` ('i' or 'f'), and (when given) ``length`` long."""
    if len(shape) != 1 or dtype.kind != kind:
        raise UserError(f"{path} holds a {dtype} array of shape {shape}, expected 1-D {kind!r}; {_DAMAGED}")
    if length is not None and shape[0] != length:
        raise UserError(f"{path} has {shape[0]} entries, expected {length} (one per sequence); {_DAMAGED}")


def check_store_array(path: Path, kind: str, length: int) -> None:
    """The header of a store's 1-D ``.npy`` file says ``length`` entries of ``kind`` and the file is
    that long: read once when a store opens (a few hundred bytes per shard; the data stays unread)."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(fh)
            data_start = fh.tell()
    except FileNotFoundError:
        raise UserError(f"{path} is missing; {_DAMAGED}") from None
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path} is not a readable .npy array ({exc}); {_DAMAGED}") from None
    _check_array_shape(path, shape, dtype, kind, length)
    if path.stat().st_size < data_start + length * dtype.itemsize:
        raise UserError(f"{path} is not a readable .npy array (it is cut short); {_DAMAGED}")


def check_tokens_file(path: Path, rows: int, row_bytes: int) -> None:
    """A shard's tokens.bin holds exactly ``rows`` sequences of ``row_bytes`` bytes."""
    if not path.is_file():
        raise UserError(
            f"token store {path.parent}: tokens.bin is missing; run `prepare --overwrite` to rebuild the store"
        )
    size = path.stat().st_size
    if size != rows * row_bytes:
        raise UserError(
            f"token store {path.parent}: tokens.bin has {size} bytes, expected {rows} sequences of {row_bytes} "
            "bytes; the store is damaged, run `prepare --overwrite` to rebuild it"
        )


def check_domain_ids(domain: np.ndarray, n_domains: int, path: Path) -> None:
    """Domain ids are in range and contiguous (sorted), as the store's readers assume."""
    if len(domain) and (domain.min() < 0 or domain.max() >= n_domains):
        raise UserError(
            f"{path}: domain ids span {domain.min()}..{domain.max()}, the store has {n_domains} domains; {_DAMAGED}"
        )
    if len(domain) > 1 and (np.diff(domain.astype(np.int64)) < 0).any():
        raise UserError(f"{path}: domain ids are not in domain order; {_DAMAGED}")
