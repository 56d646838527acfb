"""`currimix presets` and `currimix recipe show`: the shipped recipes, and a recipe fully resolved."""

from __future__ import annotations

import typer
from rich.table import Table

from recipes.cli.app import RecipeArg, SetOpt, app, command, console, load

recipe_app = typer.Typer(help="Inspect recipes.", no_args_is_help=True, add_completion=False)
app.add_typer(recipe_app, name="recipe")


@command()
def presets() -> None:
    """List the shipped recipe presets."""
    from recipes.loading import PRESETS_DIR

    table = Table("preset", "what it is")
    for path in sorted(PRESETS_DIR.glob("*.yaml")):
        first = path.read_text().splitlines()[0] if path.stat().st_size else ""
        table.add_row(path.stem, first.lstrip("# "))
    console.print(table)


@command("show", typer_app=recipe_app)
def show(recipe: RecipeArg, set_: SetOpt = None) -> None:
    """Print the resolved recipe: `extends` followed, `--set` applied, every default filled in."""
    from recipes.loading import dump_recipe

    typer.echo(dump_recipe(load(recipe, set_)), nl=False)
