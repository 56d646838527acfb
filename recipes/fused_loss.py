"""Fused output projection + cross-entropy (liger-kernel) that still yields per-domain losses.

With a large vocabulary the [tokens x vocab] logits (and their fp32 copy for the loss) dominate
activation memory. liger-kernel's fused linear cross-entropy computes the loss chunk by chunk from
the final hidden states and never materialises them. It returns a reduced loss, while the loop
needs per-sequence losses for per-domain logging and per-domain loss weights. Loss weights are
per domain, so reducing *per domain* is exact: each sequence gets its domain's mean loss within
the micro-batch, which gives the same weighted sum, the same gradients and the same per-domain
log sums as true per-sequence losses (a test checks this against the unfused path).

`enable_fused_cross_entropy` gives the model's ``forward`` an optional ``loss_groups`` argument;
called without it the model is unchanged (evaluation, generation, saving). Patching the instance's
``forward`` keeps the call going through ``model(...)``, so DDP and FSDP hooks run as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput


@dataclass
class FusedLossOutput(ModelOutput):
    sequence_losses: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    router_logits: tuple[torch.Tensor, ...] | None = None


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

    def forward(input_ids: torch.Tensor | None = None, loss_groups: torch.Tensor | None = None, **kwargs):
        if loss_groups is None:
            return original(input_ids=input_ids, **kwargs)
        out = getattr(model, model.base_model_prefix)(input_ids=input_ids, **kwargs)
        weight = model.get_output_embeddings().weight
        hidden, targets = out.last_hidden_state[:, :-1], input_ids[:, 1:]
        positions = targets.shape[1]
        losses = torch.zeros(len(input_ids), dtype=torch.float32, device=input_ids.device)
        for group in torch.unique(loss_groups).tolist():
            member = loss_groups == group
            total = loss_sum(weight, hidden[member].reshape(-1, hidden.shape[-1]), targets[member].reshape(-1))
            losses = losses + member.float() * (total.float() / (int(member.sum()) * positions))
        router_logits = getattr(out, "router_logits", None)
        if not router_logits:
            return FusedLossOutput(sequence_losses=losses)
        from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

        aux = load_balancing_loss_func(router_logits, config.num_local_experts, config.num_experts_per_tok)
        return FusedLossOutput(sequence_losses=losses, aux_loss=aux, router_logits=router_logits)

    model.forward = forward
