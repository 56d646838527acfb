"""Fused output projection + cross-entropy (liger-kernel) that still yields per-domain losses.

With a large vocabulary the [tokens x vocab] logits (and their fp32 copy for the loss) dominate
activation memory. liger-kernel's fused linear cross-entropy computes the loss chunk by chunk from
the final hidden states and never materialises them. It returns a reduced loss, while the loop
needs per-sequence losses for per-domain logging and per-domain loss weights. Loss weights are
per domain, so reducing *per domain* is exact: each sequence gets its domain's mean loss within
the micro-batch, which gives the same weighted sum, the same gradients and the same per-domain
log sums as true per-sequence losses (a test checks this against the unfused path).

`enable_fused_cross_entropy` gives the model's ``forward`` an optional ``loss_groups`` argument
(`LossGroups`, built by the prefetcher from the batch's domains);
called without it the model is unchanged (evaluation, generation, saving). Patching the instance's
``forward`` keeps the call going through ``model(...)``, so DDP and FSDP hooks run as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput


@dataclass
class FusedLossOutput(ModelOutput):
    sequence_losses: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    router_logits: tuple[torch.Tensor, ...] | None = None


class LossGroups(NamedTuple):
    """A micro-batch's rows grouped by domain. ``order`` sorts the rows by domain and ``inverse``
    undoes it (device tensors); ``sizes`` are the groups' lengths in that order, as host ints, so
    slicing the groups never waits for the GPU (a boolean mask would)."""

    order: torch.Tensor
    inverse: torch.Tensor
    sizes: list[int]


LossSum = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (weight, hidden, targets) -> sum


def liger_loss_sum() -> LossSum:
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    fused = LigerFusedLinearCrossEntropyLoss(reduction="sum")
    return lambda weight, hidden, targets: fused(weight, hidden, targets)


def reference_loss_sum(weight: torch.Tensor, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The unfused computation (materialised logits), with the same contract as the fused kernel."""
    return F.cross_entropy((hidden @ weight.t()).float(), targets, reduction="sum")


def enable_fused_cross_entropy(model: torch.nn.Module, loss_sum: LossSum | None = None) -> None:
    """Make ``model(input_ids=x, loss_groups=g)`` return ``sequence_losses`` without logits."""
    loss_sum = loss_sum or liger_loss_sum()
    original = model.forward
    config = model.config
    if getattr(config, "final_logit_softcapping", None):
        raise ValueError("fused cross-entropy does not apply logit soft-capping; turn training.fused_cross_entropy off")

    def forward(input_ids: torch.Tensor | None = None, loss_groups: LossGroups | None = None, **kwargs):
        if loss_groups is None:
            return original(input_ids=input_ids, **kwargs)
        out = getattr(model, model.base_model_prefix)(input_ids=input_ids, **kwargs)
        weight = model.get_output_embeddings().weight
        hidden = out.last_hidden_state[:, :-1].index_select(0, loss_groups.order)
        targets = input_ids[:, 1:].index_select(0, loss_groups.order)
        positions = targets.shape[1]
        means, start = [], 0
        for size in loss_groups.sizes:
            rows = slice(start, start + size)
            total = loss_sum(weight, hidden[rows].reshape(-1, hidden.shape[-1]), targets[rows].reshape(-1))
            means.append((total.float() / (size * positions)).expand(size))
            start += size
        losses = torch.cat(means).index_select(0, loss_groups.inverse)  # back to the batch's row order
        router_logits = getattr(out, "router_logits", None)
        if not router_logits:
            return FusedLossOutput(sequence_losses=losses)
        from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

        aux = load_balancing_loss_func(router_logits, config.num_local_experts, config.num_experts_per_tok)
        return FusedLossOutput(sequence_losses=losses, aux_loss=aux, router_logits=router_logits)

    model.forward = forward
