"""Red-team findings that the bad-input table cannot express: out-of-memory during training and the
model-size estimate behind `check_fits_in_memory`."""

from __future__ import annotations

import pytest

from curriculum.errors import UserError
from tools.train.config import ModelConfig
from tools.train.model import build_model, count_parameters, estimated_parameters


@pytest.mark.parametrize(
    "sizes",
    [
        {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128},
        {"hidden_size": 128, "num_layers": 3, "num_heads": 4, "num_kv_heads": 2, "tie_embeddings": False},
        {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "moe": {"num_experts": 4}},
    ],
)
def test_the_size_estimate_is_a_close_lower_bound(sizes: dict) -> None:
    cfg = ModelConfig(**sizes)
    real = count_parameters(build_model(cfg, vocab_size=300, seq_len=32, eos_id=0, pad_id=None, seed=0))
    assert 0.99 * real <= estimated_parameters(cfg, 300) <= real  # never refuses a model that fits


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried"),
        MemoryError(),
    ],
)
def test_out_of_memory_while_training_is_a_message(make_recipe, monkeypatch, tmp_path, error) -> None:
    from tools.train import pretrain

    def oom(*args, **kwargs):
        raise error

    monkeypatch.setattr(pretrain, "train_loop", oom)
    with pytest.raises(UserError, match="out of memory while training 'tiny'.*lower training.micro_batch_size"):
        pretrain.train(make_recipe(tmp_path / "run"), show_progress=False)
    assert not (tmp_path / "run").exists()  # the folder it created is removed


def test_other_runtime_errors_still_raise(make_recipe, monkeypatch, tmp_path) -> None:
    from tools.train import pretrain

    def bug(*args, **kwargs):
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(pretrain, "train_loop", bug)
    with pytest.raises(RuntimeError, match="a bug of ours"):
        pretrain.train(make_recipe(tmp_path / "run"), show_progress=False)


def test_score_commands_leave_no_datasets_cache_behind(tmp_path, monkeypatch) -> None:
    """`datasets` keeps an Arrow copy of what it loads in its cache (~/.cache/huggingface by
    default): outside the folders the user chose, and as large as the corpus."""
    import datasets
    from typer.testing import CliRunner

    from recipes.cli import app

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    (tmp_path / "d.jsonl").write_text('{"text": "a document about the weather"}\n{"text": "another one"}\n')
    out = tmp_path / "scored.jsonl"
    result = CliRunner().invoke(
        app, ["score", "apply", str(tmp_path / "d.jsonl"), "--scorer", "length", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert not cache.exists() or not any(cache.rglob("*.arrow"))
