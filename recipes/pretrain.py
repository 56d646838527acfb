"""The Accelerate pretraining loop: everything time-dependent comes from the plan.

One `for step in range(start, total)` loop: take the step's data (prefetched in a background
thread, `recipes/prefetch.py`), forward/backward over this rank's micro-batches, clip, step, then
gated one-liners for logging, validation, checkpoints and averaging snapshots. Runs the same in one
CPU process and under `accelerate launch` with DDP or FSDP2 (two CPU ranks on gloo need
`Accelerator(cpu=True)`, which `device: cpu` or `ACCELERATE_USE_CPU=true` gives).

Speed, all resolved and validated up front by `recipes/runtime.py`: bf16 is `torch.autocast`
around forward and loss (fp32 master weights, gradients and optimizer state; one explicit context
that behaves the same under DDP and FSDP, rather than accelerate's `mixed_precision`, which
rewrites `model.forward`), per-block in-place `torch.compile`, fused AdamW on GPU, SDPA or
flash-attention-2, optional activation checkpointing and fused linear+cross-entropy. The loop never
synchronises with the GPU between log lines: losses, router counts and the gradient norm stay on
the device until a log record needs them; so does the non-finite guard (`recipes/nonfinite.py`),
which is read at log steps and before anything is saved.

One process trains a run folder at a time (`curriculum.locks`), and a folder that already holds a
run is continued (``resume``) or replaced (``overwrite``), never trained over (`recipes/run_folder.py`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin, set_seed
from tqdm.auto import tqdm

from curriculum.errors import UserError
from curriculum.locks import folder_lock
from curriculum.store import TokenStore
from curriculum.tokenizer import load_tokenizer
from recipes.checkpoint import resume_point, save_checkpoint, save_final_model, save_snapshot
from recipes.config import Recipe
from recipes.evaluation import evaluate_domains
from recipes.fused_loss import LossGroups, enable_fused_cross_entropy
from recipes.loading import dump_recipe
from recipes.losses import sequence_losses
from recipes.model import build_model, flops_per_token, peak_flops, prepare_for_speed
from recipes.moe import load_balance_record, router_load
from recipes.nonfinite import NonFiniteGuard
from recipes.paths import describe
from recipes.plan import Plan, build_plan, model_settings
from recipes.prefetch import BatchFeed, MicroBatch, StepData, load_step
from recipes.run_folder import PreviousRun, claim_run_folder, holds_results
from recipes.runtime import Runtime, resolve_runtime
from recipes.trackers import make_trackers


@dataclass
class Run:
    """The live objects of a run."""

    recipe: Recipe
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
    run_dir: Path

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


def setup(recipe: Recipe) -> Run:
    """Build the accelerator, plan, model and optimizer of a recipe."""
    t = recipe.training
    runtime = resolve_runtime(t, recipe.model)
    run_dir = recipe.run_path
    if t.distributed == "ddp":
        os.environ["ACCELERATE_USE_FSDP"] = "false"  # the recipe wins over an FSDP accelerate config
    accelerator = Accelerator(
        cpu=runtime.cpu,
        mixed_precision="no",  # bf16 is the loop's own autocast (see the module docstring)
        fsdp_plugin=fsdp_plugin(runtime),
        project_dir=str(run_dir),
        log_with=make_trackers(t.trackers, run_dir) if _is_main() else None,
    )
    set_seed(recipe.seed)
    store = TokenStore(recipe.store_path)
    plan = build_plan(recipe, store)
    world = accelerator.num_processes
    check_batch_divides(recipe, world)  # the real process count (`train` checked the launcher's earlier)
    tokenizer = load_tokenizer(store.tokenizer_path)
    model = build_model(
        recipe.model,
        vocab_size=store.vocab_size,
        seq_len=store.seq_len,
        eos_id=store.eos_id,
        pad_id=tokenizer.pad_token_id,
        seed=recipe.seed,
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
    return Run(
        recipe,
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
        run_dir=run_dir,
    )


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


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
    acc, model, moe = run.accelerator, run.model, run.recipe.model.moe
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
    clip = run.recipe.training.grad_clip
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
        "tokens": (step + 1) * run.recipe.training.global_batch_size * run.store.seq_len,
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
    if run.recipe.training.log_batch_ids:
        # Gathered from the ranks (rank order): the sequences actually trained on since the last record.
        mine = torch.from_numpy(np.concatenate(tally.sequence_ids)).to(acc.device)
        record["batch_ids"] = acc.gather(mine).cpu().tolist()
    acc.log(record, step=step)
    postfix = {"loss": f"{record['loss']:.3f}", "lr": f"{lr:.2e}", "tok/s": f"{tokens_per_s:,.0f}"}
    if "mfu" in record:
        postfix["mfu"] = f"{record['mfu']:.1%}"
    bar.set_postfix(postfix, refresh=False)


def validate(run: Run, step: int) -> dict[str, float]:
    acc = run.accelerator
    t = run.recipe.training
    # Ranks split the validation sequences, except under FSDP: there every forward is collective,
    # so every rank runs the same (whole) set and no reduction is needed.
    split = acc.distributed_type != DistributedType.FSDP
    losses = evaluate_domains(
        run.model,
        run.store.val,
        per_domain=t.eval_sequences_per_domain,
        micro_batch_size=t.micro_batch_size,
        device=acc.device,
        rank=acc.process_index if split else 0,
        world_size=acc.num_processes if split else 1,
        reduce=(lambda x: acc.reduce(x, reduction="sum")) if split else None,
        autocast=run.autocast,
    )
    if losses:
        acc.log(
            {f"val/{k}": v for k, v in losses.items()} | {"val/mean": float(np.mean(list(losses.values())))}, step=step
        )
    return losses


def train(
    recipe: Recipe,
    *,
    resume: bool = False,
    overwrite: bool = False,
    ignore_plan_mismatch: bool = False,
    stop_after_steps: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the recipe's training; see `run_training`. A run folder this call created is
    removed again when the run fails before producing anything (no checkpoint, snapshot or step record).

    Rank 0 holds the run folder's lock throughout (`curriculum.locks`); a folder that already holds
    a run needs ``resume`` (continue it) or ``overwrite`` (replace it; `recipes.run_folder`)."""
    if stop_after_steps is not None and (isinstance(stop_after_steps, bool) or stop_after_steps < 1):
        raise UserError(f"--stop-after must be a number of steps >= 1, got {stop_after_steps!r}")
    check_batch_divides(recipe)  # before any rank creates anything
    run_dir = recipe.run_path
    # The lock comes first: a `train` refused by it must not remove a folder the holder just made.
    # It lives in the run folder, so taking it may create the folder: what was missing is noted before.
    missing = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    with run_folder_lock(run_dir), remove_if_left_empty(run_dir, missing):
        check_run_dir_writable(run_dir)
        previous = claim_run_folder(run_dir, resume=resume, overwrite=overwrite, main=_is_main())
        try:
            check_artifact_folders(run_dir)
            summary = run_training(
                recipe,
                resume=resume,
                ignore_plan_mismatch=ignore_plan_mismatch,
                stop_after_steps=stop_after_steps,
                show_progress=show_progress,
                previous=previous,
            )
        except BaseException as exc:
            if previous is not None:
                previous.restore()
            if is_out_of_memory(exc):
                raise UserError(out_of_memory_message(recipe)) from None
            raise
        if previous is not None:
            previous.discard()
        return summary


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation that failed: torch's (CUDA) OutOfMemoryError, Python's MemoryError, or the CPU
    allocator's RuntimeError ("can't allocate memory")."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc) or "out of memory" in str(exc))


