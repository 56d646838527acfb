"""Evaluation on a token-store split: mean per-sequence loss per domain, and by quality quintile.

The loop, `currimix eval` and `currimix run` measure the `evaluation` section's sets
(`tools.evaluate.measure`, with bits per byte); `evaluate_quality` (the sweep's metrics) adds the loss by **quality quintile of the held-out sequences** (within each
domain, by the sequences' scores), pooled over domains and per domain: whether a model is better
on the high-quality text a curriculum ends on is a question about Q5, not about the mean.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from transformers import PreTrainedModel

from curriculum.store.reader import QUINTILES, TokenSplit, quintile_of
from tools.train.losses import sequence_losses


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


def quality_quintiles(split: TokenSplit, ids: np.ndarray, domain: int) -> np.ndarray:
    """Quintile 0..4 of each of ``ids`` (one domain's sequences) among *all* that domain's sequences
    of ``split``, by score (ties share their mean rank), so Q5 is the domain's best fifth. Found by
    binary search in the split's sorted shard runs (`TokenSplit.score_quantiles`), never loading
    the whole domain's scores."""
    quantile = split.score_quantiles(domain, split.score[np.asarray(ids, dtype=np.int64)])
    return quintile_of(quantile)


@torch.no_grad()
def batch_losses(
    model: PreTrainedModel,
    split: TokenSplit,
    ids: np.ndarray,
    *,
    micro_batch_size: int,
    device: torch.device,
    autocast: Callable[[], object] | None = None,
) -> Iterator[torch.Tensor]:
    """The per-sequence losses of ``ids``, one device tensor per micro-batch, in order (the caller
    puts the model in eval mode)."""
    for start in range(0, len(ids), micro_batch_size):
        tokens = torch.from_numpy(split.sequences(ids[start : start + micro_batch_size])).to(device)
        with autocast() if autocast else torch.autocast(device.type, enabled=False):
            logits = model(input_ids=tokens).logits
        yield sequence_losses(logits, tokens)


@torch.no_grad()
def per_sequence_losses(
    model: PreTrainedModel,
    split: TokenSplit,
    ids: np.ndarray,
    *,
    micro_batch_size: int,
    device: torch.device,
    autocast: Callable[[], object] | None = None,
) -> np.ndarray:
    """The loss of each sequence in ``ids`` (float64, same order), in eval mode."""
    was_training = model.training
    model.eval()
    batches = batch_losses(model, split, ids, micro_batch_size=micro_batch_size, device=device, autocast=autocast)
    out = [losses.double().cpu().numpy() for losses in batches]
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def evaluate_quality(
    model: PreTrainedModel,
    split: TokenSplit,
    *,
    per_domain: int,
    micro_batch_size: int,
    device: torch.device,
) -> dict[str, dict[str, float]]:
    """Per-domain loss plus the loss by quality quintile (one process).

    Returns ``{"domain": {name: loss}, "quintile": {"q1".."q5": loss pooled over domains},
    "domain_quintile": {"<name>/q<k>": loss}}``. Pooled quintiles weight every evaluated sequence
    equally, so they follow the evaluated sequences' domain mix (``per_domain`` each at most).
    """
    by_domain: dict[str, float] = {}
    by_cell: dict[str, float] = {}
    pooled = [[] for _ in range(QUINTILES)]
    for d, ids in eval_sequence_ids(split, per_domain).items():
        name = split.domain_names[d]
        losses = per_sequence_losses(model, split, ids, micro_batch_size=micro_batch_size, device=device)
        by_domain[name] = float(losses.mean())
        quintile = quality_quintiles(split, ids, d)
        for q in range(QUINTILES):
            rows = quintile == q
            if rows.any():
                by_cell[f"{name}/q{q + 1}"] = float(losses[rows].mean())
                pooled[q].append(losses[rows])
    return {
        "domain": by_domain,
        "quintile": {f"q{q + 1}": float(np.concatenate(v).mean()) for q, v in enumerate(pooled) if v},
        "domain_quintile": by_cell,
    }
