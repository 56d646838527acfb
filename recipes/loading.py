"""Reading recipes: YAML files and presets, ``extends``, ``--set`` overrides, validation with every
problem reported at once (key path and fix), and the resolved recipe written back as YAML."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from curriculum.errors import UserError
from curriculum.paths import PLAIN_NAME, check_input_path, check_path_text, resolved
from curriculum.registry import validation_problems
from mixers import DomainInfo, build_mixer
from recipes.config import Recipe
from recipes.key_hints import moved_key_hints, nul_bytes, with_hint
from recipes.yaml_reader import load_yaml, read_yaml_mapping  # noqa: F401  (load_yaml: part of this module's API)

PRESETS_DIR = Path(__file__).parent / "presets"


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise UserError(f"--set {item!r}: expected key.path=value, with no empty part in the key path")
    try:
        value = load_yaml(raw, source=f"--set {item!r}") if raw else ""
    except yaml.YAMLError as exc:
        raise UserError(f"--set {item!r}: the value is not valid YAML ({exc})") from None
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply dotted ``a.b.c=value`` overrides (values parsed as YAML; list items by index)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        path, value = _parse_override(item)
        node: Any = raw
        for i, part in enumerate(path):
            where = ".".join(path[:i])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise UserError(
                        f"--set {item!r}: {'.'.join(path[: i + 1])} is not an index of a {len(node)}-item list"
                    )
                index: Any = int(part)
            elif isinstance(node, dict):
                index = part
            else:
                raise UserError(
                    f"--set {item!r}: {where} is a value, not a section or a list (it is {node!r}), so it has no {part!r}"
                )
            if i == len(path) - 1:
                node[index] = value
                break
            if isinstance(node, dict) and node.get(part) is None:
                node[part] = {}  # a section the recipe left out (or null): the schema then checks the key
            node = node[index]
    return raw


def recipe_from_dict(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    """Validate a recipe mapping, reporting every problem at once; then check what the model, the
    optimizer and the plan will be asked to do (`check_semantics`)."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: a recipe is a YAML mapping, got {type(raw).__name__}")
    problems = nul_bytes(raw)
    if problems:
        raise UserError(f"{source} has {len(problems)} problem(s):", problems)
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        problems = validation_problems(exc, raw, top="(recipe)")
        hints = moved_key_hints(raw)
        problems = [with_hint(p, hints, raw) for p in problems]
        raise UserError(f"{source} has {len(problems)} problem(s):", problems) from None
    problems = check_semantics(recipe)
    if problems:
        raise UserError(f"{source} has {len(problems)} problem(s):", problems)
    return recipe


def check_semantics(recipe: Recipe) -> list[str]:
    """Checks past the schema, each reported with its key: the mixer builds (its weights name real
    domains and are distributions; sizes are not known before `prepare`, so every domain counts as
    size 1 here), the plan fits its memory budget, and transformers can build the model and run it
    (on the meta device: no weights, no time)."""
    from tools.train.plan import check_plan_budget

    problems: list[str] = []
    names = tuple(recipe.data.domains)
    ones = np.ones(len(names), dtype=np.int64)
    for check in (
        lambda: build_mixer(recipe.mixture.mixer, DomainInfo(names, ones, ones), where="mixture.mixer"),
        lambda: check_plan_budget(recipe),
        lambda: _check_model(recipe),
        lambda: _check_run_folder(recipe),
    ):
        try:
            check()
        except UserError as exc:
            problems.append(str(exc))
    return problems


def _check_run_folder(recipe: Recipe) -> None:
    """The run folder is no input's folder: `train` writes checkpoints into it and `--overwrite` moves
    things out of it, while `prepare --overwrite` replaces the whole store (and a run inside it)."""
    from curriculum.paths import resolved

    run_dir = resolved(recipe.run_path, "run_dir")
    inputs = {"data.store (the token store)": recipe.store_path}
    if recipe.model.init_from:
        inputs["model.init_from (the model it starts from)"] = Path(recipe.model.init_from)
    for key, folder in inputs.items():
        folder = resolved(folder, key)
        if run_dir == folder or folder in run_dir.parents:
            where = "is" if run_dir == folder else "lies inside"
            raise UserError(
                f"run_dir {str(recipe.run_path)!r} {where} {key} {str(folder)!r}; give the run a folder of its own"
            )


