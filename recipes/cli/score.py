"""`currimix score ...`: list, fit, apply, inspect and evaluate quality scorers from the shell.

Documents are named by a *source spec*: a path (jsonl/json/parquet/text file, folder, glob or a
`datasets` folder) optionally followed by ``?key=value&...`` settings of the source, e.g.
``data/mail.jsonl.gz?where.label=ham&max_documents=1000`` or ``gsm8k.jsonl?text_field=question``.
A scorer is named by ``--scorer NAME`` plus ``--set key=value`` options, by ``--config FILE``
(YAML/JSON mapping), or by ``--scorer FOLDER`` for a folder written by ``fit``.
Outputs are written under a temporary name and renamed into place, so an interrupted command
never leaves a half-written file that looks finished.
"""

from __future__ import annotations

import gzip
import shutil
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from curriculum.errors import UserError
from curriculum.files import atomic_path
from recipes.cli.app import app as main_app
from recipes.cli.app import command

if TYPE_CHECKING:
    import numpy as np

    from curriculum.documents import SourceConfig

score_app = typer.Typer(
    help="Score documents for quality: list scorers, fit trainable ones, write scores, "
    "inspect the heuristic rules, check agreement with labels.",
    no_args_is_help=True,
    add_completion=False,
)
main_app.add_typer(score_app, name="score")

SOURCE_HELP = (
    "Documents: PATH[?key=value&...] where keys are source settings (text_field, id_field, "
    "format, text_split, max_documents, where.COLUMN); e.g. 'mail.jsonl.gz?where.label=ham'."
)
SCORER_HELP = "Scorer name (see `list`), or a folder written by `fit`."
SET_HELP = "Scorer option KEY=VALUE (VALUE read as YAML; dotted keys nest, list items by index), repeatable."
CONFIG_HELP = "YAML/JSON file with the scorer config mapping ({name: ..., ...}); --set overrides it."


