"""Every shipped grid, at every size, passes `currimix sweep GRID --size SIZE --print-commands`.

That command validates what a sweep would train before anything heavy starts: the grid file, every
variant's recipe (base + axes + size + seed), that the variants share one token store (or, with
`stores: per-data`, one store per data section), and that the
averaged models have their snapshots. A renamed key or a stricter rule that breaks a shipped grid
fails here, not on a user's machine (README and docs/results.md name these files).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from recipes.loading import load_recipe, preset_path
from recipes.sweep.grid import read_grid

GRIDS = sorted(preset_path("quickstart").parent.joinpath("grids").glob("*.yaml"))
SHARED_DATA = Path("../shared/data")


def grid_sizes() -> list[tuple[Path, str]]:
    return [(path, size) for path in GRIDS for size in read_grid(path).sizes]


def test_every_grid_is_listed() -> None:
    assert len(GRIDS) >= 3


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the shipped grids read ../shared/data (run from the repo root)")
@pytest.mark.parametrize("grid, size", grid_sizes(), ids=lambda v: v.stem if isinstance(v, Path) else v)
def test_shipped_grid_prints_its_commands(grid: Path, size: str, tmp_path: Path, monkeypatch) -> None:
    from recipes.cli import app

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)  # the grids' paths (../shared/data, runs/...) are relative to the repo root
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["sweep", str(grid), "--size", size, "--print-commands", "--out", str(out)])
    assert result.exit_code == 0, result.output
    commands = [json.loads(line) for line in result.output.strip().splitlines()]
    config = read_grid(grid)
    n_cells = 1
    for values in config.axes.values():
        n_cells *= len(values)
    prepares = [args for args in commands if args[:2] == ["currimix", "prepare"]]
    assert len(commands) == len(prepares) + n_cells * len(config.seeds)
    seeds, stores = set(), set()
    for args in commands[len(prepares) :]:
        recipe = load_recipe(args[5])  # what `train` will read
        stores.add(recipe.data.store)
        seeds.add(yaml.safe_load(Path(args[5]).read_text())["seed"])
    assert seeds == set(config.seeds)
    # one store, or with `stores: per-data` one per distinct data section, each prepared once
    expected = {str(out / "store")} if config.stores == "shared" else stores
    assert stores == expected and len(prepares) == len(stores)
    assert all(Path(s).parent == out / "stores" for s in stores) or config.stores == "shared"
