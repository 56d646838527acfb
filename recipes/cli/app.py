"""The Typer app every `currimix` command registers onto, and the options the commands share.

Command modules import only typer and rich at import time; everything heavy (torch, datasets,
transformers) is imported inside the command that needs it, so `currimix --help` stays fast.
A `UserError` raised by any command is printed as one paragraph on stderr with exit status 2.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer
from rich.console import Console

from curriculum.errors import UserError

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


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a `UserError` into a one-paragraph message on stderr and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            err_console.print(f"error: {exc}", style="bold red", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


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
