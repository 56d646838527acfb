"""`currimix eval`: per-domain validation loss of model folders, side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from recipes.cli.app import command, print_losses, quiet_transformers


@command("eval")
def eval_(
    models: Annotated[
        list[Path], typer.Argument(help="Model folders (save_pretrained / snapshots / averaged outputs).")
    ],
    store: Annotated[Path, typer.Option(help="Token store folder to evaluate on.")],
    split: Annotated[str, typer.Option(help="Store split: val or train.")] = "val",
    per_domain: Annotated[int, typer.Option(help="Sequences per domain (evenly spaced).")] = 64,
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the table as JSON.")] = None,
) -> None:
    """Per-domain validation loss of one or more models, side by side."""
    from tools.evaluate import evaluate_folder

    quiet_transformers()
    results = {
        str(m): evaluate_folder(
            m, store, split=split, per_domain=per_domain, micro_batch_size=batch_size, device=device
        )
        for m in models
    }
    print_losses(results, title=f"{split} loss per domain ({store})")
    if json_out:
        json_out.write_text(json.dumps(results, indent=2))
