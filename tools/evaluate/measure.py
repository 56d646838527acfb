"""Loss and bits per byte of a model on evaluation sets: one function for the loop and for model folders.

Each rank measures its share of a set's sequences (every ``world_size``-th) and writes their losses
into one vector of the set's length; summing that vector over ranks gives every rank every
sequence's loss, from which the per-domain, per-source and pooled figures are computed the same way
in one process and in many. Under FSDP every forward is collective, so every rank measures the whole
set and nothing is reduced (the caller passes ``world_size=1``).

Metrics of set ``S`` (flat names, as the trackers and the sweep tables take them):

- ``S/<domain>``: mean per-sequence loss (nats per token) of the domain, and ``S/mean`` over domains;
- ``bpb/S/<domain>``, ``bpb/S/<domain>/source<k>`` and ``bpb/S``: bits per byte, i.e. the summed nats
  of the predicted tokens / ln 2 / their UTF-8 bytes (pooled over sequences, so long documents weigh
  by their size, as bits per byte should).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from tools.evaluate.sets import EvalSet
from tools.train.losses import sequence_losses


@torch.no_grad()
def set_losses(
    model: torch.nn.Module,
    eval_set: EvalSet,
    *,
    micro_batch_size: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    autocast: Callable[[], object] | None = None,
) -> np.ndarray:
    """The mean next-token loss of every sequence of ``eval_set`` (float64, the set's order)."""
    was_training = model.training
    model.eval()
    out = torch.zeros(len(eval_set), dtype=torch.float64, device=device)
    offset = 0
    for split, ids in eval_set.parts:
        mine = np.arange(offset, offset + len(ids))[rank::world_size]
        for start in range(0, len(mine), micro_batch_size):
            rows = mine[start : start + micro_batch_size]
            tokens = torch.from_numpy(split.sequences(ids[rows - offset])).to(device)
            with autocast() if autocast else torch.autocast(device.type, enabled=False):
                logits = model(input_ids=tokens).logits
            out[torch.from_numpy(rows).to(device)] = sequence_losses(logits, tokens).double()
        offset += len(ids)
    if reduce is not None:
        out = reduce(out)
    model.train(was_training)
    return out.cpu().numpy()


def set_metrics(eval_set: EvalSet, losses: np.ndarray) -> dict[str, float]:
    """Per-domain loss, and with byte counts bits per byte per domain, per source and pooled."""
    name, names = eval_set.name, eval_set.domain_names
    seq_len = eval_set.store.seq_len
    out: dict[str, float] = {}
    means = []
    for d in np.unique(eval_set.domain).tolist():
        rows = eval_set.domain == d
        out[f"{name}/{names[d]}"] = float(losses[rows].mean())
        means.append(out[f"{name}/{names[d]}"])
    out[f"{name}/mean"] = float(np.mean(means))
    if eval_set.n_bytes is None:
        return out
    nats = losses * (seq_len - 1)  # each loss is a mean over the sequence's seq_len - 1 predictions

    def bpb(rows: np.ndarray) -> float:
        n_bytes = int(eval_set.n_bytes[rows].sum())
        return float(nats[rows].sum() / math.log(2) / n_bytes) if n_bytes else math.nan

    for d in np.unique(eval_set.domain).tolist():
        out[f"bpb/{name}/{names[d]}"] = bpb(eval_set.domain == d)
    for s, label in enumerate(eval_set.source_names):
        out[f"bpb/{name}/{label}"] = bpb(eval_set.source == s)
    out[f"bpb/{name}"] = bpb(np.ones(len(losses), dtype=bool))
    return out


def set_domain_losses(metrics: dict[str, float], name: str = "val") -> dict[str, float]:
    """``{domain: loss}`` of set ``name`` out of flat metrics (what summaries and old readers call val_loss)."""
    prefix = f"{name}/"
    return {
        k[len(prefix) :]: v
        for k, v in metrics.items()
        if k.startswith(prefix) and k.count("/") == 1 and k != f"{name}/mean"
    }
