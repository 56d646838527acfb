"""Mixture-of-experts backends and router statistics.

The MoE model is always transformers' Mixtral: its router (softmax, top-k, renormalised weights)
and its expert weights in transformers' layout (``experts.gate_up_proj`` [E, 2F, H],
``experts.down_proj`` [E, H, F]). What changes between backends is only how the experts are
computed, through transformers' own experts-implementation registry:

- ``transformers``: its ``grouped_mm`` experts (torch grouped GEMM; a loop fallback on CPU).
- ``megablocks``: megablocks' dropless-MoE (dMoE) computation - its radix sort, histogram and
  bin cumsum (CUDA ops), its permuting gather/scatter (Triton kernels) and grouped GEMMs
  (``grouped_gemm``, bf16 only) - run on those same weights.

Keeping one parameter layout, instead of swapping in megablocks' ``dMoE`` module with its own
``w1/v1/w2`` tensors, is deliberate: checkpoints, averaging snapshots and `from_pretrained` work
identically whichever backend trained, and a run can resume under the other backend. megablocks
needs CUDA, so the function below is written against a small kernel interface; tests check it
on CPU against transformers' experts with a pure-PyTorch implementation of the same interface.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch

BACKEND_NAME = "megablocks"  # the experts_implementation name registered with transformers


class DmoeKernels(Protocol):
    """The five operations of megablocks' grouped dMoE forward (``ParallelDroplessMLP``)."""

    def sort(self, x: torch.Tensor, end_bit: int) -> tuple[torch.Tensor, torch.Tensor]: ...
    def histogram(self, x: torch.Tensor, num_bins: int) -> torch.Tensor: ...
    def gather(self, x, indices, bin_ids, bins, top_k) -> torch.Tensor: ...
    def scatter(self, x, indices, bin_ids, weights, bins, top_k) -> torch.Tensor: ...
    def gmm(self, a: torch.Tensor, b: torch.Tensor, batch_sizes: torch.Tensor, trans_b: bool) -> torch.Tensor: ...


class MegablocksKernels:
    """megablocks' CUDA/Triton ops and grouped_gemm's GEMM (imported only when used)."""

    def __init__(self) -> None:
        import grouped_gemm.ops
        import megablocks.ops

        self.ops, self.gg = megablocks.ops, grouped_gemm.ops

    def sort(self, x, end_bit):
        return self.ops.sort(x, end_bit)

    def histogram(self, x, num_bins):
        return self.ops.histogram(x, num_bins)

    def gather(self, x, indices, bin_ids, bins, top_k):
        return self.ops.gather(x, indices, bin_ids, bins, top_k)

    def scatter(self, x, indices, bin_ids, weights, bins, top_k):
        return self.ops.scatter(x, indices, bin_ids, weights, bins, top_k)

    def gmm(self, a, b, batch_sizes, trans_b):
        return self.gg.gmm(a, b, batch_sizes, trans_b=trans_b)


