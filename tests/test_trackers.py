"""Weights & Biases and MLflow trackers (offline), with the recipe and plan fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_wandb_and_mlflow_get_the_runs_metrics_offline(make_recipe, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    mlflow = pytest.importorskip("mlflow")
    from tools.train.pretrain import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run_dir = tmp_path / "run"
    recipe = make_recipe(
        run_dir,
        training={"steps": 4, "eval_every_steps": 2, "trackers": ["jsonl", "wandb", "mlflow"]},
        averaging={"snapshots": 2, "every_steps": 2, "weights": {"name": "sma"}},
        evaluation={"sets": {"val": {"sequences_per_domain": 4}}},
    )
    summary = train(recipe, show_progress=False)
    client = mlflow.tracking.MlflowClient(tracking_uri=(run_dir / "mlruns").resolve().as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "currimix"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["plan"] == summary["plan_fingerprint"] and len(run.data.params["recipe_fingerprint"]) == 16
    assert {"loss", "loss.code", "val.code", "bpb.val", "bpb.val.code"} <= set(run.data.metrics)  # "/" -> "."
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))
    records = next(offline[0].glob("*.wandb")).read_bytes()  # protobuf records; config and keys are plain text
    assert summary["plan_fingerprint"].encode() in records and b"recipe_fingerprint" in records
    assert b"bpb/val" in records


def test_a_tracker_that_is_not_installed_is_refused_before_training(make_recipe, tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    from curriculum.errors import UserError
    from tools.train.pretrain import train

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(UserError, match=r"training.trackers names \['wandb'\], not installed"):
        train(make_recipe(tmp_path / "run", training={"trackers": ["jsonl", "wandb"]}), show_progress=False)
    assert not (tmp_path / "run").exists()
