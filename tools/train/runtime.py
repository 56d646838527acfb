"""What this machine and its installed packages allow: device, precision, attention kernel, MoE
backend, fused loss and the multi-process strategy, resolved once before anything heavy is built.

Every impossible request (bf16 on hardware without it, flash-attention or liger-kernel not
installed or on a CPU, megablocks without CUDA) is a `UserError` naming the recipe key and the fix,
raised before the model is built. `auto` values pick the fastest option that is actually present.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from curriculum.errors import UserError
from tools.train.config import ModelConfig, TrainingConfig

MOE_INSTALL = (
    "install it on a CUDA machine (see README, 'Mixture of experts'): "
    "pip install --no-deps --no-build-isolation megablocks==0.10.0 stanford-stk==0.7.1 grouped_gemm==0.3.0"
)


@dataclass(frozen=True)
class Runtime:
    """The resolved choices a run trains with."""

    cpu: bool
    bf16: bool
    attention: str  # transformers attn_implementation
    moe_backend: str | None  # "megablocks" | "transformers" | None for dense models
    fused_cross_entropy: bool
    fsdp: bool  # the recipe asks for FSDP (accelerate config / launch flags may also turn it on)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def bf16_supported(cpu: bool) -> bool:
    if not cpu:
        return torch.cuda.is_bf16_supported()
    # oneDNN's bf16 path needs AVX512-BF16/AMX (or emulates on AVX512-BW, which it also reports).
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_runtime(t: TrainingConfig, model: ModelConfig) -> Runtime:
    """Resolve `auto` choices and refuse impossible ones, all before the model is built."""
    if t.device == "cuda" and not torch.cuda.is_available():
        raise UserError("training.device=cuda but no CUDA device is visible; use training.device=auto or cpu")
    cpu = t.device == "cpu" or (t.device == "auto" and not torch.cuda.is_available())
    where = "CPU" if cpu else torch.cuda.get_device_name()
    problems: list[str] = []

    bf16 = t.precision == "bf16" or (t.precision == "auto" and not cpu)
    if bf16 and not bf16_supported(cpu):
        if t.precision == "bf16":
            problems.append(f"training.precision=bf16: this {where} has no bfloat16 support; use precision: fp32")
        bf16 = False

    attention = t.attention
    if attention == "auto":
        attention = "flash_attention_2" if not cpu and installed("flash_attn") else "sdpa"
    elif attention == "flash_attention_2":
        if cpu:
            problems.append("training.attention=flash_attention_2 needs a CUDA GPU; use sdpa on CPU")
        elif not installed("flash_attn"):
            problems.append(
                "training.attention=flash_attention_2 but the flash-attn package is not installed: "
                "pip install flash-attn --no-build-isolation (or use attention: sdpa)"
            )

    if t.fused_cross_entropy:
        if cpu:
            problems.append(
                "training.fused_cross_entropy needs a CUDA GPU (liger-kernel is Triton); turn it off on CPU"
            )
        elif not installed("liger_kernel"):
            problems.append("training.fused_cross_entropy needs liger-kernel: pip install liger-kernel")

    moe_backend = None
    if model.moe is not None:
        megablocks_ready = installed("megablocks") and installed("grouped_gemm")
        moe_backend = model.moe.backend
        if moe_backend == "auto":
            moe_backend = "megablocks" if megablocks_ready and not cpu and bf16 else "transformers"
        elif moe_backend == "megablocks":
            if cpu:
                problems.append(
                    "model.moe.backend=megablocks needs a CUDA GPU; use backend: transformers (or auto) on CPU"
                )
            elif not megablocks_ready:
                missing = [m for m in ("megablocks", "grouped_gemm") if not installed(m)]
                problems.append(f"model.moe.backend=megablocks but {missing} not installed; {MOE_INSTALL}")
            if not bf16:
                problems.append(
                    "model.moe.backend=megablocks runs its grouped GEMMs in bf16 only; set training.precision: bf16"
                )

    fsdp = t.distributed == "fsdp"
    if fsdp and cpu:
        problems.append(
            "training.distributed=fsdp needs CUDA: accelerate runs CPU processes with DDP only; use distributed: auto or ddp"
        )
    if problems:
        raise UserError(f"the recipe asks for what this machine cannot do ({len(problems)} problem(s)):", problems)
    return Runtime(cpu, bf16, attention, moe_backend, t.fused_cross_entropy, fsdp)
