"""The trainer's side of an online mixture controller (`mixture.controller`).

Each step adds its per-sequence losses to a per-domain float64 tally on this rank. At every edge of
the plan's windows (the controller's cadence K) the tallies are summed over processes in domain
order, the controller (`mixers.controllers`) turns the window's mean losses into float64 weights,
and `round_counts` turns those into the integer totals of the next window, which the plan's
`ControlledAllocation` spreads over its steps. Batch t is then a pure function of (recipe, seed, t,
the decided window's totals and start), and the prefetch thread waits at a window edge until the
decision is made.

Why 1 vs N processes agree: the per-sequence losses are fp32, and a float64 sum of up to ~2^19 fp32
values in the range losses take is exact, so the reduced sums do not depend on how the batch was
split over ranks or in what order they were added; the weights are computed from them in float64
and used only after rounding to integer counts. (Training itself is not bit-identical across world
sizes: DDP's gradient all-reduce adds in another order than accumulation, which moves losses by
~1e-7. A weight within that distance of a rounding edge could still round differently; the counts
absorb everything else.)

Checkpoints hold the controller's state (`state`): its own arrays, the decided window, and this
window's partial loss sums (reduced, so a run may resume on another number of processes).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator

from curriculum.errors import UserError
from mixers.controllers import Observation
from tools.train.allocation import ControlledAllocation, round_counts
from tools.train.plan import Plan

STATE_FILE = "controller.json"
STATE_VERSION = 1


class MixtureControl:
    """Feeds the plan's controller the reduced per-domain losses at each window edge."""

    def __init__(self, plan: Plan, device: torch.device):
        assert plan.controller is not None and isinstance(plan.allocation, ControlledAllocation)
        self.plan = plan
        self.controller = plan.controller
        self.allocation: ControlledAllocation = plan.allocation
        self.allocation.live = True  # from now on a batch past the decided windows waits for them
        every = self.controller.config.every_steps
        self.first_update = -(-self.controller.config.warmup_steps // every) * every
        self.device = device
        self.loss_sum = torch.zeros(len(plan.domains.names), dtype=torch.float64, device=device)
        self.count = torch.zeros_like(self.loss_sum)

    @classmethod
    def of(cls, plan: Plan, device: torch.device) -> "MixtureControl | None":
        return cls(plan, device) if plan.controller is not None else None

    def add(self, domains: torch.Tensor, losses: torch.Tensor) -> None:
        """One micro-batch's per-sequence losses (fp32, summed in float64: exact, see the docstring)."""
        self.loss_sum.index_add_(0, domains, losses.detach().double())
        self.count.index_add_(0, domains, torch.ones(len(domains), dtype=torch.float64, device=domains.device))

    def _reduced(self, acc: Accelerator) -> tuple[np.ndarray, np.ndarray]:
        sums = acc.reduce(self.loss_sum.clone(), reduction="sum").cpu().numpy().astype(np.float64)
        counts = acc.reduce(self.count.clone(), reduction="sum").cpu().numpy().astype(np.float64)
        return sums, counts

    def after_step(self, acc: Accelerator, done: int) -> None:
        """At a window edge, decide the next window (or, during warmup, keep the prior's)."""
        alloc = self.allocation
        if done >= self.plan.total_steps or done != alloc.edges[alloc.window_of(done)]:
            return
        started = time.perf_counter()
        sums, counts = self._reduced(acc)
        self.loss_sum.zero_()
        self.count.zero_()
        window = alloc.window_of(done)
        if done < self.first_update:
            alloc.decide(window, alloc.window_counts[window])
            return
        consumed = alloc.window_start[window].copy()
        last = alloc.window_counts[window - 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            losses = np.where(counts > 0, sums / counts, np.nan)
        obs = Observation(
            step=done,
            losses=losses,
            samples=last.copy(),
            consumed=consumed,
            prior=np.asarray(self.plan.mixer.weights(np.array([done / self.plan.total_steps]))[0], dtype=np.float64),
            previous=last / alloc.slots(window - 1),
        )
        weights = self.controller.update(obs)
        chosen = round_counts(weights, alloc.slots(window), self.plan.capacity(consumed))
        alloc.decide(window, chosen)
        record: dict[str, Any] = {"control/update": done, "control/seconds": time.perf_counter() - started}
        for d, name in enumerate(self.plan.domains.names):
            record[f"control/{name}/weight"] = float(weights[d])
            record[f"control/{name}/count"] = int(chosen[d])
            if np.isfinite(losses[d]):
                record[f"control/{name}/loss"] = float(losses[d])
        acc.log(record | self.controller.diagnostics(), step=done - 1)

    def state(self, acc: Accelerator) -> dict[str, Any]:
        """Everything the coming batches depend on (collective: every rank calls it)."""
        sums, counts = self._reduced(acc)
        return {
            "version": STATE_VERSION,
            "controller": self.controller.state_dict(),
            "allocation": self.allocation.state(),
            "tally": {"loss_sum": sums.tolist(), "count": counts.tolist()},
        }

    def restore(self, acc: Accelerator, state: dict[str, Any]) -> None:
        """Back to a checkpoint's state: the reduced partial sums go to rank 0, zeros elsewhere."""
        self.controller.load_state_dict(state["controller"])
        self.allocation.restore(state["allocation"])
        main = acc.is_main_process
        sums, counts = (np.array(state["tally"][k], dtype=np.float64) for k in ("loss_sum", "count"))
        self.loss_sum = torch.from_numpy(sums if main else np.zeros_like(sums)).to(self.device)
        self.count = torch.from_numpy(counts if main else np.zeros_like(counts)).to(self.device)


def dump_state(state: dict[str, Any]) -> str:
    """JSON text of a state; Python's float repr round-trips float64 exactly."""
    return json.dumps(state)


def load_state(text: str, where: str) -> dict[str, Any]:
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise UserError(f"{where}: not a controller state this currimix reads (version {STATE_VERSION})")
    return state
