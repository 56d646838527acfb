"""`currimix sweep`: run a grid of recipe variants x seeds and tabulate the results.

`grid` (the grid file schema and its variants), `fitting` (scorers the grid fits, Spearman against a
true-quality column), `runner` (fit, prepare the store (one per data section with `stores: per-data`),
train each variant in turn or print the cluster commands, average from snapshots, evaluate, record;
finished variants are skipped), `report` (CSV, Markdown with seed spread and paired differences, plots).
"""

from __future__ import annotations

from recipes.sweep.grid import Grid, GridConfig, Variant, load_grid
from recipes.sweep.report import write_report
from recipes.sweep.runner import commands, run_grid

__all__ = ["Grid", "GridConfig", "Variant", "commands", "load_grid", "run_grid", "write_report"]
