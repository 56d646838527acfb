"""Document sources: the `SourceConfig` schema, file resolution, and whole-source loading for `currimix score`.

`prepare` reads sources in units of work through `curriculum.store.prepare.readers` (pyarrow, no cache);
`load_documents` here loads one whole source as a `datasets.Dataset` with a ``text`` column (str),
an ``id`` column (str, unique within the source) and the source's other columns untouched, for the
`score` commands (apply, inspect, evaluate, fit), which write datasets back out.
"""

from __future__ import annotations

import glob
import os
import stat
from pathlib import Path
from typing import Any, Literal

import datasets
import regex
from pydantic import Field, field_validator

from curriculum.errors import UserError
from curriculum.registry import StrictModel
from curriculum.validation import (
    JSON_LINES_SUFFIXES,
    check_columns,
    check_ids_present,
    check_json_lines,
    check_text_columns,
    check_text_file,
    drop_empty_documents,
)

_JSON_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst")
_PARQUET_SUFFIXES = (".parquet",)
_TEXT_SUFFIXES = (".txt", ".txt.gz", ".md", ".rst", ".py", ".text")

Format = Literal["auto", "json", "parquet", "text", "arrow"]
_CELL = (str, bool, int, float, type(None))  # what `where` compares a column's cells with (hashable)


