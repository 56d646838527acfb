"""`currimix average`: a weighted average of checkpoints, streamed tensor by tensor, into a model folder.

Weights use the presets of `tools.average.weights` (the same ones a recipe's ``averaging.weights``
names); the averaging itself is `tools.average`.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from curriculum.errors import UserError
from recipes.cli.app import command, quiet_transformers

# Enums rather than Literal so typer shows and checks the choices on every supported version.


class SourceChoice(str, Enum):
    snapshots = "snapshots"
    checkpoints = "checkpoints"


class EMAFormChoice(str, Enum):
    normalized = "normalized"
    recursive = "recursive"


class AccumulateDtypeChoice(str, Enum):
    float32 = "float32"
    float64 = "float64"


class OutputDtypeChoice(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"
    float64 = "float64"


# The command's arguments and options (typer reads them from the annotations).
InputsArg = Annotated[
    Optional[list[Path]],
    typer.Argument(
        help="Checkpoint folders to average, oldest first: snapshots, save_pretrained folders "
        "(safetensors, sharded or pytorch_model.bin) or Accelerate save_state folders. Leave out when using --run.",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Path, typer.Option("--output", "-o", help="Folder to write the averaged model to (appears only when complete).")
]
RunOpt = Annotated[
    Optional[Path],
    typer.Option("--run", help="Run folder of `currimix train` to pick checkpoints from (with --last/--every)."),
]
LastOpt = Annotated[Optional[int], typer.Option("--last", min=1, help="With --run: average the K newest checkpoints.")]
EveryOpt = Annotated[
    Optional[int],
    typer.Option("--every", min=1, help="With --run: only checkpoints whose step is a multiple of S."),
]
SourceOpt = Annotated[
    SourceChoice,
    typer.Option("--from", help="With --run: pick from snapshots (weights only) or checkpoints (save_state)."),
]
WeightsOpt = Annotated[
    str,
    typer.Option(
        "--weights",
        "-w",
        help="'sma' (uniform), 'ema' (needs --alpha), 'wma' (linear), 'wsm' (merge emulating a decay: "
        "--wsm-shape, --wsm-final), or one comma-separated weight per checkpoint, oldest first.",
    ),
]
AlphaOpt = Annotated[
    Optional[float], typer.Option("--alpha", help="EMA alpha in (0, 1]: w_i ~ (1-alpha)^(K-i), newest heaviest.")
]
EmaFormOpt = Annotated[
    EMAFormChoice,
    typer.Option(
        "--ema-form",
        help="normalized: w_i ~ (1-alpha)^(K-i), summing to 1; recursive: the EMA recursion seeded from the oldest checkpoint.",
    ),
]
WSMShapeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--wsm-shape", help="With --weights wsm: the decay shape the merge emulates (linear, cosine, 1-sqrt)."
    ),
]
WSMFinalOpt = Annotated[
    Optional[float], typer.Option("--wsm-final", help="With --weights wsm: LR / peak the emulated decay ends at.")
]
NormalizeOpt = Annotated[bool, typer.Option("--normalize/--no-normalize", help="Scale explicit weights to sum to 1.")]
AccumulateDtypeOpt = Annotated[
    AccumulateDtypeChoice, typer.Option("--accumulate-dtype", help="Dtype of the running sum: float32 or float64.")
]
OutputDtypeOpt = Annotated[
    Optional[OutputDtypeChoice],
    typer.Option("--output-dtype", help="Dtype to write floating tensors in; default: the inputs' dtype."),
]
ShardSizeOpt = Annotated[str, typer.Option("--shard-size", help="Largest output shard, e.g. 5GB (10^9 bytes) or 2GiB.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="Where to accumulate: cpu or cuda.")]
ConfigFromOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--config-from",
        help="Folder with config.json and tokenizer for inputs that lack them (save_state folders outside a run).",
    ),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace an earlier averaged model at --output (never an input, a run's checkpoints or any other folder).",
    ),
]
AllowNonfiniteOpt = Annotated[
    bool,
    typer.Option(
        "--allow-nonfinite",
        help="Write the average even when inputs hold NaN or inf values (they are listed); refused by default.",
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Check the inputs and print the weights without writing anything.")
]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar (on stderr).")]


@command("average")
def average_command(
    inputs: InputsArg = None,
    output: OutputOpt = ...,
    run: RunOpt = None,
    last: LastOpt = None,
    every: EveryOpt = None,
    source: SourceOpt = SourceChoice.snapshots,
    weights: WeightsOpt = "sma",
    alpha: AlphaOpt = None,
    ema_form: EmaFormOpt = EMAFormChoice.normalized,
    wsm_shape: WSMShapeOpt = None,
    wsm_final: WSMFinalOpt = None,
    normalize: NormalizeOpt = True,
    accumulate_dtype: AccumulateDtypeOpt = AccumulateDtypeChoice.float32,
    output_dtype: OutputDtypeOpt = None,
    shard_size: ShardSizeOpt = "5GB",
    device: DeviceOpt = "cpu",
    config_from: ConfigFromOpt = None,
    overwrite: OverwriteOpt = False,
    allow_nonfinite: AllowNonfiniteOpt = False,
    dry_run: DryRunOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Average checkpoints (uniform, EMA, linear, WSM or explicit weights) into a model folder that loads with transformers."""
    from tools.average import average_checkpoints, select_run_checkpoints
    from tools.average.weights import parse_weight_text

    quiet_transformers()
    if run is not None:
        if inputs:
            raise UserError("give either checkpoint folders or --run, not both")
        inputs = select_run_checkpoints(run, last=last, every=every, source=source.value)  # type: ignore[arg-type]
    elif last is not None or every is not None:
        raise UserError("--last and --every pick from a run folder; add --run RUN_DIR")
    if not inputs:
        raise UserError("no checkpoints given; pass folders or --run RUN_DIR --last K")
    spec = parse_weight_text(
        weights, alpha=alpha, ema_form=ema_form.value, normalize=normalize, wsm_shape=wsm_shape, wsm_final=wsm_final
    )
    report = average_checkpoints(
        inputs,
        output,
        spec,
        accumulate_dtype=accumulate_dtype.value,  # type: ignore[arg-type]
        output_dtype=output_dtype.value if output_dtype else None,  # type: ignore[arg-type]
        shard_size=shard_size,
        device=device,
        config_from=config_from,
        overwrite=overwrite,
        dry_run=dry_run,
        allow_nonfinite=allow_nonfinite,
        progress=progress,
    )
    for src, step, w in zip(report.sources, report.steps, report.weights):
        typer.echo(f"  {w:8.5f}  step {step if step is not None else '?':>8}  {src}")
    for note in report.notes:
        typer.echo(f"note: {note}")
    verb = "would write" if dry_run else "wrote"
    typer.echo(
        f"{verb} {report.output}: {report.num_tensors} tensors, {report.total_bytes / 1e9:.2f} GB "
        f"in {len(report.shards)} shard(s), {report.output_dtype}, in {report.seconds:.1f} s"
    )
