"""`average` as a careless user meets it: --overwrite replaces only an earlier averaged model, the
output folder is locked while written, and NaN/inf inputs are refused (or, when asked, listed)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from curriculum.errors import UserError
from curriculum.locks import folder_lock
from tests.average_fixtures import save_snapshot, tiny_model
from tools.average import average_checkpoints


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    run = tmp_path_factory.mktemp("avgrun")
    return [save_snapshot(tiny_model(i), run / "snapshots" / f"step_{i + 1:08d}", step=i + 1) for i in range(2)]


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_overwrite_replaces_an_earlier_average_but_no_other_folder(pair, tmp_path):
    out = tmp_path / "avg"
    average_checkpoints(pair, out, "sma")
    first = load_file(out / "model.safetensors")
    report = average_checkpoints(pair, out, [0.1, 0.9], overwrite=True)  # an averaged model: replaced
    assert report.weights == pytest.approx([0.1, 0.9])
    assert not torch.equal(load_file(out / "model.safetensors")["model.norm.weight"], first["model.norm.weight"])
    thesis = tmp_path / "thesis"
    (thesis / "chapters").mkdir(parents=True)
    (thesis / "chapters" / "one.tex").write_text("years of work")
    checkpoints = tmp_path / "run" / "checkpoints"
    save_snapshot(tiny_model(5), checkpoints / "step_00000009", step=9)
    store = tmp_path / "store"
    store.mkdir()
    (store / "manifest.json").write_text(json.dumps({"format": 2}))
    for folder in (thesis, checkpoints, store):
        before = _files(folder)
        with pytest.raises(UserError, match="is not an averaged model written by `currimix average`"):
            average_checkpoints(pair, folder, "sma", overwrite=True)
        assert _files(folder) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    average_checkpoints(pair, empty, "sma", overwrite=True)  # an empty folder holds nothing to lose
    assert (empty / "model.safetensors").is_file()


def test_overwrite_never_names_an_input(pair):
    with pytest.raises(UserError, match="would overwrite or sit inside the input"):
        average_checkpoints(pair, pair[0], "sma", overwrite=True)
    with pytest.raises(UserError, match="would overwrite or sit inside the input"):
        average_checkpoints(pair, pair[0].parent, "sma", overwrite=True)


def test_a_locked_output_folder_is_refused_naming_the_holder(pair, tmp_path):
    with folder_lock(tmp_path / "avg", "average", "output folder"):
        with pytest.raises(UserError, match="in use by `currimix average`"):
            average_checkpoints(pair, tmp_path / "avg", "sma")
    assert not (tmp_path / "avg").exists()


def _nan_copy(source, folder, key=None):
    """``source`` with every value (or only tensor ``key``'s first value) NaN; no marker, so no checksums."""
    folder.mkdir()
    for f in source.iterdir():
        if f.name not in ("model.safetensors", "currimix.json"):
            (folder / f.name).write_bytes(f.read_bytes())
    weights = load_file(source / "model.safetensors")
    for k, v in weights.items():
        if key is None:
            weights[k] = torch.full_like(v, float("nan"))
        elif k == key:
            v.view(-1)[0] = float("inf")
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def test_an_all_nan_input_is_refused_naming_input_and_tensor(pair, tmp_path):
    bad = _nan_copy(pair[1], tmp_path / "diverged")
    with pytest.raises(UserError) as err:
        average_checkpoints([pair[0], bad], tmp_path / "out", "sma")
    message = str(err.value)
    assert "nothing was written" in message and "--allow-nonfinite" in message
    assert f"input {bad}" in message and "(all of them)" in message and "  - tensor " in message
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_allow_nonfinite_writes_and_lists_the_tensors(pair, tmp_path):
    bad = _nan_copy(pair[1], tmp_path / "masked", key="model.norm.weight")
    report = average_checkpoints([pair[0], bad], tmp_path / "out", "sma", allow_nonfinite=True)
    note = next(n for n in report.notes if "non-finite" in n)
    assert "tensor model.norm.weight" in note and "has 1 of 32 values NaN/inf" in note
    assert json.loads((tmp_path / "out" / "currimix.json").read_text())["notes"] == report.notes
    # A zero weight never reads the bad input, so nothing is non-finite in the output.
    clean = average_checkpoints([pair[0], bad], tmp_path / "zero", [1.0, 0.0])
    assert not any("non-finite" in n for n in clean.notes)


def test_an_average_that_overflows_the_output_dtype_is_refused(pair, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    for f in pair[1].iterdir():
        if f.name not in ("model.safetensors", "currimix.json"):
            (big / f.name).write_bytes(f.read_bytes())
    weights = load_file(pair[1] / "model.safetensors")
    weights["model.norm.weight"] = torch.full_like(weights["model.norm.weight"], 1e6)  # finite, beyond float16
    save_file(weights, str(big / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(UserError, match="tensor model.norm.weight: the weighted sum overflows float16"):
        average_checkpoints([pair[0], big], tmp_path / "out", "sma", output_dtype="float16")
    average_checkpoints([pair[0], big], tmp_path / "ok", "sma")  # in float32 it fits