def scratch_cache() -> str:
    """A temporary folder for the `datasets` cache of the documents a score command reads, removed
    when the process ends. Without it `datasets` keeps an Arrow copy of every input under
    ~/.cache/huggingface: a write outside the folders the user chose, as large as the corpus."""
    import atexit
    import tempfile

    folder = tempfile.mkdtemp(prefix="currimix-score-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


# ----------------------------------------------------------------------------- parsing helpers
def parse_source(spec: str) -> "SourceConfig":
    """``PATH[?key=value&...]`` -> SourceConfig (``where.COL=V`` keys become `where` filters)."""
    import yaml
    from pydantic import ValidationError

    from curriculum.documents import SourceConfig
    from curriculum.registry import validation_problems
    from recipes.yaml_reader import load_yaml

    path, _, query = spec.partition("?")
    settings: dict[str, Any] = {"path": path}
    where: dict[str, Any] = {}
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:  # "?=", "?a&&b": a field without key=value
        raise UserError(f"source spec {spec!r}: {exc}; write PATH?key=value&key=value") from None
    for key, value in pairs:
        if not key:
            raise UserError(f"source spec {spec!r}: a setting without a name (=value); write PATH?key=value")
        try:  # bounded like a recipe's --set value (no alias bombs, nesting limits)
            parsed = load_yaml(value, f"source spec setting {key!r}") if value else ""
        except yaml.YAMLError as exc:
            raise UserError(f"source spec {spec!r}: the value of {key!r} is not valid YAML ({exc.problem})") from None
        if key.startswith("where."):
            where[key[len("where.") :]] = parsed
        else:
            settings[key] = parsed if key != "text_field" or isinstance(parsed, list) else str(value)
    if where:
        settings["where"] = where
    try:
        return SourceConfig.model_validate(settings)
    except ValidationError as exc:
        raise UserError(f"source spec {spec!r} is invalid", validation_problems(exc, settings)) from None


def scorer_config(scorer: Optional[str], config: Optional[Path], sets: list[str]) -> dict[str, Any]:
    """The scorer config mapping from --config, --scorer and --set."""
    import yaml

    from curriculum.scorers import SCORERS
    from curriculum.scorers.base import STATE_FILE, read_state_meta
    from recipes.loading import apply_overrides

    data: dict[str, Any] = {}
    if config is not None:
        try:
            loaded = yaml.safe_load(config.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"--config {config}: cannot read: {exc}") from None
        if not isinstance(loaded, dict):
            raise UserError(f"--config {config}: expected a mapping with a `name` key")
        data.update(loaded)
    if scorer is not None:
        if (Path(scorer) / STATE_FILE).is_file():
            data.update({"name": read_state_meta(Path(scorer))["scorer"], "path": scorer})
        else:
            data["name"] = scorer
    data = apply_overrides(data, sets)  # the recipes' --set: YAML values, dotted keys, list indices
    if "name" not in data:
        raise UserError(f"name a scorer with --scorer or --config; choose one of: {', '.join(SCORERS.names())}")
    return data


def _texts(specs: list[str], what: str) -> list[str]:
    from curriculum.documents import load_documents

    texts: list[str] = []
    for i, spec in enumerate(specs):
        ds = load_documents(parse_source(spec), source_name=f"{what}{i}", cache_dir=scratch_cache())
        texts.extend(ds["text"])
    return texts


# ----------------------------------------------------------------------------- output
def _write_atomic(ds: Any, out: Path) -> None:
    """Write a Dataset as jsonl[.gz] / parquet file, or else a `datasets` folder, via temp + rename."""
    if out.exists():
        raise UserError(f"--out {out} already exists; give a new path (outputs are never overwritten)")
    out.parent.mkdir(parents=True, exist_ok=True)
    name = out.name.lower()
    with atomic_path(out) as tmp:
        if name.endswith((".jsonl", ".json")):
            ds.to_json(str(tmp), lines=True, force_ascii=False)
        elif name.endswith((".jsonl.gz", ".json.gz")):
            with gzip.open(tmp, "wb") as fh:
                ds.to_json(fh, lines=True, force_ascii=False)
        elif name.endswith(".parquet"):
            ds.to_parquet(str(tmp))
        else:
            ds.save_to_disk(str(tmp))


# ----------------------------------------------------------------------------- commands
@command("list", typer_app=score_app)
def list_scorers(
    rules: Annotated[
        bool, typer.Option("--rules", help="Also list the heuristic scorer's rules and thresholds.")
    ] = False,
) -> None:
    """List the registered scorers (and, with --rules, the heuristic rules)."""
    from curriculum.scorers import SCORERS
    from curriculum.scorers.heuristic_rules import RULES

    for name in SCORERS.names():
        impl = SCORERS._lookup(name)[0]
        tag = "trainable" if getattr(impl, "trainable", False) else ""
        typer.echo(f"{name:14s} {tag:10s} {getattr(impl, 'summary', '')}")
    if rules:
        typer.echo("\nheuristic rules (accepted range; penalty grows outside it; default weight, 0 = off):")
        for r in RULES:
            lo = "" if r.lo is None else f">= {r.lo:g}"
            hi = "" if r.hi is None else f"<= {r.hi:g}"
            typer.echo(f"  {r.name:31s} {r.source:9s} {(lo + ' ' + hi).strip():16s} x{r.weight:<4g} {r.description}")


@command(typer_app=score_app)
def fit(
    out: Annotated[Path, typer.Option("--out", "-o", help="New folder for the fitted scorer (scorer.json + state).")],
    scorer: Annotated[
        Optional[str], typer.Argument(help="Trainable scorer to fit (see `list`); or use --config.")
    ] = None,
    positive: Annotated[list[str], typer.Option("--positive", "-p", help="Good documents. " + SOURCE_HELP)] = [],  # noqa: B006
    negative: Annotated[
        list[str], typer.Option("--negative", "-n", help="Bad documents (classifier). " + SOURCE_HELP)
    ] = [],  # noqa: B006
    set_: Annotated[list[str], typer.Option("--set", "-s", help=SET_HELP)] = [],  # noqa: B006
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help=CONFIG_HELP)] = None,
) -> None:
    """Fit a trainable scorer (ngram, classifier) on positive / negative documents into a folder."""
    from curriculum.scorers import SCORERS, build_scorer

    data = scorer_config(scorer, config, set_)
    data.pop("path", None)
    built = build_scorer(data)
    if not built.trainable:
        raise UserError(
            f"the {data['name']} scorer is not trainable; trainable: "
            f"{', '.join(n for n in SCORERS.names() if getattr(SCORERS._lookup(n)[0], 'trainable', False))}"
        )
    if not positive:
        raise UserError("give at least one --positive source")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} already exists and is not empty; choose a new folder")
    pos, neg = _texts(positive, "positive"), _texts(negative, "negative")
    typer.echo(f"fitting {data['name']} on {len(pos)} positive and {len(neg)} negative documents", err=True)
    built.fit(pos, neg or None)
    built.save(out)
    typer.echo(f"wrote {out}")


