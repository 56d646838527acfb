"""The Accelerate pretraining loop: everything time-dependent comes from the plan.

One `for step in range(start, total)` loop: take the step's data (prefetched in a background
thread, `tools/train/prefetch.py`), forward/backward over this rank's micro-batches, clip, step, then
gated one-liners for logging, validation, checkpoints and averaging snapshots. Runs the same in one
CPU process and under `accelerate launch` with DDP or FSDP2 (two CPU ranks on gloo need
`Accelerator(cpu=True)`, which `device: cpu` or `ACCELERATE_USE_CPU=true` gives).

Speed, all resolved and validated up front by `tools/train/runtime.py`: bf16 is `torch.autocast`
around forward and loss (fp32 master weights, gradients and optimizer state; one explicit context
that behaves the same under DDP and FSDP, rather than accelerate's `mixed_precision`, which
rewrites `model.forward`), per-block in-place `torch.compile`, fused AdamW on GPU, SDPA or
flash-attention-2, optional activation checkpointing and fused linear+cross-entropy. The loop never
synchronises with the GPU between log lines: losses, router counts and the gradient norm stay on
the device until a log record needs them; so does the non-finite guard (`tools/train/nonfinite.py`),
which is read at log steps and before anything is saved.

The run folder belongs to the checkpointer (`tools/train/checkpointer.py`): one process trains it at
a time, a folder that already holds a run is continued (``resume``) or replaced (``overwrite``),
never trained over, and resume points, checkpoints, snapshots and the final model go through it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin, set_seed
from tqdm.auto import tqdm

from curriculum.errors import UserError
from curriculum.store.reader import TokenStore
from curriculum.tokenizer import load_tokenizer
from tools.evaluate.evaluator import Evaluator
from tools.evaluate.measure import set_domain_losses
from tools.train.checkpointer import Checkpointer, is_main_rank, model_settings
from tools.train.config import TrainingConfig, TrainSections, training_section
from tools.train.control import STATE_FILE, MixtureControl, dump_state, load_state
from tools.train.fused_loss import LossGroups, enable_fused_cross_entropy
from tools.train.losses import sequence_losses
from tools.train.model import build_model, flops_per_token, peak_flops, prepare_for_speed
from tools.train.moe import load_balance_record, router_load
from tools.train.nonfinite import NonFiniteGuard
from tools.train.plan import Plan, build_plan
from tools.train.prefetch import BatchFeed, MicroBatch, StepData, load_step
from tools.train.runtime import Runtime, resolve_runtime
from tools.train.trackers import check_trackers, make_trackers


@dataclass
class Run:
    """The live objects of a run."""

    spec: TrainSections
    training: TrainingConfig
    accelerator: Accelerator
    plan: Plan
    store: TokenStore
    model: Any
    optimizer: torch.optim.Optimizer
    tokenizer: Any
    accumulation: int
    runtime: Runtime
    flops_per_token: float
    peak_flops: float | None
    checkpointer: Checkpointer
    evaluator: Evaluator | None = None  # the `evaluation` section's sets and probes, opened once
    control: MixtureControl | None = None  # the online mixture controller's side, when the recipe has one

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.accelerator.device.type, dtype=torch.bfloat16, enabled=self.runtime.bf16)

    def load_step(self, step: int) -> StepData:
        """Step ``step``'s micro-batches for this rank (a pure function of the step)."""
        acc = self.accelerator
        return load_step(
            self.plan.batch,
            self.store.train,
            step,
            rank=acc.process_index,
            world_size=acc.num_processes,
            accumulation=self.accumulation,
            pin_memory=acc.device.type == "cuda",
        )


