"""`currimix prepare`: documents -> scored, tokenized, score-ordered packed token store."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from recipes.cli.app import ProgressOpt, RecipeArg, SetOpt, command, console, load


@command()
def prepare(
    recipe: RecipeArg,
    set_: SetOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Rebuild the token store if it exists.")] = False,
    progress: ProgressOpt = True,
    engine: Annotated[
        str, typer.Option(help="Where units run: local (process pool), datatrove (its local executor).")
    ] = "local",
    unit: Annotated[Optional[int], typer.Option(help="Job arrays: run only units with index % UNITS == UNIT.")] = None,
    units: Annotated[Optional[int], typer.Option(help="Job arrays: the number of array tasks.")] = None,
    tokenizer_only: Annotated[
        bool, typer.Option(help="Only train (or copy) the tokenizer: run once before a job array.")
    ] = False,
) -> None:
    """Documents -> scored, tokenized, score-ordered packed token store (the recipe's `data` section).

    Runs in units of work (one shard each) on all local cores; running it again resumes."""
    from curriculum.store.prepare import prepare_store

    store = prepare_store(
        load(recipe, set_),
        overwrite=overwrite,
        show_progress=progress,
        engine=engine,
        unit=unit,
        units=units,
        tokenizer_only=tokenizer_only,
    )
    if store is None:
        console.print("tokenizer ready" if tokenizer_only else f"units {unit} of {units} done; store not complete yet")
        return
    table = Table(
        "domain",
        "docs",
        "train seqs",
        "val seqs",
        "train tokens",
        "score range",
        title=f"token store {store.root} (seq_len {store.seq_len}, vocab {store.vocab_size})",
    )
    for name in store.domain_names:
        tr, va = store.meta["stats"]["train"][name], store.meta["stats"]["val"][name]
        lo, hi = tr["score_min"], tr["score_max"]
        table.add_row(
            name,
            f"{tr['documents'] + va['documents']:,}",
            f"{tr['sequences']:,}",
            f"{va['sequences']:,}",
            f"{tr['tokens']:,}",
            "-" if lo is None else f"{lo:.3g} .. {hi:.3g}",
        )
    console.print(table)
