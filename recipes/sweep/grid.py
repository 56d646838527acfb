"""A sweep grid: a base recipe, axes of `--set`-style overrides, seeds, sizes, averaging variants.

    name: temperature-cooldown
    base: grid-temperature            # a preset name, or a recipe YAML path relative to this file
    seeds: [0, 1]
    sizes:                            # overrides per size; `currimix sweep grid.yaml --size gpu`
      cpu: {}
      gpu: {model.hidden_size: 768, model.num_layers: 12, training.steps: 3000}
    axes:                             # every combination of one value per axis is a training run
      tau:
        "1": {mixture.mixer: {name: temperature, tau: 1}}
        "5": {mixture.mixer: {name: temperature, tau: 5}}
    corpus: {builder: quality-dial, source: ..., out: runs/testbed/quality-dial}   # optional, built first
    fit:                              # optional: scorers the grid fits (`currimix sweep` only), skipped when done
      ngram: {scorer: {name: ngram}, positive: [{path: ref.jsonl}], out: runs/scorers/ngram}
    stores: per-data                  # optional: variants whose data differ get one store each (default: shared)
    truth: {domain: dial, field: quality}   # optional: Spearman of each variant's scorer vs a true-quality column
    averaging:                        # optional: models computed from each run's own snapshots
      last: null                      # the final model
      ema6: {last: 6, weights: {name: ema, alpha: 0.2}}
    references: [{tau: "1"}]          # every cell vs the tau=1 cell with the same other labels
    metrics: [val/mean, val/q5]       # columns of the Markdown table (the CSV has all)

Overrides are dotted recipe keys with YAML values, applied in order: base recipe, axes (in the
order they are listed), size, then ``seed``; the size comes after the axes so that it can rescale
what an axis chose (``schedule.peak_lr`` of whichever schedule, ``training.steps``). Averaging variants never retrain: they average the
last ``last`` averaging snapshots of the run the recipe already takes.

By default a grid's variants share one token store (``<out>/store``) and a variant that changes the
data or tokenizer sections is refused. ``stores: per-data`` lifts that for grids whose axes change the
data (e.g. a scorer per variant): each distinct data section gets its own store,
``<out>/stores/<data key>``, and the runner checks that every store trained the same tokenizer (losses
are only comparable under one tokenizer).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from curriculum.errors import UserError
from curriculum.paths import PLAIN_NAME
from curriculum.registry import StrictModel, validation_problems
from tools.average.weights import WeightSpec
from tools.testbed import QualityDialConfig

Overrides = dict[str, Any]


class AveragedModel(StrictModel):
    """A model averaged from the last ``last`` snapshots of a run."""

    last: int = Field(ge=1, description="How many of the run's newest averaging snapshots to average.")
    weights: WeightSpec = Field(description="Their weights, oldest first: {name: ema, alpha: 0.2}, {name: sma}, ...")


class Claim(StrictModel):
    """A published claim as a contrast of cells, with the sign it predicts (recipes/sweep/stats.py).

    ``terms`` are ``[coefficient, {axis: label, ..., averaging: label}]`` pairs; the contrast is
    sum_i c_i * metric(cell_i), computed per seed and then summarised with a paired 95% interval.
    """

    claim: str = Field(description="The claim in one sentence, as the paper makes it.")
    source: str = Field("", description="Where it comes from (paper, section).")
    metric: str = Field(description="The metric column the contrast is computed on (e.g. val/clean).")
    terms: list[tuple[float, dict[str, str]]] = Field(
        min_length=1,
        description="[coefficient, cell] pairs; a cell names every axis (averaging defaults to the final model).",
    )
    expect: Literal["negative", "positive"] = Field(
        description="The sign the claim predicts for the contrast (a loss: negative = lower = better)."
    )


class FitSource(StrictModel):
    """Documents a fitted scorer learns from: a JSON-lines (or any `load_documents`) file, optionally sampled."""

    path: str = Field(description="Documents file, relative to the working directory (like the recipes' sources).")
    sample: int | None = Field(
        None, ge=1, description="Use this many documents drawn at random with the fit's seed; None = all of them."
    )


class FitSpec(StrictModel):
    """A trainable scorer the grid fits before it prepares its stores (recipes/sweep/fitting.py).

    Deterministic for a spec, and skipped when ``out`` already holds a fit of this exact spec, so a
    fresh clone fits once and a rerun never refits. The variants name the result as the scorer's
    ``path`` (e.g. ``data.domains.dial.scorer: {name: ngram, path: <out>}``).
    """

    scorer: dict[str, Any] = Field(description="The scorer config without `path`: {name: ngram, order: 4, ...}.")
    positive: list[FitSource] = Field(min_length=1, description="Good documents (a reference LM learns only these).")
    negative: list[FitSource] = Field(default_factory=list, description="Bad documents (the classifier's negatives).")
    seed: int = Field(0, ge=0, description="Seed of the document samples.")
    out: str = Field(description="Folder the fitted scorer is written to (scorer.json + state).")

    @model_validator(mode="after")
    def _trainable(self) -> "FitSpec":
        from curriculum.scorers import SCORERS, parse_scorer_config

        if "path" in self.scorer:
            raise ValueError("scorer: drop `path`; the fit writes to `out`")
        name = parse_scorer_config(self.scorer).name
        if not getattr(SCORERS._lookup(name)[0], "trainable", False):
            raise ValueError(f"the {name} scorer has nothing to fit; list only trainable scorers under `fit`")
        return self


class TruthCheck(StrictModel):
    """How well each variant's scorer ranks a domain's documents against a known quality column."""

    domain: str = Field(description="The domain whose documents are scored (e.g. dial, the training pool).")
    field: str = Field(description="The column holding the true quality (e.g. quality of the quality-dial corpus).")


class GridConfig(StrictModel):
    """The schema of a grid file (see the module docstring)."""

    name: str = Field(description="Grid name; results go to runs/sweeps/<name>/<size> by default.")
    base: str = Field(description="Base recipe: a preset name or a YAML path relative to the grid file.")
    seeds: list[int] = Field(min_length=1, description="Seeds run for every cell (>= 2 to see seed noise).")
    sizes: dict[str, Overrides] = Field(
        default_factory=lambda: {"cpu": {}}, description="Named sizes, each a set of overrides (e.g. cpu, gpu)."
    )
    axes: dict[str, dict[str, Overrides]] = Field(
        min_length=1, description="Axis name -> {value label -> overrides}; the grid is their product."
    )
    averaging: dict[str, AveragedModel | None] = Field(
        default_factory=lambda: {"last": None},
        description="Evaluated models per run: label -> null (the final model) or an average of its snapshots.",
    )
    references: list[dict[str, str]] = Field(
        default_factory=list,
        description="Comparisons, one Markdown table each: {axis: label} compares every cell with the cell that "
        "has that label on that axis and the same labels elsewhere (e.g. {order: random}: ascending vs random "
        "at each LR and averaging); `averaging` counts as an axis.",
    )
    metrics: list[str] = Field(
        default_factory=lambda: ["val/mean"], description="Metric columns of the Markdown table, in order."
    )
    plot_metrics: list[str] | None = Field(None, description="Metrics of the final-loss bar plot; default: `metrics`.")
    eval_sequences_per_domain: int = Field(
        256, ge=1, description="Held-out (and train) sequences evaluated per domain."
    )
    claims: list[Claim] = Field(
        default_factory=list, description="Published claims as contrasts of cells, each given a verdict."
    )
    corpus: QualityDialConfig | None = Field(
        None,
        description="A corpus the base recipe reads, built (deterministically, once per config) before the "
        "store: the quality-dial testbed (tools/testbed.py).",
    )
    fit: dict[str, FitSpec] = Field(
        default_factory=dict,
        description="Scorers fitted by `currimix sweep` before the stores are prepared (not by --print-commands): "
        "label -> {scorer, positive, negative, seed, out}.",
    )
    stores: Literal["shared", "per-data"] = Field(
        "shared",
        description="`shared`: every variant reads one token store (a variant changing the data is refused); "
        "`per-data`: one store per distinct data section, under <out>/stores/, all with the same tokenizer.",
    )
    truth: TruthCheck | None = Field(
        None,
        description="Record truth/spearman per run: the Spearman correlation of the variant's scorer on "
        "`domain` with the documents' `field` (left out where the score picks nothing: random subset and order).",
    )

    @model_validator(mode="after")
    def _plain_names(self) -> "GridConfig":
        # The grid's name, a size and an averaging label become folders (runs/sweeps/<name>/<size>, a run's
        # averaged/<label>): one plain name each,
        # so `..`, `/abs` or `a/b` can never put a sweep's outputs outside the sweep folder.
        bad = [f"name {self.name!r}"] if not PLAIN_NAME.fullmatch(self.name) else []
        bad += [f"size {size!r}" for size in self.sizes if not PLAIN_NAME.fullmatch(size)]
        bad += [f"averaging label {label!r}" for label in self.averaging if not PLAIN_NAME.fullmatch(label)]
        if bad:
            raise ValueError(
                f"{', '.join(bad)}: each becomes a folder, so it must be one plain name (letters, digits, '.', '_' "
                "or '-', not starting with '.')"
            )
        return self

    @model_validator(mode="after")
    def _consistent(self) -> "GridConfig":
        for axis, values in self.axes.items():
            if not values:
                raise ValueError(f"axis {axis!r} has no values")
            for label in [axis, *values]:
                # Labels become part of each variant's run name and folder (<grid>-<axis>-<label>__seed0).
                if not PLAIN_NAME.fullmatch(label):
                    raise ValueError(
                        f"axis {axis!r}: {label!r} must be a plain name (letters, digits, '.', '_' or '-', not "
                        "starting with '.'): it becomes part of each variant's run name; e.g. 10pct, not 10%"
                    )
        if "averaging" in self.axes or "seed" in self.axes:
            raise ValueError("`averaging` and `seed` are built-in columns; name the axis differently")
        known = {**{a: set(v) for a, v in self.axes.items()}, "averaging": set(self.averaging)}
        for reference in self.references:
            for key, label in reference.items():
                if key not in known:
                    raise ValueError(f"references name {key!r}, which is neither an axis nor `averaging`")
                if label not in known[key]:
                    raise ValueError(f"reference {key}={label!r} is not one of {sorted(known[key])}")
        for i, claim in enumerate(self.claims):
            for _, cell in claim.terms:
                missing = sorted(set(self.axes) - set(cell))
                if missing:
                    raise ValueError(f"claims.{i}: a term must name every axis; {cell} lacks {missing}")
                for key, label in cell.items():
                    if key not in known or label not in known[key]:
                        raise ValueError(f"claims.{i}: {key}={label!r} is not a label of this grid")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat: {self.seeds}")
        return self


def to_set_args(overrides: Overrides) -> list[str]:
    """Overrides as `--set key=value` strings (flow-style YAML values)."""
    out = []
    for key, value in overrides.items():
        text = yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip()
        out.append(f"{key}={text.removesuffix('...').strip()}")
    return out


@dataclass(frozen=True)
class Variant:
    """One training run of the grid: one label per axis and a seed."""

    labels: tuple[tuple[str, str], ...]  # (axis, label) in axis order
    seed: int
    overrides: tuple[str, ...]  # --set strings: size, axes, seed, name, run_dir, store

    @property
    def cell(self) -> str:
        return ",".join(f"{a}={v}" for a, v in self.labels)

    @property
    def slug(self) -> str:
        return "__".join(f"{a}-{v}" for a, v in self.labels).replace("/", "_") + f"__seed{self.seed}"


@dataclass(frozen=True)
class Grid:
    """A loaded grid at one size: the base recipe path and every variant."""

    config: GridConfig
    path: Path
    size: str
    base_path: Path
    out_dir: Path
    variants: tuple[Variant, ...]

    @property
    def store_dir(self) -> Path:
        return self.out_dir / "store"

    def run_dir(self, variant: Variant) -> Path:
        return self.out_dir / "runs" / variant.slug

    def recipe_file(self, variant: Variant) -> Path:
        return self.out_dir / "recipes" / f"{variant.slug}.yaml"


def read_grid(path: Path) -> GridConfig:
    """Parse and validate a grid file, reporting every problem with its key path."""
    from recipes.yaml_reader import read_yaml_mapping

    # the recipes' reader: refuses a key given twice (an axis label would vanish) and YAML over the bounds
    raw = read_yaml_mapping(path, "grid")
    try:
        return GridConfig.model_validate(raw)
    except ValidationError as exc:
        problems = validation_problems(exc, raw, top="(grid)")
        raise UserError(f"grid {str(path)!r} has {len(problems)} problem(s):", problems) from None


def load_grid(path: str | Path, size: str = "cpu", out_dir: str | Path | None = None) -> Grid:
    """The grid at ``size`` with its variants (one per axis combination and seed), in file order."""
    from recipes.loading import referenced_recipe

    path = Path(path)
    config = read_grid(path)
    if size not in config.sizes:  # a size given on the command line is one of these plain names
        raise UserError(f"grid {str(path)!r} has no size {size!r}; sizes: {sorted(config.sizes)}")
    base_path = referenced_recipe(path, config.base)
    out = Path(out_dir) if out_dir else Path("runs") / "sweeps" / config.name / size
    grid_stub = Grid(config, path, size, base_path, out, ())
    variants = []
    axes = list(config.axes.items())
    for combo in itertools.product(*(list(values.items()) for _, values in axes)):
        labels = tuple((axis, label) for (axis, _), (label, _) in zip(axes, combo))
        for seed in config.seeds:
            overrides = []
            for _, axis_overrides in combo:
                overrides += to_set_args(axis_overrides)
            overrides += to_set_args(config.sizes[size])
            variant = Variant(labels, seed, ())
            overrides += [
                f"seed={seed}",
                f"name={config.name}-{variant.slug}",
                f"run_dir={grid_stub.run_dir(variant)}",
                f"data.store={grid_stub.store_dir}",
            ]
            variants.append(Variant(labels, seed, tuple(overrides)))
    return Grid(config, path, size, base_path, out, tuple(variants))