class SourceConfig(StrictModel):
    """One source of documents for a domain."""

    path: str = Field(
        min_length=1,
        description="A file, a folder (all data files inside, recursively, or a `datasets` "
        "save_to_disk folder), or a glob such as `data/*.jsonl.gz`.",
    )
    format: Format = Field(
        "auto",
        description="File format; `auto` guesses from the suffix "
        "(.jsonl/.json[.gz] -> json, .parquet, .txt/.md/.rst/.py -> text, a saved dataset -> arrow).",
    )
    text_field: str | list[str] = Field(
        "text",
        description="Column holding the text; a list joins several "
        "columns with a blank line (e.g. [question, answer]).",
    )
    id_field: str | None = Field(
        None,
        description="Column with a document id; default: the `id` column if "
        "there is one, else `<domain>/<source index>:<row>`.",
    )
    text_split: Literal["document", "paragraph", "line"] = Field(
        "document", description="Plain text only: one document per file, per blank-line paragraph, or per line."
    )
    split_pattern: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="A regular expression; each text is cut into several "
        "documents, a new one starting at every match (e.g. `^ = [^=]` for the "
        "article titles of WikiText). Multiline mode is on. Run by the `regex` engine "
        "within `split_timeout_s` per document.",
    )
    split_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Time budget of `split_pattern` on one document, in seconds: a pattern that backtracks "
        "exponentially (nested repetition such as `(a|a)+$`) is refused instead of hanging `prepare`.",
    )
    where: dict[str, Any] | None = Field(
        None,
        description="Keep only rows whose fields equal these values (a non-empty list means any of), "
        "e.g. {label: ham}; values are strings, numbers, booleans or null.",
    )
    max_documents: int | None = Field(
        None, ge=1, description="Keep only the first N documents (after `where`); such a source is one unit of work."
    )
    tokens_field: str | None = Field(
        None,
        description="Bring your own tokens: a column of token-id lists (e.g. `input_ids` of a `datasets` folder) "
        "packed as they are, never re-tokenized; needs `tokenizer.path` (the tokenizer that made them).",
    )

    @field_validator("path")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\0" in value:
            raise ValueError("holds a NUL byte, which no file name can contain")
        return value

    @field_validator("where")
    @classmethod
    def _cell_values(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key, wanted in (value or {}).items():
            if wanted == []:
                raise ValueError(f"{key}: an empty list matches no row; name at least one value")
            if not all(isinstance(v, _CELL) for v in (wanted if isinstance(wanted, list) else [wanted])):
                raise ValueError(
                    f"{key}: {wanted!r} is not a value to compare cells with; give a string, number, boolean "
                    "or null, or a list of them"
                )
        return value

    @field_validator("text_field")
    @classmethod
    def _distinct_text_fields(cls, value: str | list[str]) -> str | list[str]:
        fields = [value] if isinstance(value, str) else value
        if not fields or any(not f for f in fields):
            raise ValueError("name at least one column, and no empty names")
        repeated = sorted({f for f in fields if fields.count(f) > 1})
        if repeated:
            raise ValueError(f"names {repeated} more than once, which would repeat their text in every document")
        return value

    @field_validator("split_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                regex.compile(value, regex.MULTILINE)
            except regex.error as exc:
                raise ValueError(f"split_pattern {value!r} is not a valid regular expression ({exc})") from None
        return value

    @property
    def text_fields(self) -> list[str]:
        """``text_field`` as a list of columns (several are joined with a blank line)."""
        return [self.text_field] if isinstance(self.text_field, str) else list(self.text_field)

    def id_column(self, columns: list[str]) -> str | None:
        """The column holding the ids: ``id_field``, else an existing ``id`` column, else None (ids
        are generated from the document's place in its source)."""
        return self.id_field or ("id" if "id" in columns else None)


def _has_suffix(path: str, suffixes: tuple[str, ...]) -> bool:
    return path.lower().endswith(suffixes)


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_info.json").exists() or (path / "state.json").exists())


def _check_data_file(source: SourceConfig, path: Path) -> None:
    """``path`` (a match of the source) is a regular file, or a link to one: a dangling link would fail
    later as a bare FileNotFoundError, a FIFO or device would block or stream forever."""
    if path.is_symlink() and not path.exists():
        raise UserError(
            f"data source {source.path!r}: {str(path)!r} is a symbolic link to {os.readlink(path)!r}, which does "
            "not exist; fix the link or remove it"
        )
    mode = path.stat().st_mode
    if stat.S_ISREG(mode):
        return
    kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
    raise UserError(
        f"data source {source.path!r}: {str(path)!r} is {kind}; a source names data files (a folder only as the "
        "whole `path`, or a `datasets` save_to_disk folder)"
    )


def resolve_files(source: SourceConfig) -> tuple[str, list[str]]:
    """Return (format, files) for a source, raising a UserError naming the path if nothing is found."""
    try:
        return _resolve_files(source)
    except OSError as exc:  # a name too long, a folder that cannot be listed, a link loop
        raise UserError(f"data source {source.path!r}: cannot be read ({exc.strerror or exc})") from None


def _resolve_files(source: SourceConfig) -> tuple[str, list[str]]:
    path = Path(os.path.expanduser(source.path))
    if source.format == "arrow" or (source.format == "auto" and _is_saved_dataset(path)):
        if not _is_saved_dataset(path):
            raise UserError(
                f"data source {source.path!r}: expected a `datasets` save_to_disk folder "
                "(with dataset_info.json or state.json)"
            )
        return "arrow", [str(path)]
    if any(ch in source.path for ch in "*?["):
        files = sorted(glob.glob(os.path.expanduser(source.path), recursive=True))
        for f in files:
            _check_data_file(source, Path(f))
    elif path.is_dir():
        files = []
        for p in sorted(path.rglob("*")):
            if p.is_dir():
                continue
            if source.format == "auto" and not _has_suffix(str(p), _JSON_SUFFIXES + _PARQUET_SUFFIXES + _TEXT_SUFFIXES):
                continue
            _check_data_file(source, p)
            files.append(str(p))
    elif path.is_file():
        files = [str(path)]
    elif path.is_symlink() or path.exists():
        _check_data_file(source, path)
    else:
        raise UserError(f"data source {source.path!r} does not exist")
    if not files:
        raise UserError(f"data source {source.path!r} matches no data files")
    fmt = source.format
    if fmt == "auto":
        kinds = set()
        for f in files:
            if _has_suffix(f, _JSON_SUFFIXES):
                kinds.add("json")
            elif _has_suffix(f, _PARQUET_SUFFIXES):
                kinds.add("parquet")
            elif _has_suffix(f, _TEXT_SUFFIXES):
                kinds.add("text")
            else:
                raise UserError(f"data source {source.path!r}: cannot tell the format of {f!r}; set `format`")
        if len(kinds) > 1:
            raise UserError(f"data source {source.path!r} mixes formats {sorted(kinds)}; split it into several sources")
        fmt = kinds.pop()
    return fmt, files


def load_saved_dataset(path: str, name: str) -> datasets.Dataset:
    """The rows of a `datasets` save_to_disk folder (a DatasetDict's `train` split); ``name`` names
    the source in the error."""
    loaded = datasets.load_from_disk(path)
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise UserError(f"{name} is a DatasetDict without a `train` split")
        loaded = loaded["train"]
    return loaded


def _load_raw(fmt: str, files: list[str], source: SourceConfig, cache_dir: str | None) -> datasets.Dataset:
    if fmt == "arrow":
        return load_saved_dataset(files[0], f"data source {source.path!r}")
    kwargs: dict[str, Any] = {}
    if fmt == "text":
        kwargs = {"sample_by": source.text_split, "keep_linebreaks": True}  # UTF-8 checked above
    try:
        return datasets.load_dataset(fmt, data_files=files, split="train", cache_dir=cache_dir, **kwargs)
    except Exception as exc:  # datasets wraps parser errors in several types; all mean "bad file"
        raise UserError(f"data source {source.path!r}: could not read {fmt} files: {exc}") from exc


def load_documents(
    source: SourceConfig, *, source_name: str = "source", cache_dir: str | None = None, num_proc: int | None = None
) -> datasets.Dataset:
    """Load one source as a Dataset with ``text`` and ``id`` columns (other columns are kept)."""
    fmt, files = resolve_files(source)
    fields = source.text_fields
    for f in files if fmt == "json" else []:
        if f.lower().endswith(JSON_LINES_SUFFIXES):
            check_json_lines(f, fields, source.id_field)
    for f in files if fmt == "text" else []:
        check_text_file(f)
    ds = _load_raw(fmt, files, source, cache_dir)
    check_columns(f"data source {source.path!r}", fields + ([source.id_field] if source.id_field else []), ds)
    if source.id_column(ds.column_names):  # before any filter: rows are numbered in the source as read
        column = source.id_column(ds.column_names)
        check_ids_present(ds.data.table.column(column), f"data source {source.path!r}", column)
    if source.where:
        check_columns(f"data source {source.path!r}", list(source.where), ds, "`where` names unknown columns")
        wanted = {k: (set(v) if isinstance(v, list) else {v}) for k, v in source.where.items()}
        ds = ds.filter(
            lambda row: all(row[k] in vals for k, vals in wanted.items()),
            num_proc=num_proc,
            desc=f"filter {source_name}",
        )
    check_text_columns(ds, fields, f"data source {source.path!r}")
    if source.max_documents is not None and len(ds) > source.max_documents:
        ds = ds.select(range(source.max_documents))

    id_field = source.id_column(ds.column_names)

    def to_text_and_id(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        if len(fields) == 1:
            texts = [t if isinstance(t, str) else ("" if t is None else str(t)) for t in batch[fields[0]]]
        else:
            texts = [
                "\n\n".join("" if batch[f][i] is None else str(batch[f][i]) for f in fields)
                for i in range(len(indices))
            ]
        ids = [str(x) for x in batch[id_field]] if id_field else [f"{source_name}:{i}" for i in indices]
        return {"text": texts, "id": ids}

    ds = ds.map(to_text_and_id, batched=True, with_indices=True, num_proc=num_proc, desc=f"read {source_name}")
    ds = drop_empty_documents(ds, f"data source {source.path!r}", num_proc)
    if source.split_pattern:
        ds = split_documents(ds, source, num_proc)
    return ds


def compile_split_pattern(source: SourceConfig) -> regex.Pattern:
    """The source's ``split_pattern`` as a compiled `regex` pattern (MULTILINE), or a UserError naming it.

    `regex` rather than `re`: it takes a time budget per call (`re` cannot be interrupted), and it
    avoids much of the exponential backtracking `re` falls into (`^(a+)+$` is linear there)."""
    try:
        return regex.compile(source.split_pattern, regex.MULTILINE)
    except regex.error as exc:
        raise UserError(
            f"data source {source.path!r}: split_pattern {source.split_pattern!r} is not a valid "
            f"regular expression ({exc})"
        ) from None


def split_text(
    pattern: regex.Pattern, text: str, doc_id: str, timeout_s: float | None = None, where: str = "split_pattern"
) -> tuple[list[str], list[str]]:
    """``text`` cut where ``pattern`` matches (blank pieces dropped), and the pieces' ids ``<id>#<k>``;
    a search running past ``timeout_s`` seconds is a UserError naming ``where``, the document and the budget."""
    try:
        starts = sorted({0} | {m.start() for m in pattern.finditer(text, timeout=timeout_s)})
    except TimeoutError:
        raise UserError(
            f"{where}: split_pattern {pattern.pattern!r} ran past its budget of split_timeout_s = {timeout_s:g} s "
            f"on document {doc_id!r} ({len(text):,} characters). Nested or ambiguous repetition (such as "
            "`(a|a)+$` or `(\\w+\\s?)+$`) backtracks exponentially: simplify the pattern; if the document is "
            "simply that large, raise split_timeout_s"
        ) from None
    pieces = [p for p in (text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])) if p.strip()]
    return pieces, [f"{doc_id}#{k}" for k in range(len(pieces))]


def split_documents(ds: datasets.Dataset, source: SourceConfig, num_proc: int | None) -> datasets.Dataset:
    """Cut each document where ``source.split_pattern`` matches; pieces get ids ``<id>#<k>``."""
    pattern = compile_split_pattern(source)

    def explode(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"text": [], "id": []}
        for text, doc_id in zip(batch["text"], batch["id"]):
            pieces, ids = split_text(pattern, text, doc_id, source.split_timeout_s, f"data source {source.path!r}")
            out["text"].extend(pieces)
            out["id"].extend(ids)
        return out

    return ds.map(explode, batched=True, remove_columns=ds.column_names, num_proc=num_proc, desc=f"split {source.path}")
