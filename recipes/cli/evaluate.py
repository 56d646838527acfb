"""`currimix eval`: per-domain validation loss of model folders, side by side."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from curriculum.files import write_json_atomic
from recipes.cli.app import check_output_file, command, print_losses, quiet_transformers


@command("eval")
def eval_(
    models: Annotated[
        list[Path], typer.Argument(help="Model folders (save_pretrained / snapshots / averaged outputs).")
    ],
    store: Annotated[Path, typer.Option(help="Token store folder to evaluate on.")],
    split: Annotated[str, typer.Option(help="Store split: val or train.")] = "val",
    per_domain: Annotated[int, typer.Option(min=1, help="Sequences per domain (evenly spaced).")] = 64,
    batch_size: Annotated[int, typer.Option(min=1, help="Sequences per forward pass.")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the table as JSON.")] = None,
) -> None:
    """Per-domain validation loss of one or more models, side by side."""
    from tools.evaluate.folders import evaluate_folder

    if json_out is not None:  # before any work, and never over a file of the models or the store it reads
        inputs = {f"the model folder {str(m)!r}": m for m in models}
        check_output_file(json_out, "--json", {**inputs, "the token store": store})
    quiet_transformers()
    results = {
        str(m): evaluate_folder(
            m, store, split=split, per_domain=per_domain, micro_batch_size=batch_size, device=device
        )
        for m in models
    }
    print_losses(results, title=f"{split} loss per domain ({store})")
    diverged = [
        m for m, losses in results.items() if any(not math.isfinite(v) for v in losses.values() if v is not None)
    ]
    for m in diverged:
        typer.echo(f"note: {m}: a loss is NaN or inf (its weights hold non-finite values, or it diverged)", err=True)
    if json_out:
        write_json_atomic(json_out, results)  # atomic: a kill leaves no half file