def out_of_memory_message(recipe: Recipe) -> str:
    t = recipe.training
    return (
        f"out of memory while training {recipe.name!r} (model of hidden_size {recipe.model.hidden_size}, "
        f"{recipe.model.num_layers} layers; training.micro_batch_size={t.micro_batch_size}, "
        f"data.seq_len={recipe.data.seq_len}): lower training.micro_batch_size (global_batch_size stays, "
        "by gradient accumulation), turn on training.activation_checkpointing, or make the model smaller; "
        "continue with --resume from the last checkpoint"
    )


def run_training(
    recipe: Recipe,
    *,
    resume: bool = False,
    ignore_plan_mismatch: bool = False,
    stop_after_steps: int | None = None,
    show_progress: bool = True,
    previous: PreviousRun | None = None,
) -> dict[str, Any]:
    """Run (or resume) the recipe's training; returns a summary with the final validation losses.

    ``stop_after_steps`` ends the process early after that many steps (with a checkpoint), as a
    crash would: it exists so resume can be tested and long runs can be split into jobs.
    ``previous`` (an ``--overwrite``'s old run, kept aside) is discarded after the first checkpoint.
    """
    run = setup(recipe)
    acc, plan = run.accelerator, run.plan
    start = 0
    found = find_resume_point(run, ignore_plan_mismatch) if resume else None
    if found:
        start, folder = found
        load_checkpoint(acc, folder)
        check_weights_finite(run, folder)
    elif acc.is_main_process:
        write_run_files(run)
    acc.init_trackers(
        "currimix",
        config={"recipe": recipe.name, "plan": plan.fingerprint, "processes": acc.num_processes, "start_step": start},
    )
    stop = plan.total_steps if stop_after_steps is None else min(plan.total_steps, stop_after_steps)
    tally = LogTally(len(plan.domains.names), acc.device)
    guard = NonFiniteGuard(recipe.training.on_nonfinite, plan.domains.names, lambda x: acc.reduce(x, reduction="sum"))
    feed = BatchFeed(run.load_step, range(start, stop), prefetch=recipe.training.prefetch)
    bar = tqdm(
        range(start, stop),
        initial=start,
        total=plan.total_steps,
        desc=recipe.name,
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
            save_snapshot(acc, run.model, run.tokenizer, run.run_dir, done, {"plan_fingerprint": plan.fingerprint})
        if saves:
            save_checkpoint(
                acc, run.run_dir, done, plan.fingerprint, recipe.checkpoint.keep_last, model_settings(recipe)
            )
            if previous is not None:
                previous.discard()  # the new run can resume now: the old one is no longer needed
    bar.close()
    feed.close()
    if start == stop:
        guard.check(at_log=False)
    if stop == plan.total_steps:
        save_final_model(acc, run.model, run.tokenizer, run.run_dir, stop, {"plan_fingerprint": plan.fingerprint})
    # Every rank finishes its collectives, and drops the DDP wrapper (whose reducer holds the process
    # group), before any rank tears the group down: a gloo group freed later, after a peer has
    # exited, was seen to hang that rank on exit (once in ~20 two-process runs).
    acc.wait_for_everyone()
    run.model = run.optimizer = None
    acc.free_memory()
    acc.end_training()
    summary = {
        "run_dir": str(run.run_dir),
        "final_model": str(run.run_dir / "final"),
        "steps_done": stop,
        "total_steps": plan.total_steps,
        "val_loss": val_losses,
        "plan_fingerprint": plan.fingerprint,
        "processes": acc.num_processes,
    }
    if acc.is_main_process and stop == plan.total_steps:
        (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def write_run_files(run: Run) -> None:
    """The resolved recipe and the model's config + tokenizer, for averaging and inspection."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / "recipe.yaml").write_text(dump_recipe(run.recipe))
    config_dir = run.run_dir / "model_config"
    run.accelerator.unwrap_model(run.model).config.save_pretrained(str(config_dir))
    run.tokenizer.save_pretrained(str(config_dir))


# ---------------------------------------------------------------------------- failure handling
# Kept apart from the loop: what happens before it starts and when it cannot.


def check_batch_divides(recipe: Recipe, world: int | None = None) -> None:
    """The global batch must split evenly over the ``world`` processes. `train` checks it from the
    launcher's WORLD_SIZE (the default) before any process group exists, so every rank stops at once
    (no hang in a collective) and only rank 0 prints the message (see `recipes.cli.app.user_errors`);
    `setup` checks it again against the accelerator's process count, for direct callers and for
    launchers that do not set WORLD_SIZE."""
    t = recipe.training
    if world is None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    if t.global_batch_size % (t.micro_batch_size * world):
        raise UserError(
            f"training.global_batch_size={t.global_batch_size} must be a multiple of micro_batch_size "
            f"({t.micro_batch_size}) x processes ({world}); with {world} processes use a global batch of "
            f"{t.micro_batch_size * world * max(1, round(t.global_batch_size / (t.micro_batch_size * world)))}, "
            "or another micro_batch_size"
        )


@contextlib.contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """The run folder's lock, held by rank 0 (`curriculum.locks`); a path that cannot hold it (a
    file where a folder should be) is reported like an unwritable run folder."""
    if not _is_main():
        yield
        return
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(folder_lock(run_dir, "train", "run folder", inside=True))
    except OSError as exc:
        raise UserError(f"cannot write to the run folder {str(run_dir)!r}: {exc.strerror or exc}") from None
    with stack:
        yield


def check_run_dir_writable(run_dir: Path) -> None:
    """Fail before any work when the run folder cannot be created or written."""
    probe = run_dir / f".write-test-{os.getpid()}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to the run folder {str(run_dir)!r}: {exc.strerror or exc}") from None


def check_artifact_folders(run_dir: Path) -> None:
    """The folders a run writes into are folders (or absent): a file named ``checkpoints`` would
    otherwise fail the first save, after the training it took, as if the disk were full."""
    for name in ("checkpoints", "snapshots", "final"):
        path = run_dir / name
        if os.path.lexists(path) and not path.is_dir():
            raise UserError(
                f"{str(path)!r} is {describe(path)}, where the run keeps its {name} folder; move it away or remove it"
            )


@contextlib.contextmanager
def remove_if_left_empty(run_dir: Path, missing: list[Path] | None = None) -> Iterator[None]:
    """When the body fails, remove ``run_dir`` (and parents) if this call created it and the run
    produced nothing: a failed start leaves no empty run folder behind to confuse the next one.
    ``missing``: the folders that did not exist when the call began (default: now)."""
    if missing is None:
        missing = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    try:
        yield
    except BaseException:
        if missing and _is_main() and run_dir.is_dir() and not holds_results(run_dir):
            shutil.rmtree(missing[-1], ignore_errors=True)  # the outermost folder this call created
        raise


def find_resume_point(run: Run, ignore_plan_mismatch: bool) -> tuple[int, Path] | None:
    """The verified checkpoint to resume from: chosen (and reported) by rank 0, shared with the others
    so every rank loads the same one and the files are hashed once."""
    from accelerate.utils import broadcast_object_list

    acc = run.accelerator
    choice: list[Any] = [None]
    if acc.is_main_process:
        try:
            found = resume_point(
                run.run_dir,
                run.plan.fingerprint,
                ignore_plan_mismatch,
                model_settings(run.recipe),
                total_steps=run.plan.total_steps,
            )
            choice = [("ok", found[0], str(found[1])) if found else ("none",)]
        except UserError as exc:
            choice = [("error", str(exc))]
        if choice[0][0] == "none":
            # Also reached by `currimix run`, which resumes without being asked: no flag is named.
            print(f"note: no checkpoint in {run.run_dir / 'checkpoints'} yet; starting at step 0", file=sys.stderr)
    if acc.num_processes > 1:
        broadcast_object_list(choice)
    kind, *rest = choice[0]
    if kind == "error":
        raise UserError(rest[0])
    return (rest[0], Path(rest[1])) if kind == "ok" else None


def load_checkpoint(acc: Accelerator, folder: Path) -> None:
    """`load_state`, with a failure explained (a verified checkpoint that still will not load was
    written by an incompatible version, or its marker predates checksums)."""
    try:
        acc.load_state(str(folder))
    except Exception as exc:  # torch, safetensors and pickle raise many types for a bad file
        raise UserError(
            f"cannot load checkpoint {str(folder)!r}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
            "move it away to resume from an older one"
        ) from None


def check_weights_finite(run: Run, folder: Path) -> None:
    """A resumed checkpoint whose weights hold NaN or inf would train on to garbage: refuse it,
    naming the first such tensor (one pass over the weights and one reduction, once per resume;
    every rank decides the same, also when only some FSDP shards are bad)."""
    names, counts = [], []
    for name, param in run.model.named_parameters():
        local = param.to_local() if hasattr(param, "to_local") else param  # FSDP2: this rank's shard
        names.append((name, local.numel()))
        counts.append((~torch.isfinite(local.detach())).sum())
    local_counts = torch.stack(counts).cpu() if counts else torch.zeros(0)
    total = run.accelerator.reduce(local_counts.sum().to(run.accelerator.device).reshape(1), reduction="sum")
    if not int(total.item()):
        return
    first = next(((n, size, int(c)) for (n, size), c in zip(names, local_counts) if c), None)
    where = f"{first[2]} of {first[1]} values of {first[0]} are NaN or inf" if first else "on another process's shard"
    raise UserError(
        f"checkpoint {str(folder)!r} holds non-finite weights ({where}): training from it would only spread "
        "them. Resume from an older checkpoint (move this one away)"
    )
