"""The scorers a grid fits itself (its `fit:` section) and how well a scorer ranks known quality.

`fit_scorers` runs in `currimix sweep` before any store is prepared (never in --print-commands,
which must stay cheap): each spec is fitted deterministically (fixed document order, seeded
samples) and saved atomically to its ``out`` folder, then a marker naming the spec's `fit_key` is
written last; a folder whose marker matches is skipped, anything else is refitted. The key covers
the spec and the bytes of its document files, so a rebuilt corpus refits, and a store built with
the scorer changes folder with it (`fit_keys_of`).

`truth_spearman` is the issue-17 check that a testbed makes possible: the Spearman rank
correlation of a scorer's scores with the documents' true quality column.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np

from curriculum.errors import UserError
from curriculum.files import write_json_atomic
from recipes.sweep.grid import FitSource, FitSpec, TruthCheck

MARKER = "grid-fit.json"


def _file_digest(path: Path) -> str:
    if not path.is_file():
        return "missing"
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fit_key(spec: FitSpec) -> str:
    """What a fit depends on: the spec and the content of every document file it reads."""
    files = {s.path: _file_digest(Path(s.path)) for s in [*spec.positive, *spec.negative]}
    return hashlib.sha256(json.dumps([spec.model_dump(mode="json"), files], sort_keys=True).encode()).hexdigest()[:16]


def fit_keys_of(fits: dict[str, FitSpec], data_section: dict[str, Any]) -> dict[str, str]:
    """The fit keys of the fitted scorers a (dumped) data section reads, by fit label: a store's
    contents depend on them, though its recipe names only the folder."""
    paths = {
        str(Path(domain["scorer"]["path"]))
        for domain in data_section["domains"].values()
        if domain.get("scorer") and domain["scorer"].get("path")
    }
    return {label: fit_key(spec) for label, spec in fits.items() if str(Path(spec.out)) in paths}


def _texts(sources: list[FitSource], seed: int, what: str) -> list[str]:
    from curriculum.documents import SourceConfig, load_documents

    texts: list[str] = []
    for i, source in enumerate(sources):
        docs = load_documents(SourceConfig(path=source.path), source_name=f"{what}{i}")["text"]
        if source.sample is not None and source.sample < len(docs):
            # sorted positions: the sample keeps the file's order, so the fit sees a fixed sequence
            docs = [docs[j] for j in sorted(random.Random(f"{seed}:{what}{i}").sample(range(len(docs)), source.sample))]
        texts.extend(docs)
    return texts


def fit_scorers(fits: dict[str, FitSpec], log: Callable[[str], None] = print) -> None:
    """Fit every spec whose ``out`` does not already hold a fit of it (see the module docstring)."""
    from curriculum.scorers import build_scorer

    for label, spec in fits.items():
        out, key = Path(spec.out), fit_key(spec)
        marker = out / MARKER
        if marker.is_file() and json.loads(marker.read_text()).get("fit_key") == key:
            continue
        missing = [s.path for s in [*spec.positive, *spec.negative] if not Path(s.path).is_file()]
        if missing:
            raise UserError(f"fit.{label}: document file(s) {missing} do not exist; build the corpus or fix the path")
        positives = _texts(spec.positive, spec.seed, "positive")
        negatives = _texts(spec.negative, spec.seed, "negative")
        log(
            f"fitting scorer {label!r} ({spec.scorer['name']}) on {len(positives)} positive and {len(negatives)} negative documents"
        )
        scorer = build_scorer(spec.scorer)
        scorer.fit(positives, negatives or None)
        scorer.save(out, overwrite=True)
        # marker last: a fit killed before it is redone
        write_json_atomic(marker, {"fit_key": key, "spec": spec.model_dump(mode="json")}, indent=1)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 with ties given their average rank (as scipy.stats.rankdata, less one)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x))
    _, inverse = np.unique(x, return_inverse=True)
    return (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation; None when either side is constant (it is undefined)."""
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def truth_spearman(recipe: Any, truth: TruthCheck) -> float | None:
    """Spearman of the recipe's scorer on ``truth.domain`` (all its documents) with their ``truth.field``."""
    import datasets

    from curriculum.documents import load_documents
    from curriculum.scorers import build_scorer

    domain = recipe.data.domains.get(truth.domain)
    if domain is None:
        raise UserError(
            f"grid truth.domain {truth.domain!r} is not a domain of the recipe ({sorted(recipe.data.domains)})"
        )
    if domain.scorer is None:
        return None
    parts = [load_documents(s, source_name=f"{truth.domain}/{i}") for i, s in enumerate(domain.sources)]
    docs = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    if truth.field not in docs.column_names:
        raise UserError(f"grid truth.field {truth.field!r}: the {truth.domain} documents have no such column")
    scores = build_scorer(domain.scorer).score_dataset(docs, desc=f"truth {truth.domain}")
    return spearman(scores, np.asarray(docs[truth.field], dtype=np.float64))
