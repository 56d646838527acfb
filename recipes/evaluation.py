"""In-training evaluation: mean per-sequence loss per domain of a model on a token-store split.

The same numbers `currimix eval` reports for a model folder (`tools.evaluate`), computed here on
the live (possibly distributed) model during training.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from transformers import PreTrainedModel

from curriculum.store import TokenSplit
from recipes.losses import sequence_losses


def eval_sequence_ids(split: TokenSplit, per_domain: int) -> dict[int, np.ndarray]:
    """A fixed, evenly spaced sample of each domain's sequences (the split is in score order, so
    taking the first N would measure only the lowest-quality text)."""
    out = {}
    for d in range(len(split.domain_names)):
        start, stop = split.domain_range(d)
        n = min(per_domain, stop - start)
        if n:
            out[d] = np.unique(np.linspace(start, stop - 1, n).round().astype(np.int64))
    return out


@torch.no_grad()
def evaluate_domains(
    model: PreTrainedModel,
    split: TokenSplit,
    *,
    per_domain: int,
    micro_batch_size: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    autocast: Callable[[], object] | None = None,
) -> dict[str, float]:
    """Mean per-sequence loss for each domain of ``split``; ranks share the work when ``reduce`` sums."""
    was_training = model.training
    model.eval()
    n_domains = len(split.domain_names)
    sums = torch.zeros(n_domains, dtype=torch.float64, device=device)
    counts = torch.zeros(n_domains, dtype=torch.float64, device=device)
    for d, ids in eval_sequence_ids(split, per_domain).items():
        mine = ids[rank::world_size]
        for start in range(0, len(mine), micro_batch_size):
            tokens = torch.from_numpy(split.sequences(mine[start : start + micro_batch_size])).to(device)
            with autocast() if autocast else torch.autocast(device.type, enabled=False):
                logits = model(input_ids=tokens).logits
            losses = sequence_losses(logits, tokens)
            sums[d] += losses.sum().double()
            counts[d] += len(losses)
    if reduce is not None:
        sums, counts = reduce(sums), reduce(counts)
    model.train(was_training)
    return {name: float(sums[d] / counts[d]) for d, name in enumerate(split.domain_names) if counts[d] > 0}
