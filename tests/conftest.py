"""Shared fixtures: offline mode, a tiny generated corpus and a tiny prepared token store.

The corpus is written by the tests themselves (no network, no copied data): three domains whose
documents carry an explicit `score` field, so the packing order and curricula can be checked
exactly. A session-scoped store keeps the suite fast; tests that need a run folder copy nothing
from it but point recipes at it.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_key] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

_WORDS = (
    "the model reads data from several domains and learns a curriculum of quality where the best text "
    "comes last while the learning rate decays slowly and checkpoints are averaged at the end of training "
    "code prose math web token sequence batch step"
).split()


def write_domain(path: Path, name: str, n_docs: int, seed: int) -> Path:
    """``n_docs`` documents with ids, varied lengths and a numeric `score` field."""
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n_docs):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(20, 120))]
            if name == "code":
                text = "\n".join(f"def f{i}_{j}(x):\n    return x + {j}" for j in range(rng.randint(3, 12)))
            else:
                text = " ".join(words).capitalize() + "."
            fh.write(json.dumps({"id": f"{name}-{i}", "text": text, "score": rng.randint(0, 9)}) + "\n")
    return path


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for seed, (name, n) in enumerate((("code", 120), ("prose", 200), ("web", 160))):
        write_domain(folder / f"{name}.jsonl", name, n, seed)
    return folder


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """A small three-domain corpus in the test's own folder, free to damage (unlike `corpus_dir`)."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for seed, (name, n) in enumerate((("code", 60), ("prose", 80), ("web", 60))):
        write_domain(folder / f"{name}.jsonl", name, n, seed)
    return folder


def recipe_dict(corpus: Path, run_dir: Path, store: Path | None = None, **sections: Any) -> dict[str, Any]:
    """A tiny complete recipe over the test corpus; keyword sections replace or extend defaults."""
    raw: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "run_dir": str(run_dir),
        "data": {
            "store": str(store or run_dir / "store"),
            "seq_len": 32,
            "val_fraction": 0.1,
            "domains": {
                name: {
                    "sources": [{"path": str(corpus / f"{name}.jsonl")}],
                    "scorer": {"name": "field", "field": "score"},
                }
                for name in ("code", "prose", "web")
            },
        },
        "tokenizer": {"vocab_size": 300, "min_frequency": 1},
        "model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64},
        "mixture": {"mixer": {"name": "static", "weights": {"code": 0.3, "prose": 0.5, "web": 0.2}}},
        "curriculum": {"order": {"name": "ascending"}},
        "schedule": {"name": "wsd", "peak_lr": 3e-3, "warmup_steps": 2, "decay_fraction": 0.3, "final_lr_ratio": 0.33},
        "training": {
            "steps": 12,
            "global_batch_size": 8,
            "micro_batch_size": 4,
            "log_every_steps": 1,
            "eval_every_steps": 6,
            "eval_sequences_per_domain": 4,
            "trackers": ["jsonl"],
        },
        "checkpoint": {"every_steps": 4, "keep_last": 3},
        "averaging": {"snapshots": 3, "every_steps": 2, "weights": {"name": "ema", "alpha": 0.2}},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict) and "name" not in value:
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


def losses_by_step(run_dir: Path) -> dict[int, float]:
    """The training loss a run logged at each step (from its metrics.jsonl)."""
    from tools.train.trackers import read_metrics

    return {r["step"]: r["loss"] for r in read_metrics(run_dir) if "loss" in r}


@pytest.fixture(scope="session")
def tiny_store(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared store over the test corpus (seq_len 32, vocab ~300), built once per session."""
    from curriculum.store.prepare import prepare_store
    from recipes.loading import recipe_from_dict

    base = tmp_path_factory.mktemp("store")
    recipe = recipe_from_dict(recipe_dict(corpus_dir, base / "run", base / "store"))
    prepare_store(recipe, show_progress=False)
    return base / "store"


@pytest.fixture
def make_recipe(corpus_dir: Path, tiny_store: Path, tmp_path: Path):
    """Build a validated recipe over the shared tiny store with section overrides."""
    from recipes.loading import recipe_from_dict

    def make(run_dir: str | Path | None = None, **sections: Any):
        return recipe_from_dict(recipe_dict(corpus_dir, Path(run_dir or tmp_path / "run"), tiny_store, **sections))

    return make


@pytest.fixture(scope="session")
def finished_run(corpus_dir: Path, tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-step tiny run: checkpoints and averaging snapshots at steps 2 and 4."""
    from recipes.loading import recipe_from_dict
    from tools.train.pretrain import train

    run_dir = tmp_path_factory.mktemp("finished") / "run"
    raw = recipe_dict(
        corpus_dir,
        run_dir,
        tiny_store,
        training={"steps": 4, "eval_every_steps": None, "eval_sequences_per_domain": 2},
        checkpoint={"every_steps": 2, "keep_last": 3},
        averaging={"snapshots": 2, "every_steps": 2, "weights": {"name": "sma"}},
    )
    train(recipe_from_dict(raw), show_progress=False)
    return run_dir
