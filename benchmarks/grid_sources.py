"""Which sources fill which quality quintile of a prepared store: a check that a grid's scorer ranks
its high- and low-quality sources the way the grid assumes.

    python benchmarks/grid_sources.py [RECIPE]
    (e.g. runs/sweeps/curriculum-lr-averaging/cpu/recipes/<any variant>.yaml after a sweep)

Without RECIPE: the base of that grid, ``recipes/presets/grid-curriculum.yaml``, on the shared
data (`benchmarks/harness.py`: ``<repo>/../shared/data`` or ``$CURRIMIX_BENCH_DATA``) with its
store under the benchmark cache, prepared on first use (~1 minute on 2 cores).

Prints, per domain and source of the recipe: documents and tokens in the store (train + val), the
mean token-weighted within-domain score quantile of its documents, and the share of its tokens in
the domain's top and bottom quality quintiles. The baseline is the uniform expectation: a source
the scorer cannot tell apart from the rest has mean quantile 0.5 and 20% of its tokens in each
quintile.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", nargs="?", help="a recipe whose store is prepared (default: see above)")
    return parser


if __name__ == "__main__" and {"-h", "--help"} & set(sys.argv[1:]):
    build_parser().parse_args()  # prints the help and exits before importing pandas, pyarrow and currimix

import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks.*` from a checkout

from benchmarks import harness  # noqa: E402
from curriculum.documents import load_documents  # noqa: E402
from curriculum.store.reader import TokenStore, is_complete_store  # noqa: E402
from recipes.loading import load_recipe, recipe_from_dict  # noqa: E402

DEFAULT_PRESET = harness.REPO / "recipes" / "presets" / "grid-curriculum.yaml"


def default_recipe():
    """The grid's base preset, its sources on the shared data, its store in the cache (built if missing)."""
    raw = load_recipe(DEFAULT_PRESET).model_dump(mode="json")
    for domain in raw["data"]["domains"].values():
        for source in domain["sources"]:
            source["path"] = str(harness.preset_path(source["path"]))
    raw["data"]["store"] = str(harness.cache_dir("grid_sources", raw["name"]) / "store")
    raw["run_dir"] = str(harness.cache_dir("grid_sources", raw["name"]) / "run")
    recipe = recipe_from_dict(raw)
    if not is_complete_store(recipe.store_path):
        from curriculum.store.prepare import prepare_store

        print(f"preparing {recipe.store_path} (first use)", file=sys.stderr, flush=True)
        prepare_store(recipe, show_progress=False)
    return recipe


def main(path: str | None) -> None:
    if path is None:
        harness.require_data()
    recipe = load_recipe(path) if path else default_recipe()
    print(harness.header(f"sources per quality quintile: {path or DEFAULT_PRESET.name}"))
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
            # Ids the store generated (`<domain>/<source>:<file>@<byte>` or `...:<row>`, see
            # curriculum/store/prepare/readers.py) differ from `load_documents`' row-numbered ones: match their prefix.
            generated = frame["id"].str.startswith(f"{domain}/{i}:")
            mine = frame[generated | frame["id"].isin(ids) | frame["id"].str.split("#").str[0].isin(ids)]
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
    main(build_parser().parse_args().recipe)
