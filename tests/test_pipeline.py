"""prepare -> train -> average -> eval in one call, as `currimix run` / `quickstart` do it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from recipes.loading import recipe_from_dict
from recipes.runner import run_recipe
from tests.conftest import recipe_dict
from tools.corpus import build_corpus


@pytest.mark.slow
def test_run_recipe_end_to_end_on_the_quickstart_corpus(tmp_path: Path) -> None:
    paths = build_corpus(tmp_path / "corpus", code_bytes=200_000, noisy_documents=150)
    raw = recipe_dict(tmp_path / "corpus", tmp_path / "run")
    raw["data"]["domains"] = {
        name: {"sources": [{"path": str(p)}], "scorer": {"name": "heuristic"}} for name, p in paths.items()
    }
    raw["mixture"] = {"mixer": {"name": "static", "weights": {"code": 0.4, "prose": 0.4, "web": 0.2}}}
    result = run_recipe(recipe_from_dict(raw), progress=False, eval_per_domain=8)

    assert set(result.val_loss) == {"final", "averaged (ema of 3)"}
    for metrics in result.val_loss.values():  # the recipe's evaluation section: the `val` set, loss and bpb
        domains = {"code", "prose", "web"}
        assert {f"val/{d}" for d in domains} | {f"bpb/val/{d}" for d in domains} | {"val/mean", "bpb/val"} == set(
            metrics
        )
        assert all(np.isfinite(v) for v in metrics.values())
    averaged = json.loads((result.averaged_model / "currimix.json").read_text())
    assert averaged["steps"] == [8, 10, 12]
    model = AutoModelForCausalLM.from_pretrained(str(result.averaged_model))
    tokenizer = AutoTokenizer.from_pretrained(str(result.averaged_model))
    prompt = tokenizer("def main(", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 8
    assert isinstance(tokenizer.decode(out[0]), str)
    # A second call finds everything done and only re-averages and re-evaluates.
    again = run_recipe(recipe_from_dict(raw), progress=False, eval_per_domain=8)
    assert again.val_loss == result.val_loss


@pytest.mark.slow
def test_quickstart_corpus_has_unique_document_ids(tmp_path: Path) -> None:
    """`prepare` refuses duplicate ids (they choose the validation split); the quickstart corpus has none,
    although many standard-library modules are called `__init__`."""
    for path in build_corpus(tmp_path, code_bytes=3_000_000, noisy_documents=10).values():
        ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
        assert len(ids) == len(set(ids)), path


@pytest.mark.slow
def test_quickstart_compares_random_and_ascending_order(tmp_path: Path) -> None:
    """`currimix quickstart` end to end at a few steps: one store, two runs that differ only in order."""
    from typer.testing import CliRunner

    from recipes.cli import app

    steps = [
        "training.steps=8",
        "schedule.warmup_steps=2",
        "training.eval_every_steps=8",
        "checkpoint.every_steps=8",
        "averaging.every_steps=2",
    ]
    args = ["quickstart", "--out", str(tmp_path / "qs"), "--no-progress"]
    result = CliRunner().invoke(app, args + [a for s in steps for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    assert "ascending" in result.output and "clean code" in result.output  # (the table wraps at 80 columns)
    for order in ("random", "ascending"):
        recipe = json.loads((tmp_path / "qs" / order / "final" / "currimix.json").read_text())
        assert recipe["step"] == 8
        assert (tmp_path / "qs" / order / "averaged" / "currimix.json").is_file()
    dial = [json.loads(line) for line in (tmp_path / "qs" / "dial" / "dial.jsonl").read_text().splitlines()]
    assert min(r["quality"] for r in dial) < 0.01 and max(r["quality"] for r in dial) > 0.99
