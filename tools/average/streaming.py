"""Checkpoint averaging: a weighted average of K checkpoints, streamed tensor by tensor.

`average_checkpoints` reads each input tensor once, as a view of the memory-mapped file, and
accumulates the weighted sum chunk by chunk in float32 (or float64) so the running sum stays in
cache; each finished chunk is rounded to the output dtype and appended to a safetensors shard
whose header was written up front (`tools.average.writer`). Private memory is therefore a few
chunks, independent of K and of the model's size; the inputs cost only page cache.

The output is a ``save_pretrained``-style folder (config, generation config, tokenizer files,
``model.safetensors`` or shards + index) that loads with ``AutoModelForCausalLM``; the sources,
steps and weights are recorded in each shard's metadata and in ``currimix.json``. It appears
atomically: until it is complete it exists only as a hidden ``.<name>.tmp-*`` folder.

Non-finite values: each averaged chunk's min and max are checked while the chunk is in cache (no
extra read of the inputs; +3-5% on the summing loop, K=6, one core, measured 2026-12-07);
when they are not finite or exceed the output dtype's range, the inputs' chunks are scanned to name the
inputs and the tensor. By default that refuses the whole average (nothing is written): a NaN or
inf in any input with a non-zero weight makes that tensor NaN or inf in the output, so the model
would be unusable, and an all-NaN input (a diverged run's checkpoint) is the usual cause.
``allow_nonfinite`` writes it anyway, listing every such tensor in the notes (for models that
legitimately store inf, e.g. a -inf mask buffer).

From the command line (`recipes.cli.average`)::

    currimix average --run runs/cma --last 6 --weights ema --alpha 0.2 -o runs/cma/average
    currimix average ckpt_a ckpt_b ckpt_c --weights 0.2,0.3,0.5 --output-dtype bfloat16 -o merged

The ``currimix average`` command is `recipes.cli.average`. Weight presets live in
`tools.average.weights` (shared with the recipe's averaging section), run-folder selection in
`tools.average.select`, input formats in `tools.average.inputs`, the writer in `tools.average.writer`.
"""

from __future__ import annotations

import filecmp
import json
import math
import queue
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Literal, Optional, Sequence

import torch
from pydantic import Field

from curriculum.errors import UserError
from curriculum.paths import describe, resolved
from curriculum.registry import StrictModel
from tools.average.inputs import (
    MARKER_FILE,
    CheckpointSource,
    check_compatible,
    load_config,
    open_checkpoint,
)
from tools.average.weights import (
    WeightSpec,
    parse_weight_spec,
    resolve_weights,
)
from tools.average.writer import (
    BackgroundWriter,
    OutputTensor,
    StreamingShardWriter,
    atomic_output_dir,
    check_output_folder,
    parse_size,
    plan_shards,
    shard_names,
    write_index,
    write_json,
)

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Elements per accumulation chunk: 1M fp32 values (4 MiB) keep the running sum of each chunk in
# cache while the K inputs stream past it, so memory traffic is K reads + 1 write instead of 3K.
CPU_CHUNK_ELEMS = 1 << 20
GPU_CHUNK_ELEMS = 1 << 22  # 16 MiB per host<->GPU copy; the pinned pool is 4 of these
# The sum is memory-bound: one core nearly saturates memory bandwidth (~12 GB/s measured), and the
# other is left to the writer thread and page faults. With two OpenMP threads every small op waits
# at a barrier, which costs 10-30x when anything else (a training run) holds one of two cores.
CPU_THREADS = 1
# Chunk buffers in flight between the summing and the writer thread.
WRITE_BUFFERS = 4
# Files copied beside the weights: everything `from_pretrained` and tokenizers look for.
COPIED_FILES = (
    "generation_config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "*.model",
    "*.tiktoken",
    "chat_template*",
    "preprocessor_config.json",
)


class AverageReport(StrictModel):
    """What an averaging run did; also stored as the output's ``currimix.json``."""

    output: str = Field(description="The averaged model folder.")
    sources: list[str] = Field(description="Input checkpoint folders, oldest first.")
    steps: list[Optional[int]] = Field(description="Training step of each source (None when unknown).")
    weights: list[float] = Field(description="Weight of each source; they sum to 1 unless explicit and unnormalized.")
    weighting: dict[str, Any] = Field(description="The weight preset and its parameters.")
    accumulate_dtype: str
    output_dtype: str = Field(description="Dtype of the floating-point output tensors.")
    num_tensors: int
    total_bytes: int = Field(description="Bytes of tensor data written.")
    shards: list[str]
    seconds: float
    notes: list[str] = Field(default_factory=list)


