"""`currimix store verify`: every file of a token store read whole and compared with its SHA-256."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curriculum.errors import UserError
from recipes.cli.app import ProgressOpt, app, command, console

store_app = typer.Typer(help="Inspect token stores.", no_args_is_help=True, add_completion=False)
app.add_typer(store_app, name="store")


@command("verify", typer_app=store_app)
def verify(
    store: Annotated[Path, typer.Argument(help="The token store folder (a recipe's data.store).")],
    progress: ProgressOpt = True,
) -> None:
    """Check every file of a token store against the sizes and SHA-256 sums `prepare` wrote into its
    manifest (opening a store checks only sizes and sampled blocks). Exit 2 names each damaged file."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from curriculum.store.reader import verify_store

    with Progress(
        "{task.description}", BarColumn(), DownloadColumn(), TimeRemainingColumn(), disable=not progress
    ) as bar:
        task = bar.add_task("verify", total=None)

        def on_file(name: str, size: int) -> None:
            bar.update(task, advance=size, description=f"verify {name}")

        try:
            count, problems = verify_store(store, on_file)
        except OSError as exc:  # a name too long, an unreadable file: every path here is the store's
            raise UserError(f"token store {str(store)!r} cannot be read ({exc.strerror or exc})") from None
    if problems:
        raise UserError(
            f"token store {str(store)!r}: {len(problems)} of {count} files are damaged (changed since `prepare` "
            "wrote them); rebuild the store with `currimix prepare --overwrite`:",
            problems,
        )
    console.print(f"token store {str(store)!r}: all {count} files match their size and SHA-256")
