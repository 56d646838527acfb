"""No training on garbage: a non-finite loss or gradient norm stops the run (or skips the step).

The loop keeps losses and the gradient norm on the device between log lines, so the check must
not synchronise every step. What it costs, per step: two or three tiny device ops (``isfinite``
on the gradient norm and on each micro-batch's per-sequence losses), whose results are kept on
the device with the host-side sequence ids and domains of that step: ~90 us of host time per
step with two micro-batches (measured on the shared 2-core CPU box, 2026-12-07; asynchronous
kernel launches on a GPU), against steps of tens of milliseconds or more. The flags are read at the
steps that synchronise anyway or must not be passed with bad weights: every log step, and before
every validation, snapshot, checkpoint and the final model (one scalar all-reduce, so every rank
decides the same). A run whose loss turns NaN therefore stops within one log interval, before
any artifact is written from NaN weights, naming the first bad step, its domains and sequence ids.

``training.on_nonfinite: skip`` instead skips each bad step (no optimizer update) and counts it in
the log; to decide before the update it reads the flag every step (one device sync per step, the
price of skipping). It still stops when a whole log interval was skipped: then the weights
themselves are broken (a NaN checkpoint, say), and skipping would only hide that.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from curriculum.errors import UserError

SHOWN_IDS = 16


class NonFiniteLoss(UserError):
    """The run stopped on a non-finite loss or gradient norm."""


@dataclass
class StepCheck:
    """One step's flags (on the device) and the host-side ids and domains of its sequences."""

    step: int
    bad: torch.Tensor  # bool scalar: the gradient norm or a loss of this rank is not finite
    masks: list[torch.Tensor] = field(default_factory=list)  # per micro-batch: which losses are not finite
    ids: list[np.ndarray] = field(default_factory=list)
    domains: list[np.ndarray] = field(default_factory=list)


@dataclass
class NonFiniteGuard:
    """Collects each step's flags and decides at the check points (see the module docstring)."""

    mode: str  # "stop" | "skip"
    names: list[str]  # domain names, by domain id
    reduce_sum: Callable[[torch.Tensor], torch.Tensor]  # sums a tensor over the ranks
    pending: list[StepCheck] = field(default_factory=list)
    skipped: int = 0  # steps skipped since the last log record
    skipped_total: int = 0
    interval_steps: int = 0  # steps ended since the last log record
    last_step: int = -1
    current: StepCheck | None = None

    def begin(self, step: int, device: torch.device) -> None:
        self.current = StepCheck(step, torch.zeros((), dtype=torch.bool, device=device))
        self.last_step = step

    def add_losses(self, losses: torch.Tensor, ids: np.ndarray, domains: np.ndarray) -> None:
        """Record a micro-batch's per-sequence losses (device) and its sequence ids and domains (host)."""
        assert self.current is not None
        mask = ~torch.isfinite(losses.detach())
        self.current.masks.append(mask)
        self.current.ids.append(ids)
        self.current.domains.append(domains)
        self.current.bad |= mask.any()

    def end(self, grad_norm: torch.Tensor) -> None:
        """Record the step's (global) gradient norm; the step's flags wait for the next check."""
        assert self.current is not None
        self.current.bad |= ~torch.isfinite(grad_norm.detach())
        self.pending.append(self.current)
        self.current = None
        self.interval_steps += 1

    def skip_if_bad(self) -> bool:
        """Skip mode, before the update: whether the step just ended is bad on any rank (one sync).
        A bad step is dropped from the checks, counted and reported on stderr."""
        if not bool(self.reduce_sum(self.pending[-1].bad.to(torch.int32).reshape(1)).item()):
            return False
        bad = self.pending.pop()
        self.skipped += 1
        self.skipped_total += 1
        print(f"warning: {self._describe(bad)}; step skipped (training.on_nonfinite: skip)", file=sys.stderr)
        return True

    def check(self, at_log: bool) -> None:
        """Raise `NonFiniteLoss` naming the first bad step since the last check, if any rank had one.

        Skip mode only keeps good steps, but stops at a log step when every step of the interval was
        skipped (``at_log``)."""
        pending, self.pending = self.pending, []
        if self.mode == "skip":
            if at_log and self.interval_steps and self.skipped >= self.interval_steps:
                raise NonFiniteLoss(
                    f"every one of the last {self.skipped} steps (to step {self.last_step}) had a non-finite loss or "
                    "gradient norm and was skipped: the weights themselves are broken (a NaN checkpoint?), so "
                    "skipping cannot help. Resume from an older checkpoint, or lower the learning rate"
                )
            return
        if not pending:
            return
        flags = torch.stack([p.bad for p in pending]).to(torch.int32)
        if not int(self.reduce_sum(flags.sum().reshape(1)).item()):
            return
        local = flags.cpu().numpy()
        first = next((p for p, bad in zip(pending, local) if bad), None)
        if first is None:  # another rank saw it; its flags name the step
            raise NonFiniteLoss(
                f"training stopped: a non-finite loss or gradient norm on another process within steps "
                f"{pending[0].step}-{pending[-1].step} (that process's sequences hold it). Nothing was saved "
                "from those steps; lower the learning rate or check the data, then resume, or set "
                "training.on_nonfinite: skip"
            )
        raise NonFiniteLoss(
            f"training stopped: {self._describe(first)}. Nothing was saved after it (no checkpoint, snapshot "
            "or final model from non-finite weights); resume from the last checkpoint with a lower learning "
            "rate or without those sequences, or set training.on_nonfinite: skip to skip such steps"
        )

    def take_record(self) -> dict[str, int]:
        """The log record's fields (skip mode), resetting the interval's count."""
        record = {"nonfinite/skipped_steps": self.skipped, "nonfinite/skipped_total": self.skipped_total}
        self.skipped = self.interval_steps = 0
        return record if self.mode == "skip" else {}

    def _describe(self, check: StepCheck) -> str:
        masks = [m.cpu().numpy() for m in check.masks]
        ids = np.concatenate(check.ids) if check.ids else np.array([], dtype=np.int64)
        domains = np.concatenate(check.domains) if check.domains else np.array([], dtype=np.int64)
        bad = np.concatenate(masks) if masks else np.zeros(len(ids), dtype=bool)
        what = "the loss" if bad.any() else "the gradient norm"
        chosen = ids[bad] if bad.any() else ids
        named = sorted({self.names[int(d)] for d in (domains[bad] if bad.any() else domains)})
        shown = ", ".join(str(int(i)) for i in chosen[:SHOWN_IDS]) + (" ..." if len(chosen) > SHOWN_IDS else "")
        return (
            f"{what} is not finite at step {check.step} (0-based), domain(s) {', '.join(named) or '?'}, "
            f"{len(chosen)} sequence(s) of this process's batch (train sequence ids {shown})"
        )
