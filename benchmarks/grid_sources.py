"""Which sources fill which quality quintile of a prepared store: a check that a grid's scorer ranks
its high- and low-quality sources the way the grid assumes.

    python benchmarks/grid_sources.py runs/sweeps/curriculum-lr-averaging/cpu/recipes/<any variant>.yaml

Prints, per domain and source of the recipe: documents and tokens in the store (train + val), the
mean token-weighted within-domain score quantile of its documents, and the share of its tokens in
the domain's top and bottom quality quintiles. The baseline is the uniform expectation: a source
the scorer cannot tell apart from the rest has mean quantile 0.5 and 20% of its tokens in each
quintile.
"""

from __future__ import annotations

import sys

import pandas as pd
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from curriculum.documents import load_documents
from curriculum.store import TokenStore
from recipes.loading import load_recipe


def main(path: str) -> None:
    recipe = load_recipe(path)
    store = TokenStore(recipe.store_path)
    # Each shard's split folder holds its documents (the store's segments name them, in either store format).
    folders = dict.fromkeys(s.folder for split in ("train", "val") for s in store.splits[split].segments)
    docs = [pq.read_table(folder / "documents.parquet").to_pandas() for folder in folders]
    table = Table("domain", "source", "docs", "tokens", "mean quantile", "tokens in Q5", "tokens in Q1")
    for domain, config in recipe.data.domains.items():
        rows = [d[d["domain"] == domain] for d in docs]
        frame = pd.concat(rows).sort_values("score", kind="stable")
        cumulative = frame["tokens"].cumsum().to_numpy()
        frame = frame.assign(quantile=(cumulative - frame["tokens"].to_numpy() / 2) / cumulative[-1])
        for i, source in enumerate(config.sources):
            ids = set(load_documents(source, source_name=f"{domain}/{i}")["id"])
            mine = frame[frame["id"].isin(ids) | frame["id"].str.split("#").str[0].isin(ids)]
            tokens = mine["tokens"].to_numpy()
            q = mine["quantile"].to_numpy()
            weight = tokens / max(tokens.sum(), 1)
            table.add_row(
                domain,
                source.path.split("/data/")[-1] + (f" {source.where}" if source.where else ""),
                str(len(mine)),
                f"{tokens.sum():,}",
                f"{(q * weight).sum():.2f}",
                f"{weight[q >= 0.8].sum():.0%}",
                f"{weight[q < 0.2].sum():.0%}",
            )
    Console(width=160).print(table)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
