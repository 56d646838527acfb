"""The training loop on tiny real models: bitwise resume, snapshots, per-domain losses, upweighting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from curriculum.errors import UserError
from tests.conftest import losses_by_step
from tools.train import checkpoint as checkpoint_module
from tools.train.checkpoint import read_marker, verify_folder
from tools.train.pretrain import LogTally, accumulate_gradients, setup, train
from tools.train.trackers import read_metrics


@pytest.mark.slow
def test_resume_gives_bitwise_identical_losses(make_recipe, tmp_path: Path) -> None:
    full = make_recipe(run_dir=str(tmp_path / "full"))
    train(full, show_progress=False)
    interrupted = make_recipe(run_dir=str(tmp_path / "split"))
    first = train(interrupted, stop_after_steps=5, show_progress=False)
    assert first["steps_done"] == 5
    assert not (tmp_path / "split" / "summary.json").exists()
    second = train(interrupted, resume=True, show_progress=False)
    assert second["steps_done"] == 12
    reference, resumed = losses_by_step(tmp_path / "full"), losses_by_step(tmp_path / "split")
    assert sorted(reference) == list(range(12)) == sorted(resumed)
    assert [reference[s] for s in range(12)] == [resumed[s] for s in range(12)]  # bitwise, not approx
    assert second["val_loss"] == pytest.approx(json.loads((tmp_path / "full" / "summary.json").read_text())["val_loss"])


def test_run_folder_has_snapshots_checkpoints_and_metrics(make_recipe, tmp_path: Path, monkeypatch) -> None:
    hashed: list[Path] = []
    digest = checkpoint_module.file_digest
    monkeypatch.setattr(checkpoint_module, "file_digest", lambda path: hashed.append(path) or digest(path))
    recipe = make_recipe(run_dir=str(tmp_path / "run"))
    summary = train(recipe, show_progress=False)
    run = tmp_path / "run"
    snapshots = sorted((run / "snapshots").iterdir())
    assert [json.loads((s / "currimix.json").read_text())["step"] for s in snapshots] == [8, 10, 12]
    model = AutoModelForCausalLM.from_pretrained(str(snapshots[-1]))
    assert model.config.num_hidden_layers == 2
    # The final folder shares the last snapshot's weights but is marked as the final model.
    assert json.loads((run / "final" / "currimix.json").read_text())["kind"] == "final"
    assert json.loads((snapshots[-1] / "currimix.json").read_text())["kind"] == "snapshot"
    assert (run / "final" / "model.safetensors").read_bytes() == (snapshots[-1] / "model.safetensors").read_bytes()
    assert read_marker(run / "final")["files"] == read_marker(snapshots[-1])["files"]  # the same files
    assert not [p for p in hashed if p.parent.name in ("final", ".final.tmp")]  # linked files are not read again
    assert verify_folder(run / "final") is None
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["step_00000004", "step_00000008", "step_00000012"]  # keep_last 3
    assert set(summary["val_loss"]) == {"code", "prose", "web"}
    assert all(np.isfinite(v) for v in summary["val_loss"].values())
    records = read_metrics(run)
    last = records[-1]
    for name in ("code", "prose", "web"):
        assert abs(last[f"mix/{name}/realised"] - last[f"mix/{name}/planned"]) < 1
        assert f"loss/{name}" in last or f"val/{name}" in last
    assert (run / "tensorboard").exists() is False  # trackers: [jsonl] only in this recipe
    assert (run / "recipe.yaml").is_file() and (run / "model_config" / "config.json").is_file()


def test_resume_refuses_a_different_plan(make_recipe, tmp_path: Path) -> None:
    train(make_recipe(run_dir=str(tmp_path / "run")), stop_after_steps=4, show_progress=False)
    changed = make_recipe(run_dir=str(tmp_path / "run"), seed=1)
    with pytest.raises(UserError, match="ignore-plan-mismatch"):
        train(changed, resume=True, show_progress=False)


@pytest.mark.slow
def test_upsampling_and_upweighting_give_the_same_full_batch_gradient(make_recipe, tmp_path: Path) -> None:
    """Both arms of the upsample-vs-upweight comparison from one recipe switch.

    Upsampling repeats each sequence of domain d m_d times in one full batch; upweighting sees every
    sequence once and scales domain d's loss by target / natural. The gradients must agree.
    """
    from curriculum.store.reader import TokenStore

    store = TokenStore(make_recipe().store_path)
    sizes = np.diff(store.train.domain_offsets)
    repeats = np.array([2, 1, 3])
    upsampled_batch = int((repeats * sizes).sum())
    weights = {n: float(r * s / upsampled_batch) for n, r, s in zip(store.domain_names, repeats, sizes)}
    common = {
        "curriculum": {"order": {"name": "random"}, "past_epoch": "repeat"},
        "schedule": {"name": "constant", "peak_lr": 1e-3},
        "averaging": {"snapshots": None},
    }
    grads = {}
    for realise, batch_size in (("sample", upsampled_batch), ("weight", int(sizes.sum()))):
        recipe = make_recipe(
            run_dir=str(tmp_path / realise),
            mixture={"mixer": {"name": "static", "weights": weights}, "realise": realise, "max_epochs": {"default": 3}},
            training={
                "steps": 1,
                "global_batch_size": batch_size,
                "micro_batch_size": batch_size,
                "trackers": ["jsonl"],
            },
            **common,
        )
        run = setup(recipe)
        batch = run.plan.batch(0)
        counts = np.bincount(batch.sequence_ids, minlength=len(store.train))
        expected = repeats if realise == "sample" else np.ones(3, dtype=int)
        for d in range(3):
            start, stop = store.train.domain_range(d)
            assert (counts[start:stop] == expected[d]).all()
        accumulate_gradients(run, run.load_step(0), LogTally(3))
        grads[realise] = torch.cat([p.grad.flatten() for p in run.model.parameters()])
    assert torch.allclose(grads["sample"], grads["weight"], rtol=1e-4, atol=1e-7)
    assert grads["sample"].abs().max() > 0


def test_mixture_of_experts_model_trains_with_router_loss(make_recipe, tmp_path: Path) -> None:
    recipe = make_recipe(
        run_dir=str(tmp_path / "moe"),
        model={
            "hidden_size": 32,
            "num_layers": 2,
            "num_heads": 2,
            "intermediate_size": 32,
            "moe": {"num_experts": 4, "top_k": 2},
        },
        training={
            "steps": 3,
            "global_batch_size": 8,
            "micro_batch_size": 4,
            "eval_every_steps": None,
            "trackers": ["jsonl"],
        },
        averaging={"snapshots": None},
    )
    run = setup(recipe)
    assert run.model.config.model_type == "mixtral" and run.model.config.num_local_experts == 4
    out = run.model(input_ids=torch.from_numpy(run.store.train.sequences(run.plan.batch(0).sequence_ids[:2])))
    assert out.aux_loss is not None and torch.isfinite(out.aux_loss)
    summary = train(recipe, show_progress=False)
    assert all(np.isfinite(v) for v in summary["val_loss"].values())
    assert AutoModelForCausalLM.from_pretrained(summary["final_model"]).config.model_type == "mixtral"
