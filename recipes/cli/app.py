"""The Typer app every `currimix` command registers onto, and the options the commands share.

Command modules import only typer and rich at import time; everything heavy (torch, datasets,
transformers) is imported inside the command that needs it, so `currimix --help` stays fast.
A `UserError` raised by any command is printed as one paragraph on stderr with exit status 2.
"""

from __future__ import annotations

import errno
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer
from rich.console import Console

from curriculum.errors import UserError
from recipes.cli.offline import enforce_offline

if TYPE_CHECKING:
    from recipes.config import Recipe

app = typer.Typer(
    help="Curriculum and data-mixture pretraining: score, order, mix, co-schedule with the LR and "
    "checkpoint averaging.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

RecipeArg = Annotated[
    str, typer.Argument(help="Recipe YAML file, or the name of a shipped preset (see `currimix presets`).")
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a recipe value: key.path=value (value parsed as YAML); repeatable."),
]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]


# File-system failures a user causes or fixes (permissions, a full or read-only disk, a path through
# a regular file): reported like a UserError, naming the path. Other OSErrors stay tracebacks.
USER_OS_ERRORS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
    errno.ELOOP,
}


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a `UserError` (or a file-system error the user can fix) into a one-paragraph message on
    stderr and exit status 2. Under a launcher only rank 0 prints it: every rank reads the same
    recipe and files, so the others would repeat the same message."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        enforce_offline()
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            _report(str(exc))
            raise typer.Exit(2) from None
        except OSError as exc:
            if exc.errno not in USER_OS_ERRORS:
                raise
            _report(describe_os_error(exc))
            raise typer.Exit(2) from None

    return wrapper


def describe_os_error(exc: OSError) -> str:
    """One sentence for a file-system error: the path, the cause, and a file blocking the path."""
    path = Path(exc.filename) if exc.filename else None
    if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP):
        from curriculum.paths import check_path_text

        try:
            if path is not None:
                check_path_text(path, "the path")  # names the over-long name, when that is the cause
        except UserError as named:
            return f"cannot use {str(path)[:80]!r}...: {named}"
        why = "a symbolic link loop" if exc.errno == errno.ELOOP else "a path too long for the file system"
        return f"cannot use {str(path)!r}: {why}; choose another path"
    blocker = _blocking_file(path) if path is not None else None
    if blocker is not None:
        return f"cannot create {str(path)!r}: {str(blocker)!r} is a file, not a folder"
    where = f" {str(path)!r}" if path is not None else ""
    return f"cannot write or read{where}: {exc.strerror or exc}; choose another folder or fix its permissions"


def _blocking_file(path: Path) -> Path | None:
    """The regular file standing where ``path`` needs a folder (itself, or one of its parents)."""
    # os.path's tests never raise (an over-long or looping path is simply not there)
    return next((p for p in (path, *path.parents) if os.path.exists(p) and not os.path.isdir(p)), None)


def check_output_file(path: Path, what: str, inputs: dict[str, Path] | None = None) -> None:
    """Before any work: a file can be written at ``path``, and it is none of ``inputs`` (see
    `curriculum.paths.check_output_path`)."""
    from curriculum.paths import check_output_path

    check_output_path(path, what, inputs)


def _report(message: str) -> None:
    if os.environ.get("RANK", "0") == "0":
        err_console.print(f"error: {message}", style="bold red", markup=False, highlight=False, soft_wrap=True)


def command(
    name: str | None = None, typer_app: typer.Typer = app
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a command on ``typer_app`` with the user-error handling every command has."""

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        typer_app.command(name)(user_errors(fn))
        return fn

    return decorator


def load(recipe: str, overrides: list[str] | None) -> "Recipe":
    """The recipe named on the command line (a YAML path or a preset) with its ``--set`` overrides."""
    from recipes.loading import load_recipe, resolve_recipe_path

    return load_recipe(resolve_recipe_path(recipe), overrides or [])


def quiet_transformers() -> None:
    """transformers' per-file save/load bars are noise next to our own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def print_losses(results: dict[str, dict[str, float]], title: str) -> None:
    """A table of per-domain losses, one row per model, with the mean."""
    from rich.table import Table

    domains = sorted({d for r in results.values() for d in r})
    table = Table("model", *domains, "mean", title=title)
    for name, losses in results.items():
        values = [losses.get(d) for d in domains]
        present = [v for v in values if v is not None]
        table.add_row(
            name,
            *("-" if v is None else f"{v:.4f}" for v in values),
            f"{sum(present) / len(present):.4f}" if present else "-",
        )
    console.print(table)
