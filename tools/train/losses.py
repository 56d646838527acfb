"""Per-sequence language-modelling loss: the unit that per-domain logging and loss weights act on."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sequence_losses(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of each sequence, in fp32: shape [batch].

    Sequences are packed and unpadded, so every position but the last predicts a real token; the
    mean over sequences equals the usual token mean, and weighting sequences weights domains.
    """
    predictions = logits[:, :-1].float()
    targets = tokens[:, 1:]
    losses = F.cross_entropy(predictions.reshape(-1, predictions.size(-1)), targets.reshape(-1), reduction="none")
    return losses.view(targets.shape).mean(dim=1)
