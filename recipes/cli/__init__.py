"""The `currimix` command line (Typer), one module per command group.

`recipe` (presets, recipe show), `prepare`, `store` (store verify), `plan`, `train` (train, run, quickstart),
`sweep`, `results` (docs/results.md from the grids), `evaluate` (eval), `average`, `score`, `schedule`
(loss-curve laws fitted to finished runs, ranked candidate schedules). Every command
takes a recipe (a YAML path or a preset name) plus
``--set key.path=value`` overrides; user mistakes exit with status 2 and a message naming the
problem, and nothing heavy is imported before a command runs. The CLI and `recipes.runner`
are the only places where `recipes` reaches into `tools`.
"""

from __future__ import annotations

from recipes.cli.offline import enforce_offline

# Local paths only, for every command and whatever the caller's environment says (forced, not a
# default): datasets and huggingface_hub read these when first imported, which happens inside the
# commands below; each command calls `enforce_offline` again for in-process callers.
enforce_offline()

from recipes.cli import average, evaluate, plan, prepare, recipe, results, schedule, score, store, sweep, train  # noqa: E402,F401  (each registers its commands)
from recipes.cli.app import app  # noqa: E402

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
