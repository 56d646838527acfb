"""Reading recipes: YAML files and presets, ``extends``, ``--set`` overrides, validation with every
problem reported at once (key path and fix), and the resolved recipe written back as YAML."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from curriculum.errors import UserError
from curriculum.registry import validation_problems
from mixers import DomainInfo, build_mixer
from recipes.config import Recipe

PRESETS_DIR = Path(__file__).parent / "presets"


class UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (plain YAML keeps the last
    one silently, so a recipe with two `steps:` would train with whichever came second)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice in one mapping (lines {seen[key]} and {line}); keep one",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """YAML from a recipe file: safe types only, duplicate keys refused."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise UserError(f"--set {item!r}: expected key.path=value, with no empty part in the key path")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as exc:
        raise UserError(f"--set {item!r}: the value is not valid YAML ({exc})") from None
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply dotted ``a.b.c=value`` overrides (values parsed as YAML; list items by index)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        path, value = _parse_override(item)
        node: Any = raw
        for i, part in enumerate(path[:-1]):
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise UserError(
                        f"--set {item!r}: {'.'.join(path[: i + 1])} is not an index of a {len(node)}-item list"
                    )
                node = node[int(part)]
            else:
                if node.get(part) is None:
                    node[part] = {}
                elif not isinstance(node[part], (dict, list)):
                    raise UserError(f"--set {item!r}: {'.'.join(path[: i + 1])} is a value, not a section")
                node = node[part]
        last = path[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise UserError(f"--set {item!r}: {last} is not an index of a {len(node)}-item list")
            node[int(last)] = value
        else:
            node[last] = value
    return raw


def recipe_from_dict(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    """Validate a recipe mapping, reporting every problem at once."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: a recipe is a YAML mapping, got {type(raw).__name__}")
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        problems = validation_problems(exc, raw, top="(recipe)")
        raise UserError(f"{source} has {len(problems)} problem(s):", problems) from None
    problems = check_semantics(recipe)
    if problems:
        raise UserError(f"{source} has {len(problems)} problem(s):", problems)
    return recipe


def check_semantics(recipe: Recipe) -> list[str]:
    """Checks that need the domain names: the mixer builds (its weights name real domains and are
    distributions). Sizes are not known before `prepare`, so every domain counts as size 1 here."""
    problems: list[str] = []
    names = tuple(recipe.data.domains)
    ones = np.ones(len(names), dtype=np.int64)
    try:
        build_mixer(recipe.mixture.mixer, DomainInfo(names, ones, ones), where="mixture.mixer")
    except UserError as exc:
        problems.append(str(exc))
    return problems


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


def read_recipe_yaml(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The raw mapping of a recipe file, with ``extends: <preset or path>`` resolved (recursively)."""
    if not path.is_file():
        raise UserError(f"recipe {str(path)!r} does not exist")
    if path.resolve() in _chain:
        raise UserError(f"recipe {str(path)!r} extends itself through {[str(p) for p in _chain]}")
    try:
        raw = load_yaml(path.read_text()) or {}
    except UnicodeDecodeError as exc:
        raise UserError(f"recipe {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise UserError(f"recipe {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"recipe {str(path)!r}: a recipe is a YAML mapping, got {type(raw).__name__}")
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
    return recipe_from_dict(raw, source=f"recipe {str(path)!r}")


def referenced_recipe(referrer: Path, name: str) -> Path:
    """The recipe a file names (`extends`, a grid's `base`): a ``.yaml`` path relative to that file, else a preset."""
    return referrer.parent / name if name.endswith((".yaml", ".yml")) else preset_path(name)


def preset_path(name: str) -> Path:
    """Path of a shipped preset (`recipes/presets/<name>.yaml`)."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        choices = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
        raise UserError(f"no preset {name!r}; presets: {choices}")
    return path


def resolve_recipe_path(name_or_path: str) -> Path:
    """A recipe argument is a YAML path, or the name of a preset."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        return path
    return preset_path(name_or_path)


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe (every default filled in) as YAML, loadable again with `load_recipe`."""
    return yaml.safe_dump(recipe.model_dump(mode="json", exclude_none=False), sort_keys=False)
