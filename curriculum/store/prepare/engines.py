"""Where units run: this process, a local process pool, or datatrove's executors (local / Slurm).

- ``local`` (default): a `concurrent.futures` process pool over the units, one process per core
  (forked where the OS can: no re-import, no `__main__` guard needed in scripts; the Rust
  tokenizer runs one thread per process, the processes being the parallelism). A
  failed unit is resubmitted alone, up to ``retries`` times; a crashed worker (killed, out of
  memory) breaks only the pool, which is rebuilt for the units still missing.
- ``datatrove``: `datatrove.executor.LocalPipelineExecutor`, one datatrove task per unit. Its
  completion markers make a rerun skip finished tasks, which is how failed units are retried.
- ``slurm``: `datatrove.executor.SlurmPipelineExecutor`, the same pipeline submitted as a Slurm
  job array (one task per unit); see README "Preparing a corpus on a cluster".

Every engine runs the same `run_unit`, whose shards are idempotent, so engines can be mixed:
a Slurm run that lost a few tasks can be finished by a local `currimix prepare`.
"""

from __future__ import annotations

import os
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from multiprocessing import get_all_start_methods, get_context
from typing import Any, Callable

from curriculum.store.prepare.work import Job, run_unit

ENGINES = ("local", "datatrove", "slurm")
Report = Callable[[dict[str, Any]], None]


def local_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _init_worker() -> None:
    # One Rust thread per worker process: the processes are the parallelism.
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import datasets

    datasets.disable_progress_bars()


def _context() -> Any:
    # Set before forking: tokenizers then stays single-threaded in the children without warning.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    return get_context("fork" if "fork" in get_all_start_methods() else "spawn")


def _describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if type(exc).__name__ == "UserError":
        return text
    return f"{type(exc).__name__}: {text}\n{''.join(traceback.format_exception(exc)[-3:]).rstrip()}"


def _is_data_error(exc: BaseException | None) -> bool:
    """A UserError names bad input: running the unit again gives the same error, so it is not retried."""
    return type(exc).__name__ == "UserError"


def run_inline(job: Job, indices: list[int], retries: int, report: Report) -> dict[int, str]:
    """Units one after the other in this process; returns {unit index: error} for units that failed for good."""
    failed = {}
    for i in indices:
        for attempt in range(retries + 1):
            try:
                report(run_unit(job, i))
                break
            except Exception as exc:  # any failure of one unit is that unit's, retried alone
                if attempt == retries or _is_data_error(exc):
                    failed[i] = _describe_error(exc)
                    break
    return failed


def run_pool(job: Job, indices: list[int], workers: int, retries: int, report: Report) -> dict[int, str]:
    """Units on a local process pool; see the module docstring for retries."""
    attempts = {i: 0 for i in indices}
    pending = list(indices)
    failed: dict[int, str] = {}
    while pending:  # one round per pool; retries and units of a broken pool go to the next round
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_init_worker)
        futures = {pool.submit(run_unit, job, i): i for i in pending}
        pending = []
        for future in as_completed(futures):
            i = futures[future]
            try:
                report(future.result())
                continue
            except BrokenProcessPool:
                error = "its worker process died (killed, or out of memory)"
            except Exception as exc:  # any failure of one unit is that unit's, retried alone
                error = _describe_error(exc)
            attempts[i] += 1
            if attempts[i] > retries or _is_data_error(future.exception()):
                failed[i] = error
            else:
                pending.append(i)
        pool.shutdown(wait=True, cancel_futures=True)
    return failed


def _datatrove_task(job: Job, indices: list[int], data: Any, rank: int = 0, world_size: int = 1) -> Any:
    _init_worker()
    run_unit(job, indices[rank])
    return data


def datatrove_pipeline(job: Job, indices: list[int]) -> list[Any]:
    """The datatrove pipeline: one step that runs unit ``indices[rank]`` of the task's rank."""
    return [partial(_datatrove_task, job, indices)]


def run_datatrove(job: Job, indices: list[int], workers: int, retries: int, report: Report) -> dict[int, str]:
    """Units as the tasks of a datatrove `LocalPipelineExecutor`; reruns retry the failed ones."""
    from datatrove.executor import LocalPipelineExecutor

    from curriculum.store.shards import read_shard_info

    logging_dir = os.path.join(job.root, ".datatrove")
    for _ in range(retries + 1):
        executor = LocalPipelineExecutor(
            pipeline=datatrove_pipeline(job, indices),
            tasks=len(indices),
            workers=workers,
            logging_dir=logging_dir,
            skip_completed=True,
            start_method="spawn",
        )
        try:
            executor.run()
        except Exception:  # datatrove raises when some tasks failed; the shards say which
            pass
        if all(read_shard_info(job.shard_folder(i)) for i in indices):
            break
    failed = {}
    for i in indices:
        info = read_shard_info(job.shard_folder(i))
        if info is None:
            failed[i] = f"failed in datatrove (see the task logs in {logging_dir}/logs)"
        else:
            report(info)
    return failed


def slurm_executor(job: Job, indices: list[int], **slurm: Any) -> Any:
    """A datatrove `SlurmPipelineExecutor` over the units (call `.run()` to submit the job array).

    ``slurm`` goes to the executor: at least ``partition`` and ``time``, and usually
    ``cpus_per_task``, ``mem_per_cpu_gb``, ``venv_path`` or ``env_command``, ``sbatch_args``.
    """
    from datatrove.executor import SlurmPipelineExecutor

    slurm.setdefault("logging_dir", os.path.join(job.root, ".datatrove"))
    slurm.setdefault("job_name", "currimix-prepare")
    return SlurmPipelineExecutor(pipeline=datatrove_pipeline(job, indices), tasks=len(indices), **slurm)


def run_engine(engine: str, job: Job, indices: list[int], workers: int, retries: int, report: Report) -> dict[int, str]:
    """Run ``indices`` on ``engine``; returns the units that failed for good with their errors."""
    if engine == "datatrove":
        return run_datatrove(job, indices, workers, retries, report)
    if workers <= 1 or len(indices) <= 1:
        return run_inline(job, indices, retries, report)
    return run_pool(job, indices, workers, retries, report)