def average_checkpoints(
    inputs: Sequence[Path],
    output: Path,
    weights: WeightSpec | Sequence[float] | str = "sma",
    *,
    accumulate_dtype: Literal["float32", "float64"] = "float32",
    output_dtype: Literal["float32", "float64", "bfloat16", "float16"] | None = None,
    shard_size: str | int = "5GB",
    device: str = "cpu",
    config_from: Path | None = None,
    overwrite: bool = False,
    dry_run: bool = False,
    progress: bool = False,
    allow_nonfinite: bool = False,
) -> AverageReport:
    """Write the weighted average of ``inputs`` (oldest first) to the model folder ``output``.

    ``weights`` is a preset (`SMAWeights`, `EMAWeights`, ... or a name such as ``"sma"``) or one
    number per input. Floating tensors are averaged in ``accumulate_dtype`` and written in
    ``output_dtype`` (default: their input dtype); other tensors are copied from the newest input.
    ``device="cuda"`` accumulates on the GPU. ``dry_run`` validates everything and writes nothing.
    Raises `UserError` for mismatched inputs, an output that would overwrite an input, non-finite
    values in an input (unless ``allow_nonfinite``: then they are listed in the notes), etc.
    """
    start = time.perf_counter()
    inputs = [Path(p) for p in inputs]
    spec = parse_weight_spec(weights)
    weight_values = resolve_weights(spec, len(inputs))
    if accumulate_dtype not in ("float32", "float64"):
        raise UserError(f"accumulate_dtype must be float32 or float64, got {accumulate_dtype!r}")
    if output_dtype is not None and output_dtype not in DTYPES:
        raise UserError(f"output_dtype must be one of {', '.join(DTYPES)}, got {output_dtype!r}")
    acc_dtype = DTYPES[accumulate_dtype]
    device = _check_device(device)
    max_shard_bytes = parse_size(shard_size)
    too_big = [w for w in weight_values if abs(w) > torch.finfo(acc_dtype).max]
    if too_big:  # torch refuses to scale by a number its accumulator cannot hold (a RuntimeError)
        raise UserError(
            f"weights {too_big} do not fit the {accumulate_dtype} accumulator; normalize the weights "
            "(--normalize) or use --accumulate-dtype float64"
        )
    for path in [*inputs, Path(output), *([Path(config_from)] if config_from else [])]:
        resolved(path, "average path")  # a loop of symbolic links is a message, not a RuntimeError
    if len(set(p.resolve() for p in inputs)) != len(inputs):
        raise UserError(f"the same checkpoint is given twice in {[str(p) for p in inputs]}")
    _refuse_overlap_paths(Path(output), [*inputs, *([Path(config_from)] if config_from else [])])
    check_output_folder(Path(output).absolute(), overwrite)  # checked again when writing; this saves the work

    if config_from is not None:  # checked even when no input needs it: a wrong folder is a mistake
        if not Path(config_from).is_dir():
            raise UserError(f"--config-from {str(config_from)!r} is {describe(Path(config_from))}, not a model folder")
        load_config(Path(config_from))
    sources = [open_checkpoint(p, config_from) for p in inputs]
    try:
        _refuse_overlap(Path(output), sources)
        check_compatible(sources)
        notes = [n for s in sources for n in s.notes]
        if config_from is not None and all(s.config_dir != Path(config_from) for s in sources):
            notes.append(f"--config-from {str(config_from)!r} was not used: every input has its own config")
        negative = [f"{w:g} ({s.label})" for s, w in zip(sources, weight_values) if w < 0]
        if negative:
            notes.append(
                f"negative weights {', '.join(negative)}: the result extrapolates away from those checkpoints "
                "instead of averaging them"
            )
        _check_step_order(sources, spec, notes)
        copied = _files_to_copy(sources)
        plan = _output_plan(sources[0], output_dtype)
        if any(not t.dtype.is_floating_point for t in plan):
            notes.append(
                f"{sum(not t.dtype.is_floating_point for t in plan)} non-floating tensors copied from the newest checkpoint"
            )
        shards = plan_shards(plan, max_shard_bytes)
        float_dtypes = {str(t.dtype).removeprefix("torch.") for t in plan if t.dtype.is_floating_point}
        report = AverageReport(
            output=str(Path(output).absolute()),
            sources=[s.label for s in sources],
            steps=[s.step for s in sources],
            weights=weight_values,
            weighting=spec.model_dump(),
            accumulate_dtype=accumulate_dtype,
            output_dtype="/".join(sorted(float_dtypes)) or "none",
            num_tensors=len(plan),
            total_bytes=sum(t.nbytes for t in plan),
            shards=shard_names(len(shards)),
            seconds=0.0,
            notes=notes,
        )
        if dry_run:
            report.seconds = round(time.perf_counter() - start, 3)
            return report

        record = report.model_dump(exclude={"seconds", "output"})
        with atomic_output_dir(Path(output), overwrite) as tmp:
            writer = StreamingShardWriter(tmp, shards, {"format": "pt", "currimix_average": json.dumps(record)})
            try:
                nonfinite = _stream_average(
                    sources, plan, weight_values, acc_dtype, device, writer, progress, not allow_nonfinite
                )
                if nonfinite and not allow_nonfinite:
                    raise UserError(
                        "NaN or inf values would reach the averaged model (from the inputs, or by overflowing the "
                        "output dtype), so nothing was written. Leave the damaged checkpoint out (a diverged run's "
                        "checkpoints are NaN), choose a wider --output-dtype, or pass --allow-nonfinite if the "
                        "model stores such values on purpose:",
                        nonfinite,
                    )
                if nonfinite:
                    report.notes.append(f"written with non-finite values (--allow-nonfinite): {'; '.join(nonfinite)}")
                writer.close()
            finally:
                writer.abort()
            write_index(tmp, shards, {"currimix_average": record})
            _write_config(tmp, sources, float_dtypes)
            for name, path in copied.items():
                shutil.copy2(path, tmp / name)
            report.seconds = round(time.perf_counter() - start, 3)
            write_json(tmp / MARKER_FILE, {"format": 1, "kind": "average", **report.model_dump(exclude={"output"})})
        return report
    finally:
        for s in sources:
            s.close()


