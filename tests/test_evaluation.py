"""Evaluation sets, bits per byte and probes: on the tiny store, a finished tiny run and held-out stores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from curriculum.errors import UserError
from curriculum.store.reader import TokenStore
from curriculum.tokenizer import load_tokenizer
from tests.conftest import write_domain
from tools.evaluate.config import EvalSetConfig, EvaluationConfig, ProbeSetConfig
from tools.evaluate.evaluator import Evaluator
from tools.evaluate.measure import set_losses, set_metrics
from tools.evaluate.probes import (
    ProbeExample,
    TokenizedProbes,
    choice_logprobs,
    load_probe_file,
    probe_metrics,
    tokenize_probes,
)
from tools.evaluate.sets import open_eval_set

CPU = torch.device("cpu")


class UniformLM(torch.nn.Module):
    """Every next token equally likely: its loss is ln(vocab) at every position, exactly."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids, attention_mask=None):
        out = type("Out", (), {})()
        out.logits = torch.zeros(*input_ids.shape, self.vocab)
        return out


def held_out_store(tmp_path: Path, tiny_store: Path, n_docs: int = 30, val_fraction: float = 1.0) -> Path:
    """A store made only of held-out text (val_fraction 1) with the tiny store's tokenizer."""
    from curriculum.store.prepare import prepare_store
    from recipes.loading import recipe_from_dict

    write_domain(tmp_path / "heldout.jsonl", "prose", n_docs, seed=11)
    raw = {
        "name": "heldout",
        "data": {
            "store": str(tmp_path / "heldout-store"),
            "seq_len": 32,
            "val_fraction": val_fraction,
            "domains": {"prose": {"sources": [{"path": str(tmp_path / "heldout.jsonl")}]}},
        },
        "tokenizer": {"path": str(tiny_store / "tokenizer")},
    }
    prepare_store(recipe_from_dict(raw), show_progress=False)  # no `training` section needed
    return tmp_path / "heldout-store"


def test_bits_per_byte_of_a_uniform_model_is_log2_vocab_times_tokens_per_byte(tiny_store: Path) -> None:
    eval_set = open_eval_set("val", EvalSetConfig(), tiny_store)
    store = TokenStore(tiny_store)
    vocab = store.vocab_size
    metrics = set_metrics(eval_set, set_losses(UniformLM(vocab), eval_set, micro_batch_size=4, device=CPU))
    tokenizer = load_tokenizer(store.tokenizer_path)
    for d, name in enumerate(store.domain_names):
        start, stop = store.val.domain_range(d)
        rows = store.val.sequences(np.arange(start, stop))[:, 1:]
        n_bytes = sum(len(tokenizer.decode(r, skip_special_tokens=True).encode()) for r in rows.tolist())
        assert metrics[f"val/{name}"] == pytest.approx(math.log(vocab))
        assert metrics[f"bpb/val/{name}"] == pytest.approx(math.log2(vocab) * rows.size / n_bytes)
        assert 1.0 < rows.size and n_bytes / rows.size > 1.0  # a BPE token is more than a byte on average
    assert len(eval_set) == len(store.val)  # every validation sequence by default


