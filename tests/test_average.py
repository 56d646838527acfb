"""Checkpoint averaging on tiny real Llama checkpoints: exact against a float64 reference, loads
with transformers, every input layout, tied weights, validation messages, atomic output, CLI."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
from typer.testing import CliRunner

from curriculum.errors import UserError
from recipes.cli.average import average_command
from tests.average_fixtures import (
    reference_average,
    reference_weights,
    save_bin,
    save_raw,
    save_snapshot,
    save_state,
    tiny_model,
)
from tools.average import EMAWeights, average_checkpoints
from tools.average import writer as average_writer

K = 3
INPUT_IDS = torch.tensor([[1, 5, 9, 33, 62, 7, 0, 12]])


@pytest.fixture(scope="module")
def models():
    return [tiny_model(seed) for seed in range(K)]


@pytest.fixture(scope="module")
def snapshots(models, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    return [
        save_snapshot(m, run / "snapshots" / f"step_{100 * (i + 1):08d}", step=100 * (i + 1))
        for i, m in enumerate(models)
    ]


def read_output(folder) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def assert_matches(out: dict, ref: dict, exact: bool):
    """``exact``: every value is the float64 reference correctly rounded to the output dtype, give or
    take one unit in the last place (FMA in the accumulation and the reference's separate multiply
    and add can land on either side of a rounding boundary). Otherwise: float32 accumulation error."""
    assert set(out) == set(ref)
    for key, r in ref.items():
        if exact:
            eps = torch.finfo(out[key].dtype).eps
            # (+1e-15: float64 rounding of terms of size ~0.1, visible where they cancel.)
            assert ((out[key].double() - r).abs() <= eps * r.abs() + 1e-15).all(), key
        else:
            torch.testing.assert_close(out[key].double(), r, rtol=1e-6, atol=1e-7, msg=key)


PRESETS = [
    ("sma", "sma", {}),
    ("wma", "wma", {}),
    ("ema", EMAWeights(alpha=0.2), {}),
    ("ema_recursive", {"name": "ema", "alpha": 0.2, "form": "recursive"}, {}),
    ("explicit", [1.0, 3.0, 2.0], {"values": [1.0, 3.0, 2.0]}),
    (
        "explicit_raw",
        {"name": "explicit", "values": [0.5, -0.25, 1.0], "normalize": False},
        {"values": [0.5, -0.25, 1.0]},
    ),
]


@pytest.mark.parametrize("name, spec, kw", PRESETS, ids=[p[0] for p in PRESETS])
def test_every_preset_equals_float64_reference(models, snapshots, tmp_path, name, spec, kw):
    weights = reference_weights(name, K, **kw)
    ref = reference_average(models, weights)
    report = average_checkpoints(snapshots, tmp_path / "fp32", spec)
    assert report.weights == pytest.approx(weights, abs=1e-15)
    assert_matches(read_output(tmp_path / "fp32"), ref, exact=False)
    # Accumulating in float64 gives the reference rounded once to the output dtype ...
    average_checkpoints(snapshots, tmp_path / "fp64", spec, accumulate_dtype="float64")
    assert_matches(read_output(tmp_path / "fp64"), ref, exact=True)
    # ... and, written in float64, the reference itself up to float64 rounding.
    average_checkpoints(snapshots, tmp_path / "f64", spec, accumulate_dtype="float64", output_dtype="float64")
    for key, value in read_output(tmp_path / "f64").items():
        torch.testing.assert_close(value, ref[key], rtol=1e-15, atol=1e-15)


def test_output_loads_with_transformers_and_matches_reference_logits(models, snapshots, tmp_path):
    weights = reference_weights("ema", K)
    out = tmp_path / "avg"
    average_checkpoints(snapshots, out, EMAWeights(alpha=0.2), accumulate_dtype="float64", shard_size="40KB")
    assert (out / "model.safetensors.index.json").is_file() and len(list(out.glob("model-*.safetensors"))) > 1
    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    reference = LlamaForCausalLM(models[0].config).eval()
    reference.load_state_dict({k: v.float() for k, v in reference_average(models, weights).items()})
    with torch.no_grad():
        torch.testing.assert_close(loaded(INPUT_IDS).logits, reference(INPUT_IDS).logits, rtol=1e-5, atol=1e-6)
    assert AutoTokenizer.from_pretrained(out)("w1 w2").input_ids == [1, 2]
    # Sources, steps and weights are recorded in currimix.json, the index and every shard header.
    record = json.loads((out / "currimix.json").read_text())
    assert record["kind"] == "average" and record["steps"] == [100, 200, 300]
    assert record["weights"] == pytest.approx(weights) and record["sources"] == [str(p) for p in snapshots]
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert index["metadata"]["currimix_average"]["weighting"] == {"name": "ema", "alpha": 0.2, "form": "normalized"}
    for shard in out.glob("model-*.safetensors"):
        with safe_open(str(shard), "pt") as f:
            assert json.loads(f.metadata()["currimix_average"])["steps"] == [100, 200, 300]


def test_every_input_layout_averages_together(models, tmp_path):
    """Single file, sharded, pytorch_model.bin and an Accelerate save_state folder, in one average."""
    folders = [
        save_snapshot(models[0], tmp_path / "single"),
        save_snapshot(models[1], tmp_path / "sharded", max_shard_size="30KB"),
        save_bin(models[2], tmp_path / "bin"),
    ]
    assert (folders[1] / "model.safetensors.index.json").is_file()
    folders.append(save_state(tiny_model(7), tmp_path / "run", step=40))
    weights = reference_weights("sma", 4)
    average_checkpoints(folders, tmp_path / "out", "sma", accumulate_dtype="float64")
    ref = reference_average([*models, tiny_model(7)], weights)
    assert_matches(read_output(tmp_path / "out"), ref, exact=True)


def test_ddp_and_compile_prefixes_are_removed(models, snapshots, tmp_path):
    wrapped = {f"module._orig_mod.{k}": v for k, v in models[1].state_dict().items()}
    folder = save_raw(wrapped, snapshots[1], tmp_path / "ddp")
    report = average_checkpoints([snapshots[0], folder], tmp_path / "out", "sma")
    assert_matches(read_output(tmp_path / "out"), reference_average(models[:2], [0.5, 0.5]), exact=False)
    assert any("removed the 'module.' prefix" in n for n in report.notes)


def test_tied_embeddings_from_snapshot_and_save_state(tmp_path):
    """save_pretrained drops the tied lm_head; save_state and .bin keep one or both keys."""
    tied = [tiny_model(s, tie=True) for s in (10, 11, 12)]
    run = tmp_path / "run"
    folders = [
        save_snapshot(tied[0], tmp_path / "snap"),
        save_state(tied[1], run, step=5),
        save_bin(tied[2], tmp_path / "bin"),
    ]
    with safe_open(str(folders[0] / "model.safetensors"), "pt") as f:
        assert "lm_head.weight" not in f.keys()
    assert "lm_head.weight" in torch.load(folders[2] / "pytorch_model.bin", weights_only=True)
    # A save_state folder that kept only the lm_head copy of the tied pair.
    only_head = {
        ("lm_head.weight" if k == "model.embed_tokens.weight" else k): v
        for k, v in tied[1].state_dict().items()
        if k != "lm_head.weight"
    }
    odd = save_raw(only_head, folders[0], tmp_path / "odd")
    weights = reference_weights("sma", 4)
    out = tmp_path / "out"
    average_checkpoints([*folders, odd], out, "sma", accumulate_dtype="float64")
    ref = reference_average([*tied, tied[1]], weights)
    assert_matches(read_output(out), ref, exact=True)
    loaded = AutoModelForCausalLM.from_pretrained(out)
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()


def test_tied_pair_that_differs_is_refused(tmp_path):
    model = tiny_model(1, tie=True)
    state = dict(model.state_dict())
    state["lm_head.weight"] = state["model.embed_tokens.weight"] + 1
    snap = save_snapshot(model, tmp_path / "snap")
    bad = save_raw(state, snap, tmp_path / "bad")
    with pytest.raises(
        UserError, match=r"ties 'lm_head.weight' to 'model.embed_tokens.weight', but in .*bad they differ"
    ):
        average_checkpoints([snap, bad], tmp_path / "out", "sma")


def test_bf16_inputs_and_output_dtype(models, tmp_path):
    bf16 = [tiny_model(s, dtype=torch.bfloat16) for s in range(3)]
    folders = [save_snapshot(m, tmp_path / f"b{i}") for i, m in enumerate(bf16)]
    ref = reference_average(bf16, reference_weights("wma", 3))
    average_checkpoints(folders, tmp_path / "out", "wma", accumulate_dtype="float64")
    out = read_output(tmp_path / "out")
    assert all(t.dtype == torch.bfloat16 for t in out.values())
    assert_matches(out, ref, exact=True)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"
    # Same inputs written as float32: the average itself, unrounded.
    average_checkpoints(folders, tmp_path / "f32", "wma", accumulate_dtype="float64", output_dtype="float32")
    assert_matches(read_output(tmp_path / "f32"), ref, exact=True)
    assert json.loads((tmp_path / "f32" / "config.json").read_text())["dtype"] == "float32"


def _tweaked(snapshots, tmp_path, name, change):
    state = load_file(snapshots[1] / "model.safetensors")
    change(state)
    return save_raw(state, snapshots[1], tmp_path / name)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda s: s.pop("model.layers.1.mlp.up_proj.weight"),
            r"tensor 'model.layers.1.mlp.up_proj.weight' is in .*step_00000100 but missing from .*bad",
        ),
        (
            lambda s: s.__setitem__("model.norm.weight", torch.ones(16)),
            r"tensor 'model.norm.weight' has shape \[32\] in .*step_00000100/model.safetensors but \[16\] in .*bad/model.safetensors",
        ),
        (
            lambda s: s.__setitem__("model.norm.weight", s["model.norm.weight"].half()),
            r"tensor 'model.norm.weight' has dtype float32 in .*step_00000100/model.safetensors but float16 in .*bad/model.safetensors",
        ),
    ],
    ids=["key", "shape", "dtype"],
)
def test_mismatched_tensors_are_named(snapshots, tmp_path, change, message):
    bad = _tweaked(snapshots, tmp_path, "bad", change)
    with pytest.raises(UserError, match=message):
        average_checkpoints([snapshots[0], bad, snapshots[2]], tmp_path / "out", "sma")
    assert not (tmp_path / "out").exists()


def test_mismatched_config_is_named(snapshots, tmp_path):
    bad = _tweaked(snapshots, tmp_path, "bad", lambda s: None)
    config = json.loads((bad / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        UserError,
        match=r"config key 'rms_norm_eps' is 1e-06 in .*step_00000100/config.json but 1e-05 in .*bad/config.json",
    ):
        average_checkpoints([snapshots[0], bad], tmp_path / "out", "sma")


def test_non_floating_tensors_are_copied_from_the_newest(snapshots, tmp_path):
    folders = [
        _tweaked(snapshots, tmp_path, f"c{i}", lambda s, i=i: s.__setitem__("counter", torch.tensor([i, 7])))
        for i in range(3)
    ]
    report = average_checkpoints(folders, tmp_path / "out", "sma")
    assert torch.equal(read_output(tmp_path / "out")["counter"], torch.tensor([2, 7]))
    assert any("1 non-floating tensors copied from the newest" in n for n in report.notes)


def test_interrupted_write_leaves_nothing_that_looks_complete(snapshots, tmp_path, monkeypatch):
    out = tmp_path / "avg"
    calls = []
    real_write = average_writer.StreamingShardWriter.write

    def failing_write(self, chunk):
        assert not out.exists(), "the output must not appear before it is complete"
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-shard
        real_write(self, chunk)

    monkeypatch.setattr(average_writer.StreamingShardWriter, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        average_checkpoints(snapshots, out, "sma", shard_size="40KB")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the hidden temporary folder is gone too

    # With --overwrite, the previous output survives an interrupted replacement untouched.
    monkeypatch.setattr(average_writer.StreamingShardWriter, "write", real_write)
    average_checkpoints(snapshots, out, "sma")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls.clear()
    monkeypatch.setattr(
        average_writer.StreamingShardWriter, "write", lambda self, c: (_ for _ in ()).throw(OSError("disk full"))
    )
    with pytest.raises(OSError, match="disk full"):
        average_checkpoints(snapshots, out, "wma", overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["avg"]


def test_refuses_to_overwrite_inputs(snapshots, tmp_path):
    run = snapshots[0].parent.parent
    for target in (snapshots[1], snapshots[1] / "avg", run):
        with pytest.raises(UserError, match="would overwrite or sit inside the input"):
            average_checkpoints(snapshots, target, "sma", overwrite=True)
    assert (snapshots[1] / "model.safetensors").is_file() and not (snapshots[1] / "avg").exists()
    (tmp_path / "taken").mkdir()
    with pytest.raises(UserError, match="already exists; choose another --output or pass --overwrite"):
        average_checkpoints(snapshots, tmp_path / "taken", "sma")
    with pytest.raises(UserError, match="not in step order"):
        average_checkpoints(snapshots[::-1], tmp_path / "x", {"name": "ema", "alpha": 0.5})


def test_save_state_outside_a_run_needs_config(models, tmp_path):
    folder = save_state(models[0], tmp_path / "run", step=1)
    (folder / "currimix.json").unlink()
    with pytest.raises(UserError, match="has no config.json .* pass the model's config folder with --config-from"):
        average_checkpoints([folder], tmp_path / "out", "sma")
    average_checkpoints([folder], tmp_path / "out", "sma", config_from=tmp_path / "run" / "model_config")
    assert (tmp_path / "out" / "tokenizer.json").is_file()


def test_cli_average_from_run_folder(models, tmp_path):
    run = tmp_path / "run"
    for i, m in enumerate(models):
        save_state(m, run, step=10 * (i + 1))
    app = typer.Typer()
    app.command("average")(average_command)
    app.command("noop")(lambda: None)  # two commands, so the command name is part of the CLI as in currimix
    runner = CliRunner()
    out = tmp_path / "avg"
    args = [
        "average",
        "--run",
        str(run),
        "--from",
        "checkpoints",
        "--last",
        "2",
        "--weights",
        "ema",
        "--alpha",
        "0.5",
        "--no-progress",
        "-o",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (
        "step       20" in result.output and "step       30" in result.output and "step       10" not in result.output
    )
    ref = reference_average(models[1:], reference_weights("ema", 2, alpha=0.5))
    assert_matches(read_output(out), ref, exact=False)
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()

    result = runner.invoke(app, [*args[:-2], "-o", str(tmp_path / "dry"), "--dry-run"])
    assert result.exit_code == 0 and "would write" in result.output and not (tmp_path / "dry").exists()
    result = runner.invoke(
        app, ["average", "--run", str(run), "--from", "checkpoints", "--weights", "1,2", "-o", str(tmp_path / "e")]
    )
    assert isinstance(result.exception, UserError) and "2 explicit weights given for 3 checkpoints" in str(
        result.exception
    )
    result = runner.invoke(app, ["average", str(run), "--weights", "ema", "-o", str(tmp_path / "e")])
    assert isinstance(result.exception, UserError) and "needs --alpha" in str(result.exception)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_accumulation_matches_cpu(snapshots, tmp_path):
    average_checkpoints(snapshots, tmp_path / "cpu", "wma", accumulate_dtype="float64")
    average_checkpoints(snapshots, tmp_path / "gpu", "wma", accumulate_dtype="float64", device="cuda")
    cpu, gpu = read_output(tmp_path / "cpu"), read_output(tmp_path / "gpu")
    assert all(torch.equal(cpu[k], gpu[k]) for k in cpu)