def _stream_average(
    sources: list[CheckpointSource],
    plan: list[OutputTensor],
    weights: list[float],
    acc_dtype: torch.dtype,
    device: torch.device,
    writer: StreamingShardWriter,
    progress: bool,
    stop_at_nonfinite: bool = False,
) -> list[str]:
    """Average every planned tensor chunk by chunk; a second thread writes the chunks in order.

    Returns one line per output tensor that came out non-finite, naming the inputs responsible
    and how many of their values are NaN or inf."""
    from tqdm import tqdm

    chunk = CPU_CHUNK_ELEMS if device.type == "cpu" else GPU_CHUNK_ELEMS
    active = [(s, w) for s, w in zip(sources, weights) if w != 0.0]  # zero weights need no reading
    # Chunks travel to the writer thread in buffers from a small pool: a pool per output dtype,
    # plus one accumulator when the output dtype is not the accumulation dtype.
    pools: dict[torch.dtype, queue.Queue] = {}

    def take(dtype: torch.dtype) -> torch.Tensor:
        if dtype not in pools:
            pools[dtype] = queue.Queue()
            for _ in range(WRITE_BUFFERS):
                pools[dtype].put(torch.empty(chunk, dtype=dtype, pin_memory=device.type == "cuda"))
        return pools[dtype].get()

    scratch = torch.empty(chunk, dtype=acc_dtype, device=device)
    bad: dict[str, dict[str, int]] = {}  # tensor -> input label -> non-finite values
    fmax = {t.dtype: torch.finfo(t.dtype).max for t in plan if t.dtype.is_floating_point}
    background = BackgroundWriter(writer, depth=WRITE_BUFFERS)
    bar = tqdm(total=sum(t.nbytes for t in plan), unit="B", unit_scale=True, disable=not progress, desc="averaging")
    try:
        with _cpu_threads(CPU_THREADS):
            for i, t in enumerate(plan):
                if i + 1 < len(plan):  # start the disk reads of the next tensor while this one is summed
                    for s, _ in active:
                        s.prefetch(plan[i + 1].key)
                background.begin(t.key)
                if not t.dtype.is_floating_point:
                    background.write(sources[-1].tensor(t.key).contiguous())
                    bar.update(t.nbytes)
                    continue
                views = [(s.tensor(t.key).reshape(-1), w) for s, w in active]
                n = sources[-1].tensor(t.key).numel()
                for lo in range(0, n, chunk):
                    hi = min(lo + chunk, n)
                    buf = take(t.dtype)
                    direct = t.dtype == acc_dtype and device.type == "cpu"
                    a = buf[: hi - lo] if direct else scratch[: hi - lo]
                    _weighted_sum(a, [(v[lo:hi], w) for v, w in views], device)
                    # One pass over the chunk in cache: min and max are NaN or inf whenever a value
                    # is, and say whether rounding to a narrower output dtype would overflow.
                    low, high = (float(x) for x in a.aminmax())
                    if not (-fmax[t.dtype] <= low and high <= fmax[t.dtype]):
                        counts = bad.setdefault(t.key, {})
                        for (s, _), (v, _) in zip(active, views):
                            n_bad = int((~torch.isfinite(v[lo:hi])).sum())
                            if n_bad:
                                counts[s.label] = counts.get(s.label, 0) + n_bad
                    if not direct:
                        buf[: hi - lo].copy_(a)  # rounds to the output dtype (and leaves the GPU)
                    background.write(buf[: hi - lo], done=lambda b=buf, d=t.dtype: pools[d].put(b))
                bar.update(t.nbytes)
                if bad and stop_at_nonfinite:
                    break  # the average is refused: naming the first such tensor is enough
    except BaseException:
        background.stop(raise_error=False)  # keep the error that is already on its way
        raise
    finally:
        bar.close()
    background.stop()
    sizes = {t.key: math.prod(t.shape) for t in plan}
    dtypes = {t.key: t.dtype for t in plan}
    return [
        f"tensor {key}: "
        + (
            ", ".join(
                f"input {label} has {n} of {sizes[key]} values NaN/inf" + (" (all of them)" if n == sizes[key] else "")
                for label, n in counts.items()
            )
            or f"the weighted sum overflows {str(dtypes[key]).removeprefix('torch.')}"
        )
        for key, counts in bad.items()
    ]