@command(typer_app=score_app)
def apply(
    source: Annotated[str, typer.Argument(help=SOURCE_HELP)],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="New output: *.jsonl, *.jsonl.gz, *.parquet, or a `datasets` folder for any other name."
        ),
    ],
    scorer: Annotated[Optional[str], typer.Option("--scorer", help=SCORER_HELP)] = None,
    set_: Annotated[list[str], typer.Option("--set", "-s", help=SET_HELP)] = [],  # noqa: B006
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help=CONFIG_HELP)] = None,
    column: Annotated[
        str, typer.Option("--column", help="Name of the score column / jsonl field written.")
    ] = "quality_score",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Documents per scoring batch.")] = 1000,
    num_proc: Annotated[
        int, typer.Option("--num-proc", min=1, help="Worker processes (model scorers run in one).")
    ] = 1,
) -> None:
    """Score documents and write them, with the score added as a column, to a new path."""
    import numpy as np

    from curriculum.documents import load_documents
    from curriculum.scorers import build_scorer

    if out.exists():
        raise UserError(f"--out {out} already exists; give a new path (outputs are never overwritten)")
    if not column.strip():
        raise UserError("--column is empty; give the score column a name (default: quality_score)")
    built = build_scorer(scorer_config(scorer, config, set_))
    ds = load_documents(
        parse_source(source),
        source_name="input",
        cache_dir=scratch_cache(),
        num_proc=num_proc if num_proc > 1 else None,
    )
    if column in ds.column_names:
        raise UserError(f"--column {column!r} already exists in the documents; choose another name")
    scores = built.score_dataset(ds, batch_size=batch_size, num_proc=num_proc, desc=f"score {built.config.name}")
    _write_atomic(ds.add_column(column, scores.tolist()), out)
    typer.echo(
        f"wrote {len(ds)} documents with `{column}` to {out} "
        f"(min {scores.min():.4g}, median {np.median(scores):.4g}, max {scores.max():.4g})"
        if len(ds)
        else f"wrote 0 documents to {out}"
    )


