"""THE timeline of a run: step -> LR, per-domain counts, curriculum cursors, averaging snapshots.

`build_plan(recipe, store)` turns a recipe (the sections `TrainSections` names) and a token store into a `Plan` that answers, for any
step and without running anything before it: the learning rate, the global batch (which sequences,
from which domains, with which loss weights), how far each domain's curriculum has advanced, and
whether an averaging snapshot is due. The training loop reads everything time-dependent from here,
and `currimix plan` prints and plots the same object before any GPU is touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from functools import cached_property

import numpy as np

from curriculum.errors import UserError
from curriculum.orders.base import Boundary
from curriculum.orders.stream import DomainStream
from curriculum.permutation import derive_key
from curriculum.store.reader import TokenStore
from mixers import DomainInfo, Mixer, Phase, build_mixer
from mixers.base import boundary_step
from mixers.controllers import Controller, build_controller
from mixers.static import StaticConfig, StaticMixer
from tools.average.window import averaging_window
from tools.train.allocation import Allocation, ControlledAllocation, edf_window_counts
from tools.train.config import TrainSections, training_section
from tools.train.sampler import GlobalBatch, Sampler
from tools.train.schedules import Schedule, build_schedule

WEIGHT_TOLERANCE = 1e-6
CHUNK_STEPS = 1 << 16


# The plan's memory grows with its windows (steps / mixture.resolution_steps): the allocation keeps a few
# arrays per window and domain, and its earliest-deadline-first pass Python lists of them. Measured peak:
# ~900 bytes per window with 3 domains, ~2,200 with 10; the estimate below stays above both.
PLAN_BYTES_PER_WINDOW = 400
PLAN_BYTES_PER_WINDOW_DOMAIN = 200
PLAN_BYTES_PER_SNAPSHOT = 200  # the averaging window's step list, weights and their tuples
PLAN_BYTES_PER_BATCH_ROW = 64  # drawing one batch: ids, domains, positions, shuffle keys, loss weights
PLAN_MAX_MB = ("CURRIMIX_PLAN_MAX_MB", 2048)


def plan_budget_mb() -> int:
    """The plan's memory budget in MB: `CURRIMIX_PLAN_MAX_MB` when set, else 2048."""
    variable, default = PLAN_MAX_MB
    text = os.environ.get(variable)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"{variable}={text!r} must be a whole number of MB, at least 1")
    return int(text)


def check_plan_budget(spec: TrainSections) -> None:
    """Refuse, before anything is built, a plan whose estimated memory is over the budget (a recipe
    asking for 10^12 steps would otherwise grow until the kernel kills it), naming the key that asks."""
    if spec.training is None:
        return  # a recipe for `prepare` alone; commands that plan refuse it (`training_section`)
    steps, resolution = spec.training.steps, spec.mixture.resolution_steps
    windows_key, raise_it = f"mixture.resolution_steps={resolution}", "mixture.resolution_steps (at most 4096)"
    if spec.mixture.controller is not None:  # its windows are its cadence
        resolution = spec.mixture.controller.every_steps
        windows_key, raise_it = f"mixture.controller.every_steps={resolution}", "mixture.controller.every_steps"
    snapshots = spec.averaging.snapshots or 0
    if snapshots > steps:  # refused here: the window would list every snapshot step before saying so
        raise UserError(
            f"averaging.snapshots: an averaging window of {snapshots:,} snapshots does not fit in a run of "
            f"{steps:,} steps (one snapshot per step at most); use fewer snapshots"
        )
    windows = -(-steps // resolution) + 64  # + phase boundaries, a handful in any mixer
    domains = len(spec.data.domains)
    window_mb = windows * (PLAN_BYTES_PER_WINDOW + PLAN_BYTES_PER_WINDOW_DOMAIN * domains) / 2**20
    snapshot_mb = snapshots * PLAN_BYTES_PER_SNAPSHOT / 2**20
    batch = spec.training.global_batch_size
    batch_mb = batch * PLAN_BYTES_PER_BATCH_ROW / 2**20
    total, budget = window_mb + snapshot_mb + batch_mb, plan_budget_mb()
    if total <= budget:
        return
    # Name the key that asks for most of it, with what lowers it.
    _, asks, fix = max(
        (
            window_mb,
            f"training.steps: {steps:,} steps in windows of {windows_key}",
            f"train fewer steps, raise {raise_it}",
        ),
        (snapshot_mb, f"averaging.snapshots: {snapshots:,} averaging snapshots", "average fewer snapshots"),
        (batch_mb, f"training.global_batch_size: batches of {batch:,} sequences", "use a smaller batch"),
    )
    raise UserError(
        f"{asks} make the plan need about {total:,.0f} MB, over its memory budget of {budget:,} MB; "
        f"{fix}, or raise the budget with the environment variable {PLAN_MAX_MB[0]}"
    )


def window_edges(total_steps: int, resolution: int, breakpoints: list[int]) -> np.ndarray:
    """Step edges of the plan's windows: every ``resolution`` steps plus every phase boundary."""
    inner = np.array([b for b in breakpoints if 0 < b < total_steps], dtype=np.int64)
    regular = np.arange(0, total_steps, resolution, dtype=np.int64)
    return np.union1d(np.union1d(regular, inner), [total_steps]).astype(np.int64)


def check_weight_rows(weights: np.ndarray, steps: np.ndarray, who: str) -> None:
    bad = (weights < -WEIGHT_TOLERANCE).any(axis=1) | (np.abs(weights.sum(axis=1) - 1) > WEIGHT_TOLERANCE)
    bad |= ~np.isfinite(weights).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"{who} gives weights {np.round(weights[i], 6).tolist()} at step {int(steps[i])}, which "
            "are not a distribution over domains (non-negative, summing to 1)"
        )


