"""Every preset validates, plans and plots; the reference recipes realise the mixtures they promise.

The shared-corpus presets point at ../shared/data, which CI may not have; here each of their
domains is swapped for a small generated one of the same name, so the recipe's mixer, curriculum,
LR schedule and averaging window are exercised on a real (tiny) token store.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from curriculum.store.prepare import prepare_store
from recipes.loading import load_recipe, preset_path, read_recipe_yaml, recipe_from_dict
from tests.conftest import write_domain
from tools.plotting import plot_plan
from tools.train.plan import build_plan
from tools.train.plan_report import plan_summary

PRESETS = sorted(p.stem for p in preset_path("quickstart").parent.glob("*.yaml"))
SHARED = [p for p in PRESETS if p.startswith("shared-")]


def on_stand_in_corpus(preset: str, corpus: Path) -> dict:
    """The preset's raw recipe with every domain read from ``corpus/<domain>.jsonl`` (tiny store)."""
    raw = read_recipe_yaml(preset_path(preset))
    for name in raw["data"]["domains"]:
        raw["data"]["domains"][name] = {
            "sources": [{"path": str(corpus / f"{name}.jsonl")}],
            "scorer": {"name": "field", "field": "score"},
        }
    raw["data"].update(store=str(corpus / "store"), seq_len=32)
    raw["tokenizer"] = {"vocab_size": 300, "min_frequency": 1}
    return raw


@pytest.fixture(scope="module")
def shared_domains_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny store with the shared presets' seven domain names (sizes differ, like the real corpus)."""
    base = tmp_path_factory.mktemp("shared")
    raw = on_stand_in_corpus("shared-baseline", base)
    for i, name in enumerate(raw["data"]["domains"]):
        write_domain(base / f"{name}.jsonl", name, 30 + 25 * i, seed=i)
    prepare_store(recipe_from_dict(raw), show_progress=False)
    return base


def shrunk(preset: str, corpus: Path, run_dir: Path, **training):
    raw = on_stand_in_corpus(preset, corpus)
    raw["run_dir"] = str(run_dir)
    raw.setdefault("mixture", {})["on_cap"] = "warn"  # a tiny store is repeated far more than the real one
    raw["training"].update(training)
    return recipe_from_dict(raw)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_loads(preset: str) -> None:
    recipe = load_recipe(preset_path(preset))
    assert recipe.name == preset


@pytest.mark.parametrize("preset", SHARED)
def test_shared_preset_plans_and_plots(preset: str, shared_domains_store: Path, tmp_path: Path) -> None:
    recipe = shrunk(preset, shared_domains_store, tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = build_plan(recipe)
    summary = plan_summary(plan)
    assert summary["steps"] == recipe.training.steps
    assert sum(seg["steps"][1] - seg["steps"][0] for seg in summary["segments"]) == plan.total_steps
    png = plot_plan(plan, tmp_path / "plan.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def phase_shares(plan, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Realised domain shares over [first, stop) and the mixer's mean weights there."""
    realised = plan.consumed_before(stop) - plan.consumed_before(first)
    promised = plan.mixer.weights(np.arange(first, stop) / plan.total_steps).mean(axis=0)
    return realised / realised.sum(), promised


@pytest.mark.parametrize("steps", [690, 1001])
def test_temperature_cooldown_realises_each_phase(steps: int, shared_domains_store: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = build_plan(shrunk("shared-temperature-cooldown", shared_domains_store, tmp_path, steps=steps))
    assert set(plan.phases) == {"tau_high", "tau_low"}
    assert plan.phases["tau_high"] == (0, (steps + 1) // 2) and plan.phases["tau_low"][1] == steps
    tokens = plan.domains.tokens.astype(float)
    for phase, tau in (("tau_high", 5.0), ("tau_low", 1.0)):
        realised, promised = phase_shares(plan, *plan.phases[phase])
        expected = tokens ** (1 / tau) / (tokens ** (1 / tau)).sum()
        assert np.allclose(promised, expected)
        assert np.abs(realised - expected).max() < 0.01


@pytest.mark.parametrize("steps", [690, 997])
def test_upsampling_tail_realises_its_mix_with_decay_on_it(
    steps: int, shared_domains_store: Path, tmp_path: Path
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = build_plan(shrunk("shared-upsample-tail", shared_domains_store, tmp_path, steps=steps))
    first, stop = plan.phases["upsample"]
    assert stop == steps and first == int(np.ceil(0.85 * steps - 1e-9))
    for phase in ("base", "upsample"):
        realised, promised = phase_shares(plan, *plan.phases[phase])
        assert np.abs(realised - promised).max() < 0.01
    lrs = plan.schedule.lr(np.arange(steps))
    assert lrs[first - 1] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(lrs[first:]) < 0)


@pytest.mark.parametrize("preset", PRESETS)
def test_resolved_recipe_loads_back_identically(preset: str) -> None:
    """`recipe show` / the run folder's recipe.yaml: the dump of a resolved recipe is itself a valid recipe."""
    import yaml

    from recipes.loading import dump_recipe

    recipe = load_recipe(preset_path(preset))
    again = recipe_from_dict(yaml.safe_load(dump_recipe(recipe)))
    assert again == recipe


def test_resolved_temperature_schedules_load_back() -> None:
    """A step tau schedule dumps `over: null` and a linear one `at: null`; both load back as they were."""
    import yaml

    from recipes.loading import dump_recipe

    for tau in ({"start": 5, "end": 1, "at": 0.5}, {"start": 5, "end": 1, "shape": "linear", "over": [0.2, 0.8]}):
        raw = read_recipe_yaml(preset_path("shared-temperature-cooldown"))
        raw["mixture"]["mixer"] = {"name": "temperature", "tau": tau}
        recipe = recipe_from_dict(raw)
        assert recipe_from_dict(yaml.safe_load(dump_recipe(recipe))) == recipe
