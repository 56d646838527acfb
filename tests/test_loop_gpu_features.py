"""The loop's speed features on CPU: validation of what the machine cannot do, bf16 and per-block
compile that checkpoints survive, prefetch that changes nothing, activation checkpointing, the
fused-loss and megablocks dMoE plumbing against their unfused references, MoE router logging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import MixtralConfig
from transformers.models.mixtral.modeling_mixtral import MixtralExperts

from curriculum.errors import UserError
from tools.train import runtime as runtime_module
from tools.train.fused_loss import LossGroups, enable_fused_cross_entropy, reference_loss_sum
from tools.train.losses import sequence_losses
from tools.train.moe import TorchKernels, dmoe_experts_forward, register_experts_backend
from tools.train.prefetch import micro_batch
from tools.train.pretrain import setup, train
from tools.train.trackers import read_metrics

SHORT = {"steps": 4, "eval_every_steps": None, "log_batch_ids": True, "trackers": ["jsonl"]}
NO_SNAPSHOTS = {"snapshots": None}


def losses_of(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


@pytest.mark.parametrize(
    "training, model, message",
    [
        ({"attention": "flash_attention_2"}, {}, "training.attention=flash_attention_2 needs a CUDA GPU"),
        ({"fused_cross_entropy": True}, {}, "training.fused_cross_entropy needs a CUDA GPU"),
        ({"distributed": "fsdp"}, {}, "training.distributed=fsdp needs CUDA"),
        ({"device": "cuda"}, {}, "no CUDA device is visible"),
        ({}, {"moe": {"num_experts": 4, "backend": "megablocks"}}, "model.moe.backend=megablocks needs a CUDA GPU"),
    ],
)
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusals")
def test_unsupported_requests_fail_before_anything_is_built(make_recipe, training, model, message) -> None:
    recipe = make_recipe(training=training, model=model)
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        setup(recipe)


def test_bf16_on_a_cpu_without_it_is_refused_and_auto_falls_back(make_recipe, monkeypatch) -> None:
    monkeypatch.setattr(runtime_module, "bf16_supported", lambda cpu: False)
    with pytest.raises(UserError, match="training.precision=bf16: this CPU has no bfloat16 support"):
        setup(make_recipe(training={"precision": "bf16", "device": "cpu"}))
    resolved = runtime_module.resolve_runtime(make_recipe(training={"device": "cpu"}).training, make_recipe().model)
    assert not resolved.bf16 and resolved.attention == "sdpa" and resolved.moe_backend is None


def test_megablocks_missing_names_the_install_command(make_recipe, monkeypatch) -> None:
    """On a GPU machine without the `moe` extra the error says exactly what to install."""
    monkeypatch.setattr(runtime_module.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(runtime_module.torch.cuda, "get_device_name", lambda *a: "NVIDIA H200")
    monkeypatch.setattr(runtime_module.torch.cuda, "is_bf16_supported", lambda *a: True)
    monkeypatch.setattr(runtime_module, "installed", lambda name: False)
    recipe = make_recipe(model={"moe": {"num_experts": 4, "backend": "megablocks"}})
    with pytest.raises(UserError, match="megablocks==0.10.0 stanford-stk==0.7.1 grouped_gemm==0.3.0"):
        runtime_module.resolve_runtime(recipe.training, recipe.model)
    auto = make_recipe(model={"moe": {"num_experts": 4}})
    assert runtime_module.resolve_runtime(auto.training, auto.model).moe_backend == "transformers"


@pytest.mark.slow
def test_prefetch_gives_bitwise_the_same_batches_and_losses(make_recipe, tmp_path: Path) -> None:
    records = {}
    for prefetch in (False, True):
        recipe = make_recipe(
            run_dir=str(tmp_path / f"p{prefetch}"),
            training={**SHORT, "steps": 6, "prefetch": prefetch},
            averaging=NO_SNAPSHOTS,
        )
        train(recipe, show_progress=False)
        records[prefetch] = [r for r in read_metrics(tmp_path / f"p{prefetch}") if "loss" in r]
    sync, ahead = records[False], records[True]
    assert [r["batch_ids"] for r in sync] == [r["batch_ids"] for r in ahead]
    assert [r["loss"] for r in sync] == [r["loss"] for r in ahead]  # bitwise
    assert all(0.0 <= r["data_wait_fraction"] <= 1.0 for r in sync + ahead)


@pytest.mark.slow  # inductor compiles one block graph on CPU: ~20 s of the ~30
def test_bf16_and_compile_train_and_checkpoints_keep_plain_keys(make_recipe, tmp_path: Path) -> None:
    """bf16 autocast + per-block compile on CPU; the checkpoint resumes in an eager fp32 run."""
    fast = make_recipe(
        run_dir=str(tmp_path / "run"),
        training={**SHORT, "steps": 4, "precision": "bf16", "compile": True, "device": "cpu"},
        checkpoint={"every_steps": 2, "keep_last": 2},
        averaging=NO_SNAPSHOTS,
    )
    run = setup(fast)
    assert run.runtime.bf16
    train(fast, stop_after_steps=2, show_progress=False)
    weights = load_file(str(tmp_path / "run" / "checkpoints" / "step_00000002" / "model.safetensors"))
    assert weights and not [k for k in weights if "_orig_mod" in k or k.startswith("module.")]
    eager = make_recipe(
        run_dir=str(tmp_path / "run"),
        training={**SHORT, "steps": 4, "precision": "bf16", "compile": False, "device": "cpu"},
        checkpoint={"every_steps": 2, "keep_last": 2},
        averaging=NO_SNAPSHOTS,
    )
    summary = train(eager, resume=True, show_progress=False)
    assert summary["steps_done"] == 4
    assert all(np.isfinite(losses_of(tmp_path / "run")))


@pytest.mark.slow
def test_activation_checkpointing_gives_the_same_losses(make_recipe, tmp_path: Path) -> None:
    losses = {}
    for ac in (False, True):
        recipe = make_recipe(
            run_dir=str(tmp_path / f"ac{ac}"),
            training={**SHORT, "activation_checkpointing": ac},
            averaging=NO_SNAPSHOTS,
        )
        if ac:
            model = setup(recipe).model
            assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
        train(recipe, show_progress=False)
        losses[ac] = losses_of(tmp_path / f"ac{ac}")
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)


def test_fused_cross_entropy_matches_the_unfused_losses_and_gradients(make_recipe) -> None:
    """Per-domain reduction (what the liger kernel is used for) == per-sequence losses, for the
    losses, the weighted sum and every gradient; the reference kernel stands in for liger on CPU."""
    run = setup(make_recipe(training={**SHORT, "device": "cpu"}, averaging=NO_SNAPSHOTS))
    model = run.model
    micro = micro_batch(run.store.train, run.plan.batch(0), pin_memory=False)
    tokens, domains = micro.host["tokens"], micro.host["domains"]
    groups = LossGroups(micro.host["group_order"], micro.host["group_inverse"], micro.group_sizes)
    assert len(groups.sizes) == 3 and (np.diff(micro.rows.domains) < 0).any()  # interleaved domains
    weights = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float32)[domains]

    def grads(fused: bool) -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad()
        if fused:
            per_seq = model(input_ids=tokens, loss_groups=groups).sequence_losses
        else:
            per_seq = sequence_losses(model(input_ids=tokens).logits, tokens)
        (per_seq * weights).sum().backward()
        sums = torch.zeros(3).index_add_(0, domains, per_seq.detach())
        return sums, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    plain_sums, plain_grads = grads(False)
    enable_fused_cross_entropy(model, reference_loss_sum)
    fused_sums, fused_grads = grads(True)
    assert torch.allclose(fused_sums, plain_sums, rtol=1e-5)
    assert torch.allclose(fused_grads, plain_grads, rtol=1e-4, atol=1e-7)
    assert model(input_ids=tokens).logits.shape[-1] == model.config.vocab_size  # unchanged without loss_groups


def test_megablocks_dmoe_forward_matches_transformers_experts() -> None:
    """The dMoE computation (sort, histogram, gather, grouped GEMMs, weighted scatter) on the
    transformers weight layout, with reference kernels: same outputs and gradients."""
    config = MixtralConfig(hidden_size=16, intermediate_size=24, num_local_experts=4, num_experts_per_tok=2)
    torch.manual_seed(0)
    experts = MixtralExperts(config)
    config._experts_implementation = "eager"
    with torch.no_grad():
        experts.gate_up_proj.normal_(0, 0.2)
        experts.down_proj.normal_(0, 0.2)
    hidden = torch.randn(37, 16, requires_grad=True)
    logits = torch.randn(37, 4)
    top_w, top_i = logits.softmax(-1).topk(2, dim=-1)
    top_w = top_w / top_w.sum(-1, keepdim=True)
    top_i[0] = torch.tensor([3, 1])  # and one expert may receive no token at all
    top_i[top_i == 2] = 1

    def run(fn):
        experts.zero_grad()
        hidden.grad = None
        out = fn()
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        return out.detach(), hidden.grad.clone(), experts.gate_up_proj.grad.clone(), experts.down_proj.grad.clone()

    reference = run(lambda: experts(hidden, top_i, top_w))
    dmoe = run(lambda: dmoe_experts_forward(experts, hidden, top_i, top_w, TorchKernels()))
    for a, b in zip(reference, dmoe):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_moe_trains_on_cpu_with_router_loss_and_load_in_the_log(make_recipe, tmp_path: Path) -> None:
    recipe = make_recipe(
        run_dir=str(tmp_path / "moe"),
        model={"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 32, "moe": {"num_experts": 4}},
        schedule={"name": "constant", "peak_lr": 3e-3, "warmup_steps": 2},
        training={**SHORT, "steps": 20, "log_batch_ids": False, "log_every_steps": 5},
        averaging=NO_SNAPSHOTS,
        checkpoint={"every_steps": None},
    )
    run = setup(recipe)
    assert run.runtime.moe_backend == "transformers"
    train(recipe, show_progress=False)
    records = [r for r in read_metrics(tmp_path / "moe") if "loss" in r]
    assert len(records) == 4
    assert records[-1]["loss"] < records[0]["loss"] - 0.5  # it learns
    for r in records:
        assert np.isfinite(r["moe/aux_loss"]) and r["moe/aux_loss"] > 0
        assert 1.0 <= r["moe/load_max_over_mean"] <= 4.0 and r["moe/load_cv"] >= 0


def test_dmoe_backend_registers_with_transformers_and_saves_a_plain_model(tmp_path: Path) -> None:
    """The registration path the megablocks backend uses, with the reference kernels: a Mixtral
    built with it computes what the eager experts compute, and its saved folder loads anywhere."""
    from transformers import AutoModelForCausalLM

    register_experts_backend("currimix_torch_dmoe", TorchKernels(), None)
    config = MixtralConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        output_router_logits=True,
    )
    torch.manual_seed(0)
    eager = AutoModelForCausalLM.from_config(config, experts_implementation="eager")
    dmoe = AutoModelForCausalLM.from_config(config, experts_implementation="currimix_torch_dmoe")
    dmoe.load_state_dict(eager.state_dict())
    tokens = torch.randint(0, 64, (3, 12))
    a, b = eager(input_ids=tokens), dmoe(input_ids=tokens)
    assert torch.allclose(a.logits, b.logits, atol=1e-5) and torch.allclose(a.aux_loss, b.aux_loss)
    dmoe.save_pretrained(str(tmp_path / "m"))
    assert "currimix_torch_dmoe" not in (tmp_path / "m" / "config.json").read_text()
    reloaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m"))
    assert torch.allclose(reloaded(input_ids=tokens).logits, a.logits, atol=1e-5)


# ---------------------------------------------------------------- on a GPU (skipped without one)
# Written for the first session with a GPU; never run on the CPU machines this project is built on.

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@needs_cuda
def test_gpu_loop_bf16_compile_fused_adamw_prefetch_and_resume(make_recipe, tmp_path: Path) -> None:
    common = {**SHORT, "steps": 4, "precision": "bf16", "device": "cuda", "peak_flops": 1e12}
    fast = make_recipe(
        run_dir=str(tmp_path / "run"),
        training={**common, "compile": True},
        checkpoint={"every_steps": 2, "keep_last": 2},
        averaging=NO_SNAPSHOTS,
    )
    run = setup(fast)
    assert run.runtime.bf16 and run.optimizer.defaults["fused"]
    assert run.load_step(0).micro[0].host["tokens"].is_pinned()
    train(fast, stop_after_steps=2, show_progress=False)
    eager = make_recipe(
        run_dir=str(tmp_path / "run"),
        training={**common, "compile": False},
        checkpoint={"every_steps": 2, "keep_last": 2},
        averaging=NO_SNAPSHOTS,
    )
    assert train(eager, resume=True, show_progress=False)["steps_done"] == 4
    records = [r for r in read_metrics(tmp_path / "run") if "loss" in r]
    assert all(np.isfinite(r["loss"]) and 0 < r["mfu"] and 0 <= r["data_wait_fraction"] < 1 for r in records)


@pytest.mark.gpu
@needs_cuda
def test_megablocks_kernels_match_transformers_experts_on_gpu() -> None:
    pytest.importorskip("megablocks")
    pytest.importorskip("grouped_gemm")
    from tools.train.moe import MegablocksKernels

    config = MixtralConfig(hidden_size=128, intermediate_size=256, num_local_experts=8, num_experts_per_tok=2)
    torch.manual_seed(0)
    experts = MixtralExperts(config).cuda()
    config._experts_implementation = "eager"
    with torch.no_grad():
        experts.gate_up_proj.normal_(0, 0.05)
        experts.down_proj.normal_(0, 0.05)
    hidden = torch.randn(300, 128, device="cuda")
    top_w, top_i = torch.randn(300, 8, device="cuda").softmax(-1).topk(2, dim=-1)
    reference = experts(hidden, top_i, top_w)
    ours = dmoe_experts_forward(experts, hidden, top_i, top_w, MegablocksKernels(), torch.bfloat16)
    assert ours.dtype == hidden.dtype
    assert torch.allclose(ours, reference, rtol=5e-2, atol=5e-3)  # bf16 GEMMs vs fp32


@pytest.mark.gpu
@needs_cuda
def test_liger_fused_cross_entropy_matches_the_reference_on_gpu() -> None:
    pytest.importorskip("liger_kernel")
    from tools.train.fused_loss import liger_loss_sum

    torch.manual_seed(0)
    weight = torch.randn(1000, 64, device="cuda", requires_grad=True)
    hidden = torch.randn(96, 64, device="cuda", requires_grad=True)
    targets = torch.randint(0, 1000, (96,), device="cuda")
    fused = liger_loss_sum()(weight, hidden, targets)
    reference = reference_loss_sum(weight, hidden, targets)
    assert torch.allclose(fused, reference, rtol=1e-4)
    (g_fused,) = torch.autograd.grad(fused, weight)
    (g_reference,) = torch.autograd.grad(reference, weight)
    assert torch.allclose(g_fused, g_reference, rtol=1e-3, atol=1e-5)