def test_ranks_share_a_set_and_agree_with_one_process(tiny_store: Path, finished_run: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(str(finished_run / "final"))
    eval_set = open_eval_set("val", EvalSetConfig(sequences_per_domain=7), tiny_store)
    whole = set_losses(model, eval_set, micro_batch_size=3, device=CPU)
    parts = [set_losses(model, eval_set, micro_batch_size=2, device=CPU, rank=r, world_size=2) for r in (0, 1)]
    assert np.all((parts[0] == 0) != (parts[1] == 0))  # each sequence measured by exactly one rank
    np.testing.assert_allclose(parts[0] + parts[1], whole, rtol=1e-5)
    assert len(eval_set) == 3 * 7


def test_a_held_out_only_store_is_an_evaluation_set_in_the_loop(tmp_path: Path, tiny_store: Path, make_recipe) -> None:
    from tools.train.pretrain import train
    from tools.train.trackers import read_metrics

    store = held_out_store(tmp_path, tiny_store)
    opened = TokenStore(store)
    assert len(opened.train) == 0 and len(opened.val) > 0
    recipe = make_recipe(
        tmp_path / "run",
        training={"steps": 4, "eval_every_steps": 2, "eval_sequences_per_domain": None},
        averaging={"snapshots": 2, "every_steps": 2, "weights": {"name": "sma"}},
        evaluation={
            "sets": {"val": {"sequences_per_domain": 8}, "heldout": {"store": str(store)}},
            "micro_batch_size": 64,
        },
    )
    summary = train(recipe, show_progress=False)
    evals = [r for r in read_metrics(tmp_path / "run") if "bpb/heldout" in r]
    assert [r["step"] for r in evals] == [1, 3]
    assert {"heldout/prose", "heldout/mean", "bpb/heldout/prose", "val/code", "bpb/val/web", "bpb/val"} <= set(
        evals[-1]
    )
    assert summary["val_loss"] == {d: summary["eval"][f"val/{d}"] for d in ("code", "prose", "web")}
    # the same numbers from the saved model, outside the loop (every sequence of the held-out store)
    from tools.evaluate.folders import evaluate_folders

    again = evaluate_folders(
        [tmp_path / "run" / "final"], recipe.evaluation, training_store=recipe.store_path, micro_batch_size=64
    )
    measured = again[str(tmp_path / "run" / "final")]
    for key in ("heldout/prose", "bpb/heldout", "val/code"):
        assert measured[key] == pytest.approx(evals[-1][key], rel=1e-4)


def test_a_store_made_with_another_tokenizer_is_refused(tmp_path: Path, tiny_store: Path, corpus_dir: Path) -> None:
    from curriculum.store.prepare import prepare_store
    from recipes.loading import recipe_from_dict

    raw = {
        "name": "other",
        "data": {
            "store": str(tmp_path / "other"),
            "seq_len": 32,
            "domains": {"prose": {"sources": [{"path": str(corpus_dir / "prose.jsonl")}]}},
        },
        "tokenizer": {"vocab_size": 290, "min_frequency": 1},
    }
    prepare_store(recipe_from_dict(raw), show_progress=False)
    with pytest.raises(UserError, match="another tokenizer"):
        open_eval_set(
            "other", EvalSetConfig(store=str(tmp_path / "other")), None, reference_tokenizer=tiny_store / "tokenizer"
        )


def test_choice_logprobs_batched_with_padding_equal_one_row_at_a_time(tiny_store: Path, finished_run: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(str(finished_run / "final"))
    tokenizer = load_tokenizer(tiny_store / "tokenizer")
    examples = [
        ProbeExample(context="the model reads", choices=[" data", " the learning rate decays", " x"], label=0),
        ProbeExample(context="def f(x):\n    ", choices=["return x", "while"], label=0),
    ]
    probes = tokenize_probes("t", examples, tokenizer, max_len=32)
    batched = choice_logprobs(model, probes, micro_batch_size=5, device=CPU, pad_id=tokenizer.pad_token_id)
    for i, row in enumerate(probes.rows):
        tokens = torch.tensor([row])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=tokens).logits[0, :-1], dim=-1)
        picked = logp[torch.arange(len(row) - 1), tokens[0, 1:]]
        assert batched[i] == pytest.approx(float(picked[-probes.choice_tokens[i] :].sum()), rel=1e-4)
    # the context's trailing spaces move to the choice (" return", the token the model trained on)
    assert probes.choice_bytes[3] == len("\n    return x")


def test_probe_metrics_accuracy_ties_and_bits_per_byte() -> None:
    probes = TokenizedProbes(
        "p",
        rows=[[0]] * 5,
        choice_tokens=np.ones(5, dtype=np.int64),
        choice_bytes=np.array([2, 2, 4, 4, 4]),
        example=np.array([0, 0, 1, 1, 1]),
        correct=np.array([True, False, False, True, False]),
        n_examples=2,
    )
    logprobs = np.array([-1.0, -3.0, -2.0, -2.0, -5.0])  # example 0 right; example 1 a tie: wrong
    metrics = probe_metrics(probes, logprobs)
    assert metrics["probe/p/acc"] == 0.5
    assert metrics["probe/p/bpb"] == pytest.approx((1.0 + 2.0) / math.log(2) / (2 + 4))


def test_probe_files_name_every_bad_row(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text('{"context": "a", "choices": ["b", "c"], "label": 1}\n\n' * 3)
    assert len(load_probe_file(good)) == 3 and len(load_probe_file(good, limit=2)) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"context": "a", "choices": ["b", ""], "label": 0}\n{"context": "a", "choices": ["b"], "label": 0, "x": 1}\n'
    )
    with pytest.raises(UserError) as info:
        load_probe_file(bad)
    assert f"{bad}:1: every choice must be a non-empty string" in str(info.value)
    assert f"{bad}:2: choices:" in str(info.value) and f"{bad}:2: x:" in str(info.value)
    (tmp_path / "latin.jsonl").write_bytes(b"\xff\xfe")
    with pytest.raises(UserError, match="not UTF-8"):
        load_probe_file(tmp_path / "latin.jsonl")


def test_shipped_probe_sets_are_valid_deterministic_and_away_from_the_quickstart_code() -> None:
    from tools.corpus import stdlib_files
    from tools.evaluate.probe_sets import BUILDERS, probe_sources

    for name, build in BUILDERS.items():
        examples = build(40, 0)
        assert len(examples) == 40, name
        assert examples == build(40, 0)
        labels = {e.label for e in examples}
        assert len(labels) > 1 and all(len(e.choices) == 4 for e in examples), name
        assert all(e.choices[e.label] not in e.choices[: e.label] for e in examples)
    quickstart = set(stdlib_files(3_000_000))
    used = [path for path, _ in zip((p for p, _ in probe_sources()), range(40))]
    assert not quickstart & set(used)