def _weighted_sum(acc: torch.Tensor, terms: list[tuple[torch.Tensor, float]], device: torch.device) -> None:
    """acc = sum of w * x, in acc's dtype."""
    if not terms:
        acc.zero_()
    for j, (x, w) in enumerate(terms):
        if device.type != "cpu":
            x = x.to(device)
        if j == 0:
            acc.copy_(x)  # exact widening; multiplying in the input dtype would round
            acc.mul_(w)
        else:
            acc.add_(x, alpha=w)  # computed in acc's dtype: type promotion of tensor operands


@contextmanager
def _cpu_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _output_plan(first: CheckpointSource, output_dtype: str | None) -> list[OutputTensor]:
    """Output tensors in the first input's file order (sequential reads when the disk is cold)."""
    plan = []
    for key, ref in first.tensors.items():
        dtype = DTYPES[output_dtype] if output_dtype and ref.dtype.is_floating_point else ref.dtype
        plan.append(OutputTensor(key, dtype, ref.shape))
    return plan


def _check_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r}; use 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but torch sees no CUDA device")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"device {device!r} is not supported; use 'cpu' or 'cuda'")
    return dev


def _refuse_overlap_paths(output: Path, paths: list[Path]) -> None:
    """The output is none of the given inputs, inside none and around none: checked before the
    output folder is looked at, so ``--overwrite`` can never name an input."""
    out = output.resolve()
    for path in paths:
        p = path.resolve()
        if out == p or out in p.parents or p in out.parents:
            raise UserError(
                f"output {output} would overwrite or sit inside the input {p}; choose an output folder outside the inputs"
            )


def _refuse_overlap(output: Path, sources: list[CheckpointSource]) -> None:
    """Never write over, inside or around an input (or the config folder it reads)."""
    out = output.resolve()
    for s in sources:
        for p in {s.folder.resolve(), s.config_dir.resolve()}:
            if out == p or out in p.parents or p in out.parents:
                raise UserError(
                    f"output {output} would overwrite or sit inside the input {p}; choose an output folder outside the inputs"
                )


def _check_step_order(sources: list[CheckpointSource], spec: WeightSpec, notes: list[str]) -> None:
    """Order-dependent presets weigh the last input most; make sure the last is the newest."""
    steps = [s.step for s in sources]
    if spec.name in ("ema", "wma") and None not in steps and steps != sorted(steps):
        raise UserError(
            f"{spec.name} weights give the last input the most weight, but the inputs are not in step order "
            f"(steps {steps}); list them oldest first"
        )
    if spec.name in ("ema", "wma") and None in steps:
        notes.append("some inputs have no known step; their given order is taken as oldest to newest")


def _files_to_copy(sources: list[CheckpointSource]) -> dict[str, Path]:
    """Config-side files of the newest input, after checking the inputs agree on them."""
    newest = sources[-1].config_dir
    names = sorted({p.name for pattern in COPIED_FILES for p in newest.glob(pattern) if p.is_file()})
    if sources[-1].config.get("auto_map"):  # trust_remote_code models need their code files
        names += sorted(p.name for p in newest.glob("*.py"))
    for s in sources[:-1]:
        for name in names:
            other = s.config_dir / name
            if other.is_file() and not filecmp.cmp(other, newest / name, shallow=False):
                raise UserError(
                    f"{other} differs from {newest / name}; the checkpoints do not share a tokenizer/config"
                )
    return {name: newest / name for name in names}


def _write_config(folder: Path, sources: list[CheckpointSource], float_dtypes: set[str]) -> None:
    config = dict(sources[-1].config)
    with_arch = [s.config for s in sources if "architectures" in s.config]
    if "architectures" not in config and with_arch:  # a run's model_config may lack it; a snapshot has it
        config["architectures"] = with_arch[-1]["architectures"]
    if len(float_dtypes) == 1:
        for key in ("dtype", "torch_dtype"):  # transformers 5 writes "dtype", 4.x "torch_dtype"
            if key in config:
                config[key] = next(iter(float_dtypes))
    write_json(folder / "config.json", config)