@command(typer_app=score_app)
def inspect(
    source: Annotated[str, typer.Argument(help=SOURCE_HELP)],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Documents shown one by one.")] = 3,
    summary: Annotated[bool, typer.Option("--summary", help="Per-rule statistics over all documents instead.")] = False,
) -> None:
    """Show the heuristic scorer's per-rule values and penalties for documents."""
    import numpy as np

    from curriculum.documents import load_documents
    from curriculum.scorers.heuristic import rule_penalties
    from curriculum.scorers.heuristic_features import rule_values
    from curriculum.scorers.heuristic_rules import RULES

    ds = load_documents(parse_source(source), source_name="input", cache_dir=scratch_cache())
    if len(ds) == 0:
        raise UserError(f"{source}: no documents")
    take = len(ds) if summary else min(limit, len(ds))
    texts = ds.select(range(take))["text"]
    values = rule_values(texts)
    penalties = rule_penalties(values)
    if summary:
        typer.echo(f"{take} documents; value median [p10, p90]; share with penalty > ln 2 (failing the rule)")
        for r in RULES:
            v = values[r.name]
            typer.echo(
                f"  {r.name:28s} {np.median(v):10.4g} [{np.percentile(v, 10):.4g}, {np.percentile(v, 90):.4g}]"
                f"  fail {np.mean(penalties[r.name] > np.log(2)):.1%}"
            )
        return
    for i in range(take):
        total = sum(float(p[i]) for p in penalties.values())
        preview = texts[i][:80].replace("\n", " ")
        typer.echo(f"[{ds['id'][i]}] heuristic score {-total:.4f}  {preview!r}")
        for r in RULES:
            flag = "  FAIL" if penalties[r.name][i] > np.log(2) else ""
            typer.echo(f"    {r.name:28s} {values[r.name][i]:10.4g}  penalty {penalties[r.name][i]:.3f}{flag}")


@command(typer_app=score_app)
def evaluate(
    source: Annotated[str, typer.Argument(help=SOURCE_HELP)],
    label: Annotated[
        str, typer.Option("--label", help="Column with the reference (a 0/1 or named label, or a number).")
    ],
    scorer: Annotated[Optional[str], typer.Option("--scorer", help=SCORER_HELP)] = None,
    set_: Annotated[list[str], typer.Option("--set", "-s", help=SET_HELP)] = [],  # noqa: B006
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help=CONFIG_HELP)] = None,
    positive_value: Annotated[
        Optional[str],
        typer.Option(
            "--positive-value",
            help="Label value meaning 'good' "
            "(gives ROC-AUC); without it the label is numeric "
            "and Spearman is reported.",
        ),
    ] = None,
    num_proc: Annotated[int, typer.Option("--num-proc", min=1, help="Worker processes.")] = 1,
) -> None:
    """Agreement of a scorer with labels: ROC-AUC (binary) or Spearman (numeric)."""
    import numpy as np

    from curriculum.documents import load_documents
    from curriculum.scorers import build_scorer
    from curriculum.scorers.metrics import roc_auc, spearman

    built = build_scorer(scorer_config(scorer, config, set_))
    ds = load_documents(parse_source(source), source_name="input", cache_dir=scratch_cache())
    if label not in ds.column_names:
        raise UserError(f"--label {label!r}: no such column (columns: {ds.column_names})")
    scores = built.score_dataset(ds, num_proc=num_proc, desc=f"score {built.config.name}")
    reference = ds[label]
    try:
        if positive_value is not None:
            good = np.array([str(v) == positive_value for v in reference])
            typer.echo(f"ROC-AUC {roc_auc(scores, good):.4f} over {len(ds)} documents ({good.sum()} positive)")
        else:
            values = np.asarray(reference, dtype=np.float64)
            typer.echo(f"Spearman {spearman(scores, _numeric_labels(values, label)):.4f} over {len(ds)} documents")
    except (ValueError, TypeError) as exc:
        raise UserError(f"--label {label!r}: {exc}") from None


def _numeric_labels(values: np.ndarray, label: str) -> np.ndarray:
    """Labels a rank correlation means something over: finite (a NaN label would rank as a number)
    and not all equal (at least two documents)."""
    import numpy as np

    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise UserError(
            f"--label {label!r}: {bad.size} document(s) have a NaN or infinite label (the first is row {bad[0]}); "
            "remove them or give --positive-value for a named label"
        )
    if np.unique(values).size < 2:
        raise UserError(
            f"--label {label!r}: Spearman needs at least two documents with different labels "
            f"(got {values.size} document(s), {np.unique(values).size} distinct label(s))"
        )
    return values