def test_evaluator_runs_sets_and_probes_of_a_section(tiny_store: Path, finished_run: Path, tmp_path: Path) -> None:
    probe_file = tmp_path / "mine.jsonl"
    probe_file.write_text(json.dumps({"context": "the model", "choices": [" reads", " zzz"], "label": 0}) + "\n")
    config = EvaluationConfig(
        sets={"val": EvalSetConfig(sequences_per_domain=3)},
        probes={
            "kw": ProbeSetConfig(builtin="python-keywords", max_examples=12),
            "mine": ProbeSetConfig(path=str(probe_file)),
        },
    )
    evaluator = Evaluator.open(config, training_store=tiny_store, tokenizer_dir=tiny_store / "tokenizer", max_len=32)
    model = AutoModelForCausalLM.from_pretrained(str(finished_run / "final"))
    metrics = evaluator.measure(model, micro_batch_size=4, device=CPU)
    assert {"probe/kw/acc", "probe/kw/bpb", "probe/mine/acc", "probe/mine/bpb", "bpb/val", "val/mean"} <= set(metrics)
    assert 0 <= metrics["probe/kw/acc"] <= 1 and metrics["probe/kw/bpb"] > 0
    assert evaluator.probes[0].n_examples == 12


def test_currimix_eval_on_a_held_out_store_with_probes_writes_json_and_markdown(
    tmp_path: Path, tiny_store: Path, finished_run: Path
) -> None:
    from typer.testing import CliRunner

    from recipes.cli import app

    store = held_out_store(tmp_path, tiny_store, n_docs=10)
    final, snapshot = finished_run / "final", finished_run / "snapshots" / "step_00000002"
    args = ["eval", str(final), str(snapshot), "--store", str(store), "--probe", "python-builtins"]
    args += ["--json", str(tmp_path / "out.json"), "--markdown", str(tmp_path / "out.md"), "--batch-size", "64"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "out.json").read_text())
    assert list(table) == [str(final), str(snapshot)]
    n_val = len(TokenStore(store).val)
    assert {"val/prose", "bpb/val/prose", "bpb/val", "probe/python-builtins/acc"} <= set(table[str(final)])
    assert table[str(final)]["val/prose"] != table[str(snapshot)]["val/prose"]
    markdown = (tmp_path / "out.md").read_text()
    assert markdown.startswith(f"| metric | {final} | {snapshot} |") and "| bpb/val/prose |" in markdown
    assert "train loss" not in result.output and n_val > 0


def test_a_training_store_without_validation_sequences_has_no_val_set(tmp_path: Path, tiny_store: Path) -> None:
    store = held_out_store(tmp_path, tiny_store, n_docs=10, val_fraction=0.0)
    assert open_eval_set("val", EvalSetConfig(), store) is None  # nothing to measure, as before sets existed
    with pytest.raises(UserError, match="holds no sequences to evaluate"):  # named explicitly: a mistake
        open_eval_set("mine", EvalSetConfig(store=str(store), split="val"), None)


def test_bits_per_byte_per_source_of_a_domain_read_from_two_sources(tmp_path: Path, tiny_store: Path) -> None:
    from curriculum.store.prepare import prepare_store
    from recipes.loading import recipe_from_dict

    write_domain(tmp_path / "a.jsonl", "prose", 20, seed=1)
    write_domain(tmp_path / "b.jsonl", "code", 20, seed=2)  # code-like text under the same domain
    raw = {
        "name": "two-sources",
        "data": {
            "store": str(tmp_path / "store"),
            "seq_len": 32,
            "val_fraction": 1.0,
            "domains": {
                "mixed": {"sources": [{"path": str(tmp_path / "a.jsonl")}, {"path": str(tmp_path / "b.jsonl")}]}
            },
        },
        "tokenizer": {"path": str(tiny_store / "tokenizer")},
    }
    prepare_store(recipe_from_dict(raw), show_progress=False)
    eval_set = open_eval_set("two", EvalSetConfig(store=str(tmp_path / "store")), None)
    assert eval_set.source_names == ["mixed/source0", "mixed/source1"]
    losses = np.linspace(1.0, 3.0, len(eval_set))
    metrics = set_metrics(eval_set, losses)
    seq_nats = losses * 31
    for s in (0, 1):
        rows = eval_set.source == s
        expected = seq_nats[rows].sum() / math.log(2) / eval_set.n_bytes[rows].sum()
        assert metrics[f"bpb/two/mixed/source{s}"] == pytest.approx(expected)
    pooled = seq_nats.sum() / math.log(2) / eval_set.n_bytes.sum()
    assert metrics["bpb/two/mixed"] == pytest.approx(pooled) == pytest.approx(metrics["bpb/two"])