def cumulative_targets(
    mixer: Mixer, total_steps: int, batch_size: int, edges: np.ndarray, who: str = "mixture.mixer"
) -> np.ndarray:
    """Exact cumulative targets sum_{s < e} B * w(s / T) at each edge e, evaluated in bounded chunks."""
    n_domains = len(mixer.domains.names)
    out = np.zeros((len(edges), n_domains), dtype=np.float64)
    running = np.zeros(n_domains, dtype=np.float64)
    for start in range(0, total_steps, CHUNK_STEPS):
        stop = min(total_steps, start + CHUNK_STEPS)
        steps = np.arange(start, stop)
        weights = np.asarray(mixer.weights(steps / total_steps), dtype=np.float64)
        assert weights.shape == (len(steps), n_domains), f"{who} returned weights of shape {weights.shape}"
        check_weight_rows(weights, steps, who)
        weights = np.clip(weights, 0, None)
        weights /= weights.sum(axis=1, keepdims=True)  # remove float dust so totals stay integral
        cumulative = running + np.cumsum(weights * batch_size, axis=0)
        inside = (edges > start) & (edges <= stop)
        out[inside] = cumulative[edges[inside] - start - 1]
        running = cumulative[-1]
    return out


class Plan:
    """Everything time-dependent about a run; see the module docstring."""

    def __init__(self, spec: TrainSections, store: TokenStore):
        self.training = training_section(spec)
        check_plan_budget(spec)
        self.spec = spec
        self.store = store
        train = store.train
        self.total_steps = self.training.steps
        self.batch_size = self.training.global_batch_size
        sequences = np.diff(train.domain_offsets)
        self.domains = DomainInfo(
            tuple(store.domain_names), sequences.astype(np.int64), (sequences * store.seq_len).astype(np.int64)
        )
        missing = sorted(set(spec.data.domains) ^ set(store.domain_names))
        if missing:
            raise UserError(
                f"the recipe's domains {sorted(spec.data.domains)} differ from the store's "
                f"{store.domain_names} ({str(store.root)!r}); run `prepare --overwrite`"
            )
        if spec.data.seq_len != store.seq_len:  # training reads the store's sequences: the recipe would lie
            raise UserError(
                f"data.seq_len={spec.data.seq_len}, but the token store {str(store.root)!r} was prepared with "
                f"sequences of {store.seq_len} tokens; set data.seq_len: {store.seq_len}, or point data.store "
                "at a new folder and run `prepare`"
            )

        self.mixer = build_mixer(spec.mixture.mixer, self.domains, where="mixture.mixer")
        self.phase_list: list[Phase] = self.mixer.phases()
        self.phases = {p.name: p.steps(self.total_steps) for p in self.phase_list}
        natural = StaticMixer(StaticConfig(weights="natural"), self.domains)
        self.sampling_mixer = natural if spec.mixture.realise == "weight" else self.mixer

        control = spec.mixture.controller
        self.controller: Controller | None = None
        if control is not None:
            check_controller(spec, self.domains, self.total_steps * self.batch_size)
            self.controller = build_controller(control, self.domains)
        breakpoints = [boundary_step(f, self.total_steps) for f in self.mixer.breakpoints()]
        edges = (
            window_edges(self.total_steps, spec.mixture.resolution_steps, breakpoints)
            if control is None
            else window_edges(self.total_steps, control.every_steps, [])  # the update cadence
        )
        self.cum_targets = cumulative_targets(self.sampling_mixer, self.total_steps, self.batch_size, edges)
        slots = np.diff(edges) * self.batch_size
        counts = edf_window_counts(self.cum_targets, slots)
        allocation = Allocation if control is None else ControlledAllocation
        self.allocation = allocation(edges, counts, self.batch_size)

        self.schedule: Schedule = build_schedule(
            spec.schedule, self.total_steps, self.phases, tokens_per_step=self.batch_size * store.seq_len
        )
        self.averaging = averaging_window(spec.averaging, self.total_steps, self.phases)
        self.streams = self._build_streams()
        self.sampler = Sampler(
            self.allocation,
            self.streams,
            train.domain_offsets[:-1],
            seed=spec.seed,
            loss_weights=self._loss_weights if spec.mixture.realise == "weight" else None,
        )
        self._natural = natural.vector
        self.check_caps()

    # ------------------------------------------------------------------ construction helpers
    def _build_streams(self) -> list[DomainStream]:
        """Each domain's stream over exactly the samples the run takes from it (its budget)."""
        cur = self.spec.curriculum
        budget = self.allocation.consumed_before(self.total_steps)
        if self.controller is not None:  # unknown before training: the most the controller could take
            budget = controlled_budgets(self.spec, self.domains, self.total_steps * self.batch_size)
        out = []
        for d, name in enumerate(self.domains.names):
            out.append(
                DomainStream(
                    cur.per_domain.get(name, cur.order),
                    self.store.train.domain_scores(d),
                    derive_key(self.spec.seed, name),
                    int(budget[d]),
                    subset=cur.subset,
                    past_epoch=cur.past_epoch,
                    timeline=lambda boundary, d=d: int(self.consumed_before(self.boundary_step(boundary))[d]),
                )
            )
        return out

    def boundary_step(self, boundary: Boundary) -> int:
        """The step where a training-time boundary falls: a fraction of the run, or `<phase>.start|end`."""
        if not isinstance(boundary, str):
            return boundary_step(float(boundary), self.total_steps)
        phase, _, edge = boundary.rpartition(".")
        if phase not in self.phases:
            raise UserError(
                f"curriculum boundary {boundary!r} names no phase of the mixer; phases: {sorted(self.phases)}"
            )
        start, end = self.phases[phase]
        return start if edge == "start" else end

    def _loss_weights(self, step: int) -> np.ndarray:
        target = self.mixer.weights(np.array([step / self.total_steps]))[0]
        return target / self._natural

    def epochs(self) -> np.ndarray:
        """Passes over each domain's training sequences by the end of the run."""
        return self.allocation.consumed_before(self.total_steps) / self.domains.sequences

    def check_caps(self) -> None:
        """Refuse (or warn about) a plan that repeats a domain past its cap. Under a controller this is
        the prior's plan; the controller's own counts are held under the caps as it decides them."""
        cur, mix = self.spec.curriculum, self.spec.mixture
        over = []
        for name, epochs in zip(self.domains.names, self.epochs()):
            cap = mix.max_epochs.get(name, mix.max_epochs.get("default", np.inf))
            if cur.past_epoch == "stop":
                cap = min(cap, 1.0)
            if epochs > cap + 1e-9:
                over.append(
                    f"domain {name!r} would be seen {epochs:.2f} times, over its cap of {cap:g} "
                    f"({self.domains.sequences[self.domains.names.index(name)]} sequences)"
                )
        if over:
            fix = "raise mixture.max_epochs, lower its weight, train fewer steps or add data"
            if mix.on_cap == "error" or cur.past_epoch == "stop":
                raise UserError("the plan repeats data beyond its caps; " + fix + ":", over)
            for line in over:
                warnings.warn(line + "; " + fix, stacklevel=2)

    # ------------------------------------------------------------------ the per-step API
    def lr(self, step: int) -> float:
        return float(self.schedule.lr(step))

    def batch(self, step: int) -> GlobalBatch:
        """Global batch ``step`` (0-based); a pure function of (recipe, store, seed, step)."""
        if not 0 <= step < self.total_steps:
            raise IndexError(f"step {step} outside the plan's 0..{self.total_steps - 1}")
        return self.sampler.batch(step)

    def counts(self, step: int) -> np.ndarray:
        return self.allocation.counts(step)

    def consumed_before(self, step: int) -> np.ndarray:
        """The curriculum cursor: samples taken from each domain before ``step``."""
        return self.allocation.consumed_before(step)

    def target_weights(self, step: int) -> np.ndarray:
        """The mixture the loss sees at ``step`` (the mixer's weights; under a controller, the window's)."""
        if self.controller is not None:
            return self.allocation.target_weights(step)
        return self.mixer.weights(np.array([step / self.total_steps]))[0]

    def capacity(self, consumed: np.ndarray) -> np.ndarray:
        """Samples each domain may still take under `mixture.max_epochs` (and `past_epoch: stop`)."""
        return controlled_budgets(self.spec, self.domains, self.total_steps * self.batch_size) - consumed

    # ------------------------------------------------------------------ timing: what happens after a step
    # Each takes the number of completed steps (1-based) and is true when that action is due; the
    # last step always logs, validates and checkpoints.
    def is_log_step(self, completed_steps: int) -> bool:
        every = self.training.log_every_steps
        return completed_steps % every == 0 or completed_steps == self.total_steps

    def is_eval_step(self, completed_steps: int) -> bool:
        every = self.training.eval_every_steps
        return bool(every and completed_steps % every == 0) or completed_steps == self.total_steps

    def is_checkpoint_step(self, completed_steps: int, stop_at: int | None = None) -> bool:
        """Due every ``checkpoint.every_steps``, at the end, and where the process stops early (``stop_at``)."""
        every = self.spec.checkpoint.every_steps
        return bool(every and completed_steps % every == 0) or completed_steps in (self.total_steps, stop_at)

    def is_snapshot_step(self, completed_steps: int) -> bool:
        return self.averaging is not None and completed_steps in self.averaging.steps

    @cached_property
    def fingerprint(self) -> str:
        """Identifies the data order and LR: checkpoints refuse to resume under a different plan."""
        spec, dump = self.spec, lambda section: section.model_dump(mode="json")
        key = {
            "store": self.store.meta.get("data_fingerprint"),
            "sequences": self.domains.sequences.tolist(),
            "seq_len": self.store.seq_len,
            "seed": spec.seed,
            # A recipe without a controller keeps the fingerprint it had before the key existed.
            "mixture": {k: v for k, v in dump(spec.mixture).items() if k != "controller" or v is not None},
            "curriculum": dump(spec.curriculum),
            "schedule": dump(spec.schedule),
            "averaging": dump(spec.averaging),
            "steps": self.training.steps,
            "batch": self.training.global_batch_size,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def domain_caps(spec: TrainSections, domains: DomainInfo) -> np.ndarray:
    """Each domain's cap in passes (`mixture.max_epochs`, 1 under `past_epoch: stop`; inf = none)."""
    mix = spec.mixture
    caps = np.array([mix.max_epochs.get(n, mix.max_epochs.get("default", np.inf)) for n in domains.names])
    return np.minimum(caps, 1.0) if spec.curriculum.past_epoch == "stop" else caps


def controlled_budgets(spec: TrainSections, domains: DomainInfo, total_samples: int) -> np.ndarray:
    """Under a controller, the most samples each domain can be given: the whole run, or its cap."""
    caps = domain_caps(spec, domains) * domains.sequences
    return np.minimum(total_samples, np.floor(caps + 1e-9)).astype(np.int64)


def check_controller(spec: TrainSections, domains: DomainInfo, total_samples: int) -> None:
    """Refuse, naming the key, what a controller cannot honour: its weights are known only while the
    run trains, so nothing may depend on a domain's budget or on where a step falls in a domain."""
    control, cur = spec.mixture.controller, spec.curriculum
    problems = []
    if spec.mixture.realise == "weight":
        problems.append("mixture.realise: a controller sets the sampled mixture; use realise: sample")
    if control.floor * len(domains.names) > 1 + 1e-12:
        problems.append(
            f"mixture.controller.floor: {control.floor} x {len(domains.names)} domains is over 1; "
            f"use at most {1 / len(domains.names):.4g}"
        )
    orders = {"curriculum.order": cur.order} | {f"curriculum.per_domain.{k}": v for k, v in cur.per_domain.items()}
    for key, order in orders.items():
        if order.name == "phased":
            problems.append(
                f"{key}: `phased` places its boundaries by the samples taken before a step, which a "
                "controller decides only while training; use one ordering per domain"
            )
    if cur.past_epoch == "sweep":
        problems.append(
            "curriculum.past_epoch: `sweep` orders a domain's whole budget at once, which a controller "
            "does not know in advance; use reshuffle or repeat"
        )
    if int(controlled_budgets(spec, domains, total_samples).sum()) < total_samples:
        problems.append(
            f"mixture.max_epochs: the caps allow fewer samples than the run's {total_samples:,}; raise them"
        )
    if problems:
        raise UserError("this recipe cannot run under mixture.controller:", problems)


def build_plan(spec: TrainSections, store: TokenStore | None = None) -> Plan:
    """The plan of a recipe (``spec``: the sections it reads) over its token store (opened from
    ``spec.store_path`` when not given)."""
    training_section(spec)  # before opening the store: a recipe without it is refused for what it lacks
    return Plan(spec, store or TokenStore(spec.store_path))