class TorchKernels:
    """The same interface in plain PyTorch (any device, any dtype): the reference the megablocks
    path is tested against on CPU. Semantics follow megablocks' kernels: ``indices`` index the
    flattened [tokens * top_k] assignments, sorted by expert."""

    def sort(self, x, end_bit):
        values, indices = torch.sort(x, stable=True)
        return values, indices.int()

    def histogram(self, x, num_bins):
        return torch.bincount(x, minlength=num_bins).int()

    def gather(self, x, indices, bin_ids, bins, top_k):
        return x[indices.long() // top_k]

    def scatter(self, x, indices, bin_ids, weights, bins, top_k):
        out = torch.zeros(indices.numel(), x.shape[-1], dtype=x.dtype, device=x.device)
        out = out.index_copy(0, indices.long(), x * weights[indices.long()].unsqueeze(-1).to(x.dtype))
        return out.view(-1, top_k, x.shape[-1]).sum(dim=1)

    def gmm(self, a, b, batch_sizes, trans_b):
        outs, start = [], 0
        for e, n in enumerate(batch_sizes.tolist()):
            w = b[e].t() if trans_b else b[e]
            outs.append(a[start : start + n] @ w)
            start += n
        return torch.cat(outs)


def dmoe_experts_forward(
    experts: torch.nn.Module,
    hidden_states: torch.Tensor,
    top_k_index: torch.Tensor,
    top_k_weights: torch.Tensor,
    kernels: DmoeKernels,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """megablocks' dropless grouped forward on a transformers experts module's own weights.

    Mirrors ``ParallelDroplessMLP.grouped_forward_once`` + ``GroupedGLU``: sort the [tokens x top_k]
    assignments by expert, gather tokens into expert order, one grouped GEMM for gate+up, SiLU-gated
    product, one grouped GEMM down, then scatter back weighted by the router. ``dtype`` casts inputs
    and weights for the GEMMs (grouped_gemm runs bf16 only); autograd carries gradients back to the
    fp32 master weights.
    """
    num_experts = experts.gate_up_proj.shape[0]
    top_k = top_k_index.shape[-1]
    dtype = dtype or hidden_states.dtype
    x = hidden_states.to(dtype).contiguous()
    with torch.no_grad():
        flat_experts = top_k_index.flatten().int()
        bin_ids, indices = kernels.sort(flat_experts, max(int(math.ceil(math.log2(num_experts))), 1))
        tokens_per_expert = kernels.histogram(flat_experts, num_experts)
        bins = torch.cumsum(tokens_per_expert, 0).int()
        batch_sizes = tokens_per_expert.cpu().to(torch.long)  # grouped_gemm takes host sizes
    routed = kernels.gather(x, indices, bin_ids, bins, top_k)
    gate_up = kernels.gmm(routed, experts.gate_up_proj.to(dtype).contiguous(), batch_sizes, trans_b=True)
    gated = experts._apply_gate(gate_up)  # act(gate) * up, as transformers' experts do
    down = kernels.gmm(gated.contiguous(), experts.down_proj.to(dtype).contiguous(), batch_sizes, trans_b=True)
    weights = top_k_weights.flatten().to(dtype)
    return kernels.scatter(down, indices, bin_ids, weights, bins, top_k).to(hidden_states.dtype)


def register_experts_backend(name: str, kernels: DmoeKernels, dtype: torch.dtype | None) -> None:
    """Register ``experts_implementation=name`` with transformers: the dMoE forward on ``kernels``."""
    from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

    def forward(experts, hidden_states, top_k_index, top_k_weights):
        return dmoe_experts_forward(experts, hidden_states, top_k_index, top_k_weights, kernels, dtype)

    ALL_EXPERTS_FUNCTIONS.register(name, forward)


def register_megablocks_backend() -> None:
    """``experts_implementation="megablocks"``: megablocks' kernels, in bf16 whatever autocast left
    the activations in (grouped_gemm is bf16-only). Idempotent."""
    from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

    if BACKEND_NAME not in ALL_EXPERTS_FUNCTIONS:
        register_experts_backend(BACKEND_NAME, MegablocksKernels(), torch.bfloat16)


def experts_implementation(backend: str) -> str:
    """The transformers ``experts_implementation`` for a resolved MoE backend."""
    if backend == "megablocks":
        register_megablocks_backend()
        return BACKEND_NAME
    return "grouped_mm"


def router_load(router_logits: Any, top_k: int) -> torch.Tensor | None:
    """Tokens routed to each expert, summed over layers, as a fraction of all assignments ([E])."""
    if not router_logits:
        return None
    logits = router_logits if isinstance(router_logits, torch.Tensor) else torch.cat(list(router_logits))
    chosen = logits.detach().topk(top_k, dim=-1).indices.flatten()
    # scatter_add, not bincount: CUDA bincount reads the max index back to the host (a sync).
    counts = torch.zeros(logits.shape[-1], dtype=torch.float64, device=logits.device)
    return counts.scatter_add_(0, chosen, torch.ones_like(chosen, dtype=torch.float64))


def load_balance_record(counts: torch.Tensor) -> dict[str, float]:
    """Log entries from summed per-expert counts: the busiest expert's load over the mean
    (1.0 = perfectly balanced, E = everything on one expert) and the coefficient of variation."""
    mean = counts.mean()
    return {
        "moe/load_max_over_mean": float(counts.max() / mean),
        "moe/load_cv": float(counts.std(unbiased=False) / mean),
    }
