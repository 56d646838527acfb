"""The data feed of the loop: each step's micro-batch tokens, gathered ahead in a background thread.

A step's data is a pure function of the step (the plan's stateless sampler + the memory-mapped
store), so prefetching cannot change what is trained on: a daemon thread simply calls the same
`load_step` for the next steps while the current one computes, and hands the results over in step
order through a bounded queue. On CUDA the host tensors are pinned, so the loop's copies are
`non_blocking`. The time the loop spends waiting for data is measured either way; that is the
data-wait fraction in the logs.

A thread (not DataLoader worker processes) is enough: the work is numpy fancy indexing into a
page-cached memmap plus a small permutation, microseconds to milliseconds per step, and numpy
releases the GIL while copying.
"""

from __future__ import annotations

import queue
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from curriculum.store.reader import TokenSplit
from tools.train.sampler import GlobalBatch


@dataclass
class MicroBatch:
    """One forward pass's inputs: which sequences, and every host tensor the step needs on the
    device (pinned on CUDA, so no copy ever waits for the GPU; a copy from pageable memory would
    synchronise the stream and stall the host between micro-batches)."""

    rows: GlobalBatch  # sequence ids, domains and loss weights (numpy, host)
    host: dict[str, torch.Tensor]  # tokens, domains, loss_weights, group_order, group_inverse
    group_sizes: list[int]  # sequences per domain present, in domain order (for the fused loss)

    def to(self, device: torch.device) -> dict[str, torch.Tensor]:
        return {k: v.to(device, non_blocking=True) for k, v in self.host.items()}


@dataclass
class StepData:
    """One optimizer step's inputs on this rank."""

    step: int
    batch: GlobalBatch  # the whole global batch (for logging the realised mix)
    micro: list[MicroBatch]  # this rank's micro-batches
    wait_s: float = 0.0  # how long the loop waited for this step's data


def micro_batch(split: TokenSplit, rows: GlobalBatch, pin_memory: bool) -> MicroBatch:
    """Tokens from the memory-mapped store plus the per-sequence tensors, ready to copy."""
    order = np.argsort(rows.domains, kind="stable")  # rows grouped by domain, for the fused loss
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    host = {
        "tokens": torch.from_numpy(split.sequences(rows.sequence_ids)),
        "domains": torch.from_numpy(np.ascontiguousarray(rows.domains, dtype=np.int64)),
        "loss_weights": torch.from_numpy(np.asarray(rows.loss_weights, dtype=np.float32)),
        "group_order": torch.from_numpy(order.astype(np.int64)),
        "group_inverse": torch.from_numpy(inverse.astype(np.int64)),
    }
    if pin_memory:
        host = {k: v.pin_memory() for k, v in host.items()}
    return MicroBatch(rows, host, np.unique(rows.domains, return_counts=True)[1].tolist())


def load_step(
    batch_of: Callable[[int], GlobalBatch],
    split: TokenSplit,
    step: int,
    *,
    rank: int,
    world_size: int,
    accumulation: int,
    pin_memory: bool,
) -> StepData:
    """Step ``step``'s global batch and this rank's micro-batches with their tensors."""
    batch = batch_of(step)
    micro = [micro_batch(split, m, pin_memory) for m in batch.shard(rank, world_size).split(accumulation)]
    return StepData(step, batch, micro)


class BatchFeed:
    """Hands out `StepData` for consecutive steps; with ``prefetch`` a thread keeps ``depth`` ready.

    Use ``get(step)`` with steps in order and ``close()`` at the end. The thread holds no reference
    to the feed, so a loop that dies with an exception stops it too, when the feed is collected.
    """

    def __init__(self, load: Callable[[int], StepData], steps: range, *, prefetch: bool, depth: int = 2):
        self.load = load
        self.prefetch = prefetch and len(steps) > 0
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.prefetch:
            args = (load, steps, self._queue, self._stop)
            self._thread = threading.Thread(target=_produce, args=args, name="currimix-prefetch", daemon=True)
            self._thread.start()
            weakref.finalize(self, self._stop.set)

    def get(self, step: int) -> StepData:
        started = time.perf_counter()
        if self.prefetch:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            assert item.step == step, f"prefetch out of order: got step {item.step}, expected {step}"
        else:
            item = self.load(step)
        item.wait_s = time.perf_counter() - started
        return item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _produce(load: Callable[[int], StepData], steps: range, out: queue.Queue, stop: threading.Event) -> None:
    for step in steps:
        try:
            item: StepData | BaseException = load(step)
        except BaseException as exc:  # handed to the loop, which re-raises it
            item = exc
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        if stop.is_set() or isinstance(item, BaseException):
            return
