"""The bad-input suite: one row of `tests/bad_inputs.yaml` (or `tests/bad_inputs/*.yaml`) per user mistake, run in-process.

Each row builds its inputs in a fresh case folder (the tiny test recipe, edited; files; a copy of
the tiny store, of a finished tiny run or of its snapshots; damage to some of them), runs one
`currimix` command through Typer's CliRunner with the case folder as the working directory, and
checks: the exit code, a phrase the message must contain, no Python traceback, and, unless the
row says otherwise, that nothing in the case folder was created, changed or removed.

Row keys (all but ``id``, ``command``, ``exit`` and ``phrase`` optional):

- ``command``: the arguments; ``{recipe}``, ``{case}``, ``{run}``, ``{store}`` are filled in.
- ``set``: dotted-key edits of the base recipe (``data.seq_len: 4``); a value ``~delete`` removes it.
- ``append``: text appended to the recipe file (after it is dumped), e.g. a duplicate key.
- ``recipe_text``: the whole recipe file instead of the base recipe.
- ``data``: a file name in the case folder that becomes the only domain's only source (``source``
  adds source keys), with the store in ``{case}/newstore``.
- ``files``: {name: text} written into the case folder (``!!binary`` values are written as bytes).
- ``copy``: what to copy into the case folder: ``store`` (the tiny store, which the recipe then
  uses), ``run`` (a finished 4-step run with checkpoints at 2 and 4 and snapshots at 2 and 4, as
  ``{run}``), ``snapshots`` (its two snapshots as ``{case}/a`` and ``{case}/b``).
- ``links``: {name: target} symbolic links made in the case folder (the target may not exist);
  ``fifos``: names of FIFOs made there.
- ``damage``: {glob under the case folder: garbage | truncate | empty | delete | nan | {text: ...} | {hex: ...}
  | {json: {dotted.key: value or ~delete}}} (``json`` edits one field of a JSON file in place).
  ``nan``: every value of a safetensors file becomes NaN, a diverged run's weights.
- ``env``: environment variables for the command (e.g. the WORLD_SIZE a launcher sets).
- ``writes``: true when the command is expected to write (a warning, not an error).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import traceback
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from recipes.cli import app
from tests.conftest import recipe_dict

# The table is `bad_inputs.yaml` plus one file per area under `bad_inputs/` (run folders, the store,
# recipe bounds, ...), so that areas grow without editing one shared file.
TABLES = [Path(__file__).with_name("bad_inputs.yaml"), *sorted(Path(__file__).with_name("bad_inputs").glob("*.yaml"))]
ROWS: list[dict[str, Any]] = [row for table in TABLES for row in (yaml.safe_load(table.read_text()) or [])]
runner = CliRunner()


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[int(key)]
    if value == "~delete":
        node.pop(last, None)
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, text in names.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


def _damage(path: Path, how: Any) -> None:
    if how == "garbage":
        path.write_bytes(os.urandom(max(path.stat().st_size, 64)))
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "delete":
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    elif how == "nan":
        from safetensors.torch import load_file, save_file

        tensors = {k: v.float().fill_(float("nan")).to(v.dtype) for k, v in load_file(path).items()}
        save_file(tensors, str(path), metadata={"format": "pt"})
    elif isinstance(how, dict) and "text" in how:
        path.write_text(how["text"])
    elif isinstance(how, dict) and "json" in how:
        data = json.loads(path.read_text())
        for key, value in how["json"].items():
            _set(data, key, value)
        path.write_text(json.dumps(data))
    elif isinstance(how, dict) and "hex" in how:
        path.write_bytes(bytes.fromhex(how["hex"]) + path.read_bytes()[len(bytes.fromhex(how["hex"])) :])
    else:
        raise AssertionError(f"unknown damage {how!r}")


def _state(folder: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under ``folder`` with (size, mtime) for files: what "nothing written" compares."""
    return {
        str(p.relative_to(folder)): ((p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None)
        for p in folder.rglob("*")
    }


def build_case(row: dict[str, Any], case: Path, corpus: Path, store: Path, run: Path) -> list[str]:
    """Create the row's inputs in ``case``; returns the command's arguments."""
    names = {"case": str(case), "run": str(case / "run"), "recipe": str(case / "recipe.yaml")}
    copies = row.get("copy", [])
    if "store" in copies:
        shutil.copytree(store, case / "store")
        store = case / "store"
    if "run" in copies:
        shutil.copytree(run, case / "run")
    if "snapshots" in copies:
        shutil.copytree(run / "snapshots" / "step_00000002", case / "a")
        shutil.copytree(run / "snapshots" / "step_00000004", case / "b")
    names["store"] = str(store)
    for name, content in (row.get("files") or {}).items():
        path = case / _fill(name, names)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(_fill(content, names))
    for name, target in (row.get("links") or {}).items():
        (case / name).parent.mkdir(parents=True, exist_ok=True)
        (case / name).symlink_to(_fill(target, names))
    for name in row.get("fifos") or []:
        os.mkfifo(case / name)
    raw = recipe_dict(corpus, case / "run", store)
    raw["training"].update(steps=4, eval_every_steps=None)
    raw["checkpoint"] = {"every_steps": 2, "keep_last": 3}
    raw["averaging"] = {"snapshots": 2, "every_steps": 2, "weights": {"name": "sma"}}
    if "data" in row:
        source = {"path": str(case / row["data"]), **_fill(row.get("source", {}), names)}
        raw["data"]["domains"] = {"d": {"sources": [source]}}
        raw["data"]["store"] = str(case / "newstore")
        raw["mixture"] = {"mixer": {"name": "static"}}
    for key, value in (row.get("set") or {}).items():
        _set(raw, key, _fill(copy.deepcopy(value), names))
    if "recipe_text" in row:
        text = _fill(row["recipe_text"], names)
    else:
        text = yaml.safe_dump(raw, sort_keys=False) + _fill(row.get("append", ""), names)
    (case / "recipe.yaml").write_text(text)
    for pattern, how in (row.get("damage") or {}).items():
        matches = sorted(case.glob(_fill(pattern, names)))
        assert matches, f"damage pattern {pattern!r} matches nothing"
        for path in matches:
            _damage(path, how)
    return [_fill(str(a), names) for a in row["command"]]


def test_the_table_is_large_and_well_formed() -> None:
    ids = [r["id"] for r in ROWS]
    assert len(ids) == len(set(ids)), "row ids must be unique"
    assert len(ROWS) >= 100
    groups = {i.split("/")[0] for i in ids}
    assert {"recipe", "data", "store", "checkpoint", "average", "fs"} <= groups
    for row in ROWS:
        assert {"id", "command", "exit", "phrase"} <= set(row), row


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_bad_input(
    row: dict[str, Any],
    tmp_path: Path,
    corpus_dir: Path,
    tiny_store: Path,
    finished_run: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = tmp_path / "case"
    case.mkdir()
    args = build_case(row, case, corpus_dir, tiny_store, finished_run)
    monkeypatch.chdir(case)  # a relative default (runs/<name>) would land here and be seen
    for key, value in (row.get("env") or {}).items():
        monkeypatch.setenv(key, value)
    before = _state(case)
    result = runner.invoke(app, args)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        details = "".join(traceback.format_exception(result.exception))
        pytest.fail(f"{row['id']}: a Python exception instead of a message:\n{details}")
    assert "Traceback" not in output, output
    assert result.exit_code == row["exit"], f"{row['id']}: exit {result.exit_code}\n{output}"
    assert row["phrase"].lower() in " ".join(output.split()).lower(), f"{row['id']}: no {row['phrase']!r} in\n{output}"
    if not row.get("writes", False):
        after = _state(case)
        changed = sorted(k for k in set(before) | set(after) if before.get(k, "gone") != after.get(k, "gone"))
        assert not changed, f"{row['id']}: wrote {changed}"
