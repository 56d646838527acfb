"""`prepare`: documents per domain -> scored, tokenized, score-ordered packed token store, in units.

1. Cut the inputs into units of work (`units.py`; recorded in the store folder's units.json).
2. Train the tokenizer once on a sample of the training documents (or copy the given one).
3. Run the units (`work.py`) on an engine (`engines.py`): all local cores by default, datatrove
   locally or on Slurm, or one slice of a plain job array (``unit``/``units``). Each unit writes
   one shard atomically; finished shards are skipped, failed units retried alone.
4. When every shard exists, merge the shards' sorted orders and write the manifest, last
   (`finalize.py`). Until then the folder is not a store, and running `prepare` again resumes.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path
from typing import Iterator

from curriculum.config import DataConfig, StoreSections, TokenizerConfig, store_fingerprint
from curriculum.documents import resolve_files
from curriculum.errors import UserError
from curriculum.files import temp_name
from curriculum.store.prepare.engines import ENGINES, local_cores, run_engine
from curriculum.store.prepare.finalize import finalize_store, missing_units
from curriculum.store.prepare.folders import (
    check_replaceable,
    discard,
    input_paths,
    is_unfinished,
    remove_stale_temp_folders,
    start_folder,
    store_lock,
)
from curriculum.store.prepare.progress import UnitProgress
from curriculum.store.prepare.readers import read_unit
from curriculum.store.prepare.units import describe, plan_units, save_or_check_units
from curriculum.store.prepare.work import Job, id_tiebreak, val_mask
from curriculum.store.reader import TokenStore, is_complete_store
from curriculum.tokenizer import load_tokenizer, train_bpe

__all__ = [
    "prepare_store",
    "submit_slurm",
    "check_inputs",
    "check_replaceable",
    "remove_stale_temp_folders",
    "val_mask",
    "id_tiebreak",
    "plan_units",
]


def check_inputs(data: DataConfig, tokenizer: TokenizerConfig, label: str = "the store") -> None:
    """Every source path and the tokenizer folder exist (all problems reported together)."""
    problems = []
    for name, domain in data.domains.items():
        for i, source in enumerate(domain.sources):
            try:
                resolve_files(source)
            except UserError as exc:
                problems.append(f"data.domains.{name}.sources.{i}.path: {exc}")
            if source.tokens_field and not tokenizer.path:
                problems.append(
                    f"data.domains.{name}.sources.{i}.tokens_field: pre-tokenized documents need "
                    "tokenizer.path (the tokenizer that made them)"
                )
    if data.val_fraction >= 1 and not tokenizer.path:
        problems.append(
            "data.val_fraction: 1 holds every document out, leaving no text to train a tokenizer on; set "
            "tokenizer.path to the tokenizer of the models it will evaluate (e.g. <training store>/tokenizer)"
        )
    if tokenizer.path and not Path(tokenizer.path).is_dir():
        what = "is a file, not a folder" if Path(tokenizer.path).exists() else "does not exist"
        problems.append(f"tokenizer.path: folder {tokenizer.path!r} {what}")
    if problems:
        raise UserError(f"cannot prepare {label!r}:", problems)


def tokenizer_texts(data: DataConfig, units: list[dict], budget_bytes: int) -> Iterator[str]:
    """Training documents round-robin over the domains (unit by unit), up to ``budget_bytes``."""
    queues = {name: [u for u in units if u["domain"] == name] for name in data.domains}
    used = 0
    while any(queues.values()) and used < budget_bytes:
        for name, queue in queues.items():
            if not queue:
                continue
            unit = queue.pop(0)
            source = data.domains[name].sources[unit["source"]]
            if source.tokens_field:
                continue
            try:
                table = read_unit(source, unit, source_name=f"{name}/{unit['source']}")
            except UserError:
                continue  # a bad input fails in its own unit, with its name, after the others ran
            ids = table.column("id").to_pylist()
            keep = ~val_mask(name, ids, data.val_fraction)
            for text, kept in zip(table.column("text").to_pylist(), keep):
                if used >= budget_bytes:
                    return
                if kept:
                    used += len(text.encode("utf-8", "replace"))
                    yield text


def ensure_tokenizer(
    data: DataConfig, config: TokenizerConfig, root: Path, units: list[dict], may_train: bool
) -> tuple[int, int]:
    """The store's tokenizer folder (trained once, or copied), atomically; returns (eos id, vocab size)."""
    folder = root / "tokenizer"
    if not (folder / "tokenizer.json").is_file():
        if config.path:
            tokenizer = load_tokenizer(config.path)
        elif may_train:
            tokenizer = train_bpe(
                tokenizer_texts(data, units, config.train_bytes), config.vocab_size, config.min_frequency
            )
        else:
            raise UserError(
                f"{root}/tokenizer does not exist: train it once before the job array starts, with "
                "`currimix prepare RECIPE --tokenizer-only` (or set tokenizer.path)"
            )
        tmp = temp_name(folder)
        tokenizer.save_pretrained(str(tmp))
        try:
            tmp.rename(folder)
        except OSError:  # another task of the array saved it first
            shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = load_tokenizer(folder)
    return int(tokenizer.eos_token_id), len(tokenizer)


