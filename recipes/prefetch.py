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

import torch

from curriculum.store import TokenSplit
from recipes.sampler import GlobalBatch


@dataclass
class StepData:
    """One optimizer step's inputs on this rank."""

    step: int
    batch: GlobalBatch  # the whole global batch (for logging the realised mix)
    micro: list[GlobalBatch]  # this rank's micro-batches
    tokens: list[torch.Tensor]  # their tokens on the host (pinned on CUDA), int64 [micro, seq_len]
    wait_s: float = 0.0  # how long the loop waited for this step's data

    def device_tokens(self, i: int, device: torch.device) -> torch.Tensor:
        # From pinned memory the copy is asynchronous; the forward pass queues behind it on the stream.
        return self.tokens[i].to(device, non_blocking=True)


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
    """Step ``step``'s global batch, this rank's micro-batches and their tokens."""
    batch = batch_of(step)
    micro = batch.shard(rank, world_size).split(accumulation)
    tokens = []
    for m in micro:
        t = torch.from_numpy(split.sequences(m.sequence_ids))
        tokens.append(t.pin_memory() if pin_memory else t)
    return StepData(step, batch, micro, tokens)


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