def _check_model(recipe: Recipe) -> None:
    """Ask transformers to build the model (on the meta device) when the recipe hands it something the
    schema cannot check: `model.extra`, `init_from`, another `arch` than llama, or MoE. A plain llama
    section is the schema's alone, so `recipe show` and `plan` do not import torch and transformers
    (seconds) for it."""
    model = recipe.model
    if not (model.extra or model.init_from or model.moe or model.arch != "llama"):
        return
    from tools.train.model import check_buildable

    check_buildable(model, vocab_size=recipe.tokenizer.vocab_size, seq_len=recipe.data.seq_len)


def deep_merge(base: Any, override: Any, _nested: bool = False) -> Any:
    """``override`` on top of ``base``: mappings merge key by key, anything else is replaced. A mapping
    naming a different registry entry (``name:``) replaces the base one instead of merging into it."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return copy.deepcopy(override)
    if _nested and "name" in override and override.get("name") != base.get("name"):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = deep_merge(base[key], value, True) if key in base else copy.deepcopy(value)
    return merged


MAX_EXTENDS = 32  # recipes an `extends` chain may pass through (presets use one or two)


def read_recipe_yaml(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The raw mapping of a recipe file, with ``extends: <preset or path>`` resolved (recursively)."""
    path = check_input_path(path, "recipe")
    if resolved(path, "recipe") in _chain:
        raise UserError(f"recipe {str(path)!r} extends itself through {[str(p) for p in _chain]}")
    if len(_chain) >= MAX_EXTENDS:
        raise UserError(f"recipe {str(path)!r}: `extends` goes {MAX_EXTENDS} files deep; a chain that long is a loop")
    raw = read_yaml_mapping(path, "recipe")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise UserError(f"recipe {str(path)!r}: `extends` names one preset or recipe file")
    return deep_merge(read_recipe_yaml(referenced_recipe(path, parent), _chain + (path.resolve(),)), raw)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a YAML recipe (following ``extends``), apply ``--set`` overrides and validate it."""
    path = Path(path)
    raw = apply_overrides(read_recipe_yaml(path), overrides or [])
    if "extends" in raw:  # only a --set can bring it back: the file's own was followed and removed
        raise UserError("--set extends=...: `extends` is followed only in a recipe file; write it at the top of one")
    return recipe_from_dict(raw, source=f"recipe {str(path)!r}")


def referenced_recipe(referrer: Path, name: str) -> Path:
    """The recipe a file names (`extends`, a grid's `base`): a ``.yaml`` path relative to that file, else a preset."""
    return referrer.parent / name if name.endswith((".yaml", ".yml")) else preset_path(name)


def preset_path(name: str) -> Path:
    """Path of a shipped preset (`recipes/presets/<name>.yaml`); a preset name is one plain name, so it
    never reads a file outside the presets (``../../x/evil``)."""
    choices = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name) or name not in choices:
        shown = name if isinstance(name, str) and len(name) <= 200 else f"{str(name)[:200]}..."
        raise UserError(f"no preset {shown!r}; presets: {choices} (or give the path of a .yaml recipe file)")
    return check_input_path(PRESETS_DIR / f"{name}.yaml", "preset", under=PRESETS_DIR)


def resolve_recipe_path(name_or_path: str) -> Path:
    """A recipe argument is a YAML path (or anything at that path: a folder or FIFO gets its own
    message), or the name of a preset."""
    path = check_path_text(name_or_path, "recipe")
    if path.suffix in {".yaml", ".yml"} or os.path.lexists(path) or "/" in name_or_path:
        return path
    return preset_path(name_or_path)


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe (every default filled in) as YAML, loadable again with `load_recipe`."""
    return recipe.to_yaml()