def prepare_store(
    spec: StoreSections,
    *,
    overwrite: bool = False,
    show_progress: bool = True,
    engine: str = "local",
    unit: int | None = None,
    units: int | None = None,
    tokenizer_only: bool = False,
) -> TokenStore | None:
    """Build (or resume) the token store of ``spec``'s `data` and `tokenizer` sections in its
    ``store_path`` (a `Recipe` is such a spec; no other section is read); returns it opened once complete.

    With ``unit=i, units=N`` only the units with index % N == i run (a plain job array); the
    call returns None unless this was the slice that completed the store. ``tokenizer_only``
    stops after the tokenizer (run it once before a job array).
    """
    if engine not in ENGINES:
        raise UserError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "slurm":
        raise UserError(
            "--engine slurm needs cluster settings (partition, time, environment): submit with "
            "`curriculum.store.prepare.submit_slurm(recipe, partition=..., time=...)` as README 'Preparing a large corpus' shows"
        )
    if engine == "datatrove" and importlib.util.find_spec("datatrove") is None:
        raise UserError('--engine datatrove needs datatrove: pip install -e ".[cluster]"')
    if (unit is None) != (units is None) or (units is not None and not 0 <= unit < units):
        raise UserError("--unit i and --units N go together, with 0 <= i < N")
    root, data, tokenizer = spec.store_path, spec.data, spec.tokenizer
    in_array = units is not None
    if in_array and is_complete_store(root):
        return TokenStore(root)
    check_inputs(data, tokenizer, spec.name)
    with store_lock(root, in_array):  # one `prepare` per store folder (a job array's slices share it)
        resuming = is_unfinished(root) and not overwrite
        if not in_array:
            start_folder(root, overwrite, input_paths(data, tokenizer))
        try:
            return _build(data, tokenizer, root, engine, unit, units, tokenizer_only, show_progress)
        except UserError as exc:
            # A run that started this folder and fails leaves nothing behind, unless finished shards
            # of other units are worth resuming (their errors say so).
            if not in_array and not resuming and not getattr(exc, "shards_kept", False) and root.is_dir():
                discard(root)
            raise


def _build(
    data: DataConfig,
    tokenizer: TokenizerConfig,
    root: Path,
    engine: str,
    unit: int | None,
    units: int | None,
    tokenizer_only: bool,
    show_progress: bool,
) -> TokenStore | None:
    in_array = units is not None
    started = time.time()
    plan = plan_units(data)
    root.mkdir(parents=True, exist_ok=True)
    save_or_check_units(root, plan)
    eos_id, vocab_size = ensure_tokenizer(data, tokenizer, root, plan, may_train=not in_array)
    if tokenizer_only:
        return None
    job = Job(data, str(root), tuple(plan), eos_id, vocab_size)
    missing = missing_units(root, plan)
    todo = [u["index"] for u in missing if not in_array or u["index"] % units == unit]
    workers = min(data.num_proc or local_cores(), max(len(todo), 1))
    progress = UnitProgress(len(plan), len(plan) - len(missing), show_progress)
    try:
        failed = run_engine(engine, job, todo, workers, data.retries, progress)
    finally:
        progress.close()
    if failed:
        kept = len(plan) - len(missing_units(root, plan))
        error = UserError(
            f"{len(failed)} of {len(plan)} units of work failed (a unit failing on its data is not retried, "
            f"other failures {data.retries} times)"
            + (
                f"; the {kept} finished shards are kept and `currimix prepare` again runs only the missing units:"
                if kept
                else ":"
            ),
            [f"{plan[i]['name']} ({describe(plan[i])}): {why}" for i, why in sorted(failed.items())],
        )
        error.shards_kept = kept > 0
        raise error
    if missing_units(root, plan):
        return None  # other slices of the job array are still running
    finalize_store(
        root,
        plan,
        list(data.domains),
        data.seq_len,
        {
            "token_dtype": job.token_dtype.name,
            "eos_id": eos_id,
            "vocab_size": vocab_size,
            "scorers": {n: (d.scorer.name if d.scorer else "none") for n, d in data.domains.items()},
            "data_fingerprint": store_fingerprint(data, tokenizer),
            "units": len(plan),
            "seconds": round(time.time() - started, 1),
        },
    )
    return TokenStore(root)


def submit_slurm(spec: StoreSections, *, submit: bool = True, **slurm: object) -> object:
    """Prepare the store folder and tokenizer here, then submit the missing units as a Slurm job
    array through datatrove's `SlurmPipelineExecutor` (``slurm``: its settings, at least
    ``partition`` and ``time``). Returns the executor; run `currimix prepare` once the array is
    done to merge the orders and write the manifest."""
    from curriculum.store.prepare.engines import slurm_executor

    root, data, tokenizer = spec.store_path, spec.data, spec.tokenizer
    if is_complete_store(root):
        raise UserError(f"token store {str(root)!r} already exists; remove it or use `currimix prepare --overwrite`")
    check_inputs(data, tokenizer, spec.name)
    plan = plan_units(data)
    root.mkdir(parents=True, exist_ok=True)
    save_or_check_units(root, plan)
    eos_id, vocab_size = ensure_tokenizer(data, tokenizer, root, plan, may_train=True)
    job = Job(data, str(root), tuple(plan), eos_id, vocab_size)
    executor = slurm_executor(job, [u["index"] for u in missing_units(root, plan)], **slurm)
    if submit:
        executor.run()
    return executor