@dataclass
class LogTally:
    """Per-domain loss sums and counts since the last log line (on this rank, on its device)."""

    n_domains: int
    device: torch.device = torch.device("cpu")
    loss_sum: torch.Tensor = field(init=False)
    count: torch.Tensor = field(init=False)
    tokens: int = 0
    data_wait_s: float = 0.0  # time the loop waited for batches
    started: float = field(default_factory=time.perf_counter)
    sequence_ids: list[np.ndarray] = field(default_factory=list)  # what this rank trained on
    aux_loss_sum: torch.Tensor | None = None  # MoE router loss, summed over micro-batches
    aux_loss_count: int = 0
    expert_counts: torch.Tensor | None = None  # MoE tokens routed per expert, summed over layers

    def __post_init__(self) -> None:
        self.loss_sum = torch.zeros(self.n_domains, dtype=torch.float64, device=self.device)
        self.count = torch.zeros(self.n_domains, dtype=torch.float64, device=self.device)

    def mark(self) -> tuple:
        """What a skipped step must not leave in the tally (see `forget`); device clones, no sync."""
        clone = lambda t: None if t is None else t.clone()  # noqa: E731
        return (
            self.loss_sum.clone(),
            self.count.clone(),
            len(self.sequence_ids),
            clone(self.aux_loss_sum),
            self.aux_loss_count,
            clone(self.expert_counts),
        )

    def forget(self, mark: tuple) -> None:
        """Back to ``mark``: a skipped step's losses, ids and router counts are not logged."""
        self.loss_sum, self.count, n_ids, self.aux_loss_sum, self.aux_loss_count, self.expert_counts = mark
        del self.sequence_ids[n_ids:]

    def add_router(self, aux: torch.Tensor | None, counts: torch.Tensor | None) -> None:
        if aux is not None:
            aux = aux.detach().double()
            self.aux_loss_sum = aux if self.aux_loss_sum is None else self.aux_loss_sum + aux
            self.aux_loss_count += 1
        if counts is not None:
            self.expert_counts = counts if self.expert_counts is None else self.expert_counts + counts


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only (not norms, biases or embeddings' 1-D relatives)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def fsdp_plugin(runtime: Runtime) -> FullyShardedDataParallelPlugin | None:
    """FSDP2 sharded per transformer block (the classes transformers never splits), with sharded
    checkpoints: `save_state` writes torch.distributed.checkpoint shards that `load_state` reshards
    onto any number of processes, so an N-process checkpoint resumes on M processes."""
    if not runtime.fsdp:
        return None
    return FullyShardedDataParallelPlugin(
        fsdp_version=2,
        auto_wrap_policy="transformer_based_wrap",
        state_dict_type="SHARDED_STATE_DICT",
        reshard_after_forward=True,
        cpu_ram_efficient_loading=False,
    )


def setup(spec: TrainSections, checkpointer: Checkpointer | None = None) -> Run:
    """Build the accelerator, plan, model and optimizer of a recipe (and its checkpointer, unless
    `train` hands over the one that claimed the run folder)."""
    t = training_section(spec)
    runtime = resolve_runtime(t, spec.model)
    run_dir = spec.run_path
    if t.distributed == "ddp":
        os.environ["ACCELERATE_USE_FSDP"] = "false"  # the recipe wins over an FSDP accelerate config
    accelerator = Accelerator(
        cpu=runtime.cpu,
        mixed_precision="no",  # bf16 is the loop's own autocast (see the module docstring)
        fsdp_plugin=fsdp_plugin(runtime),
        project_dir=str(run_dir),
        log_with=make_trackers(t.trackers, run_dir, spec.name) if is_main_rank() else None,
    )
    set_seed(spec.seed)
    store = TokenStore(spec.store_path)
    plan = build_plan(spec, store)
    world = accelerator.num_processes
    check_batch_divides(t, world)  # the real process count (`train` checked the launcher's earlier)
    tokenizer = load_tokenizer(store.tokenizer_path)
    model = build_model(
        spec.model,
        vocab_size=store.vocab_size,
        seq_len=store.seq_len,
        eos_id=store.eos_id,
        pad_id=tokenizer.pad_token_id,
        seed=spec.seed,
        attention=runtime.attention,
        moe_backend=runtime.moe_backend,
    )
    fpt = flops_per_token(model, store.seq_len)
    prepare_for_speed(model, activation_checkpointing=t.activation_checkpointing, compile=t.compile)
    if runtime.fused_cross_entropy:
        enable_fused_cross_entropy(model)
    # Fused kernels on GPU; on CPU the multi-tensor (foreach) path beats the per-parameter loop.
    optimizer = torch.optim.AdamW(
        param_groups(model, t.weight_decay),
        lr=plan.lr(0),
        betas=t.betas,
        eps=t.eps,
        fused=not runtime.cpu,
        foreach=runtime.cpu,
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    evaluation = spec.evaluation
    evaluator = None
    if evaluation.in_loop and (evaluation.sets or evaluation.probes):
        evaluator = Evaluator.open(
            evaluation,
            training_store=spec.store_path,
            tokenizer_dir=store.tokenizer_path,
            max_len=store.seq_len,
            per_domain=t.eval_sequences_per_domain,
        )
    return Run(
        spec,
        t,
        accelerator,
        plan,
        store,
        model,
        optimizer,
        tokenizer,
        accumulation=t.global_batch_size // (t.micro_batch_size * world),
        runtime=runtime,
        flops_per_token=fpt,
        peak_flops=peak_flops(accelerator.device, t.peak_flops),
        checkpointer=checkpointer or Checkpointer(run_dir, spec.checkpoint, model_settings(spec.model, t)),
        evaluator=evaluator,
        control=MixtureControl.of(plan, accelerator.device),
    )


def forward_losses(run: Run, inputs: dict[str, torch.Tensor], micro: MicroBatch) -> tuple[Any, torch.Tensor]:
    """The model's output and the per-sequence losses of one micro-batch (fused or not)."""
    tokens = inputs["tokens"]
    if run.runtime.fused_cross_entropy:
        groups = LossGroups(inputs["group_order"], inputs["group_inverse"], micro.group_sizes)
        out = run.model(input_ids=tokens, loss_groups=groups)
        return out, out.sequence_losses
    out = run.model(input_ids=tokens)
    return out, sequence_losses(out.logits, tokens)


def accumulate_gradients(run: Run, data: StepData, tally: LogTally, guard: NonFiniteGuard | None = None) -> None:
    """Forward/backward over this rank's micro-batches of one step; gradients end up in ``.grad``."""
    acc, model, moe = run.accelerator, run.model, run.spec.model.moe
    # Each rank sums loss_weight x loss over its sequences / global batch; DDP's mean over ranks
    # then multiplies by 1/world, so scale by world: the result is the global weighted mean.
    scale = acc.num_processes / len(data.batch)
    for i, micro in enumerate(data.micro):
        sync = i == len(data.micro) - 1
        inputs = micro.to(acc.device)
        tokens, domains = inputs["tokens"], inputs["domains"]
        with contextlib.nullcontext() if sync else acc.no_sync(model), run.autocast():
            out, losses = forward_losses(run, inputs, micro)
            loss = (losses * inputs["loss_weights"].to(losses.dtype)).sum() * scale
            aux = getattr(out, "aux_loss", None)
            if aux is not None:
                loss = loss + moe.aux_loss_coef * aux / len(data.micro)
            acc.backward(loss)
        if guard is not None:
            guard.add_losses(losses, micro.rows.sequence_ids, micro.rows.domains)
        tally.loss_sum.index_add_(0, domains, losses.detach().double())
        if run.control is not None:
            run.control.add(domains, losses)
        tally.count.index_add_(0, domains, torch.ones(len(domains), dtype=torch.float64, device=domains.device))
        tally.tokens += tokens.numel()
        tally.sequence_ids.append(micro.rows.sequence_ids)
        if moe is not None:
            tally.add_router(aux, router_load(getattr(out, "router_logits", None), moe.top_k))
    tally.data_wait_s += data.wait_s


def train_step(run: Run, data: StepData, tally: LogTally, guard: NonFiniteGuard) -> torch.Tensor:
    """One optimizer step: gradients, clip, update. Returns the gradient norm (left on the device).

    The guard records the step's non-finite flags; with ``on_nonfinite: skip`` a bad step is not
    applied and its losses are left out of the log tally."""
    skip_mode = guard.mode == "skip"
    before = tally.mark() if skip_mode else None
    guard.begin(data.step, run.accelerator.device)
    accumulate_gradients(run, data, tally, guard)
    clip = run.training.grad_clip
    norm = run.accelerator.clip_grad_norm_(run.model.parameters(), clip if clip else math.inf)
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP2 returns a DTensor
    guard.end(norm)
    if skip_mode and guard.skip_if_bad():
        tally.forget(before)  # type: ignore[arg-type]
        run.optimizer.zero_grad(set_to_none=True)
        return norm
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return norm


def log_train(
    run: Run,
    step: int,
    tally: LogTally,
    grad_norm: torch.Tensor,
    lr: float,
    bar: tqdm,
    data: StepData,
    guard: NonFiniteGuard,
) -> None:
    """One rank-0 record: loss (overall and per domain), LR, throughput, MFU, data wait, realised vs
    planned mix, and for MoE the router loss and load balance."""
    acc, names = run.accelerator, run.plan.domains.names
    sums = acc.reduce(tally.loss_sum, reduction="sum").cpu()
    counts = acc.reduce(tally.count, reduction="sum").cpu()
    elapsed = time.perf_counter() - tally.started  # after the reduce: the device work is done
    tokens_per_s = tally.tokens * acc.num_processes / max(elapsed, 1e-9)
    planned = run.plan.allocation.target_before(step + 1)  # the mixer's exact (fractional) cumulative target
    realised = run.plan.consumed_before(step + 1)  # the integer counts the batches took
    record: dict[str, Any] = {
        "loss": float(sums.sum() / counts.sum()) if counts.sum() > 0 else math.nan,  # nan: every step skipped
        "lr": lr,
        "grad_norm": float(grad_norm),
        "tokens_per_s": tokens_per_s,
        "data_wait_fraction": tally.data_wait_s / max(elapsed, 1e-9),
        "tokens": (step + 1) * run.training.global_batch_size * run.store.seq_len,
        "quality/batch_mean": float(run.store.train.score[data.batch.sequence_ids].mean()),
    }
    if run.peak_flops:
        record["mfu"] = tokens_per_s * run.flops_per_token / (run.peak_flops * acc.num_processes)
    if tally.aux_loss_sum is not None:
        aux = acc.reduce(tally.aux_loss_sum.reshape(1), reduction="mean")
        record["moe/aux_loss"] = float(aux) / tally.aux_loss_count
    if tally.expert_counts is not None:
        record.update(load_balance_record(acc.reduce(tally.expert_counts, reduction="sum").cpu()))
    for d, name in enumerate(names):
        if counts[d] > 0:
            record[f"loss/{name}"] = float(sums[d] / counts[d])
        record[f"mix/{name}/realised"] = int(realised[d])
        record[f"mix/{name}/planned"] = round(float(planned[d]), 3)
    record.update(guard.take_record())
    if run.training.log_batch_ids:
        # Gathered from the ranks (rank order): the sequences actually trained on since the last record.
        mine = torch.from_numpy(np.concatenate(tally.sequence_ids)).to(acc.device)
        record["batch_ids"] = acc.gather(mine).cpu().tolist()
    acc.log(record, step=step)
    postfix = {"loss": f"{record['loss']:.3f}", "lr": f"{lr:.2e}", "tok/s": f"{tokens_per_s:,.0f}"}
    if "mfu" in record:
        postfix["mfu"] = f"{record['mfu']:.1%}"
    bar.set_postfix(postfix, refresh=False)


def validate(run: Run, step: int) -> dict[str, float]:
    """The `evaluation` section's metrics (per-set loss and bits per byte, probes), logged at ``step``."""
    if run.evaluator is None:
        return {}
    acc = run.accelerator
    # Ranks split the sequences, except under FSDP: there every forward is collective, so every
    # rank runs the same (whole) set and no reduction is needed.
    split = acc.distributed_type != DistributedType.FSDP
    metrics = run.evaluator.measure(
        run.model,
        micro_batch_size=run.spec.evaluation.micro_batch_size or run.training.micro_batch_size,
        device=acc.device,
        rank=acc.process_index if split else 0,
        world_size=acc.num_processes if split else 1,
        reduce=(lambda x: acc.reduce(x, reduction="sum")) if split else None,
        autocast=run.autocast,
    )
    if metrics:
        acc.log(metrics, step=step)
    return metrics


def train(
    spec: TrainSections,
    *,
    resume: bool = False,
    overwrite: bool = False,
    ignore_plan_mismatch: bool = False,
    stop_after_steps: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) a recipe's training; returns a summary with the final validation losses.

    The run folder belongs to the checkpointer (`tools.train.checkpointer`): rank 0 holds its lock
    throughout, a folder that already holds a run needs ``resume`` (continue it) or ``overwrite``
    (replace it), and a folder this call created is removed again when the run fails before
    producing anything. ``stop_after_steps`` ends the process early after that many steps (with a
    checkpoint), as a crash would: it exists so resume can be tested and long runs split into jobs."""
    if stop_after_steps is not None and (isinstance(stop_after_steps, bool) or stop_after_steps < 1):
        raise UserError(f"--stop-after must be a number of steps >= 1, got {stop_after_steps!r}")
    training = training_section(spec)
    check_batch_divides(training)  # before any rank creates anything
    check_trackers(training.trackers)
    checkpointer = Checkpointer(spec.run_path, spec.checkpoint, model_settings(spec.model, training))
    with checkpointer.claim(resume=resume, overwrite=overwrite):
        try:
            return train_loop(
                setup(spec, checkpointer),
                resume=resume,
                ignore_plan_mismatch=ignore_plan_mismatch,
                stop_after_steps=stop_after_steps,
                show_progress=show_progress,
            )
        except BaseException as exc:
            if is_out_of_memory(exc):
                raise UserError(out_of_memory_message(spec, training)) from None
            raise


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation that failed: torch's (CUDA) OutOfMemoryError, Python's MemoryError, or the CPU
    allocator's RuntimeError ("can't allocate memory")."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc) or "out of memory" in str(exc))


def out_of_memory_message(spec: TrainSections, t: TrainingConfig) -> str:
    return (
        f"out of memory while training {spec.name!r} (model of hidden_size {spec.model.hidden_size}, "
        f"{spec.model.num_layers} layers; training.micro_batch_size={t.micro_batch_size}, "
        f"data.seq_len={spec.data.seq_len}): lower training.micro_batch_size (global_batch_size stays, "
        "by gradient accumulation), turn on training.activation_checkpointing, or make the model smaller; "
        "continue with --resume from the last checkpoint"
    )


def train_loop(
    run: Run,
    *,
    resume: bool = False,
    ignore_plan_mismatch: bool = False,
    stop_after_steps: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """The loop of `train` over a set-up run whose folder is claimed (see `train`)."""
    acc, plan, saver = run.accelerator, run.plan, run.checkpointer
    start = 0
    found = saver.resume_point(acc, plan.fingerprint, plan.total_steps, ignore_plan_mismatch) if resume else None
    if found:
        start, folder = found
        saver.load(acc, run.model, folder)
        if run.control is not None:
            run.control.restore(acc, load_state(saver.read_file(folder, STATE_FILE), str(folder / STATE_FILE)))
    else:
        saver.write_run_files(acc, run.model, run.tokenizer, run.spec.to_yaml())
    acc.init_trackers(
        "currimix",
        config={
            "recipe": run.spec.name,
            "recipe_fingerprint": hashlib.sha256(run.spec.to_yaml().encode()).hexdigest()[:16],  # the resolved recipe
            "plan": plan.fingerprint,
            "processes": acc.num_processes,
            "start_step": start,
        },
    )
    stop = plan.total_steps if stop_after_steps is None else min(plan.total_steps, stop_after_steps)
    tally = LogTally(len(plan.domains.names), acc.device)
    guard = NonFiniteGuard(run.training.on_nonfinite, plan.domains.names, lambda x: acc.reduce(x, reduction="sum"))
    feed = BatchFeed(run.load_step, range(start, stop), prefetch=run.training.prefetch)
    bar = tqdm(
        range(start, stop),
        initial=start,
        total=plan.total_steps,
        desc=run.spec.name,
        unit="step",
        disable=not (show_progress and acc.is_main_process),
        dynamic_ncols=True,
    )
    val_losses: dict[str, float] = {}
    for step in bar:
        lr = plan.lr(step)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        data = feed.get(step)
        grad_norm = train_step(run, data, tally, guard)
        done = step + 1
        if run.control is not None:  # at a window edge: the reduced losses set the next window's mixture
            run.control.after_step(acc, done)
        logs, evals, snaps = plan.is_log_step(done), plan.is_eval_step(done), plan.is_snapshot_step(done)
        saves = plan.is_checkpoint_step(done, stop_at=stop)
        if logs or evals or snaps or saves or done == stop:  # nothing is logged or saved from bad steps
            guard.check(at_log=logs)
        if logs:
            log_train(run, step, tally, grad_norm, lr, bar, data, guard)
            tally = LogTally(len(plan.domains.names), acc.device)
        if evals:
            val_losses = validate(run, step)
        if snaps:
            saver.snapshot(acc, run.model, run.tokenizer, done, plan.fingerprint)
        if saves:
            saver.save(acc, done, plan.fingerprint, run.control and {STATE_FILE: dump_state(run.control.state(acc))})
    bar.close()
    feed.close()
    if start == stop:
        guard.check(at_log=False)
    if stop == plan.total_steps:
        saver.final(acc, run.model, run.tokenizer, stop, plan.fingerprint)
    # Every rank finishes its collectives, and drops the DDP wrapper (whose reducer holds the process
    # group), before any rank tears the group down: a gloo group freed later, after a peer has
    # exited, was seen to hang that rank on exit (once in ~20 two-process runs).
    acc.wait_for_everyone()
    run.model = run.optimizer = None
    acc.free_memory()
    acc.end_training()
    summary = {
        "run_dir": str(saver.run_dir),
        "final_model": str(saver.run_dir / "final"),
        "steps_done": stop,
        "total_steps": plan.total_steps,
        "val_loss": set_domain_losses(val_losses),  # the `val` set's loss per domain
        "eval": val_losses,  # every metric of the last evaluation
        "plan_fingerprint": plan.fingerprint,
        "processes": acc.num_processes,
    }
    if stop == plan.total_steps:
        saver.write_summary(acc, summary)
    return summary


# ---------------------------------------------------------------------------- failure handling
# Kept apart from the loop: what happens before it starts and when it cannot.


def check_batch_divides(t: TrainingConfig, world: int | None = None) -> None:
    """The global batch must split evenly over the ``world`` processes. `train` checks it from the
    launcher's WORLD_SIZE (the default) before any process group exists, so every rank stops at once
    (no hang in a collective) and only rank 0 prints the message (see `recipes.cli.app.user_errors`);
    `setup` checks it again against the accelerator's process count, for direct callers and for
    launchers that do not set WORLD_SIZE."""
    if world is None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    if t.global_batch_size % (t.micro_batch_size * world):
        raise UserError(
            f"training.global_batch_size={t.global_batch_size} must be a multiple of micro_batch_size "
            f"({t.micro_batch_size}) x processes ({world}); with {world} processes use a global batch of "
            f"{t.micro_batch_size * world * max(1, round(t.global_batch_size / (t.micro_batch_size * world)))}, "
            "or another micro_batch_size"
        )
