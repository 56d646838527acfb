"""Reading recipes: YAML files and presets, ``extends``, ``--set`` overrides, validation with every
problem reported at once (key path and fix), and the resolved recipe written back as YAML."""

from __future__ import annotations

import copy
import difflib
import os
import types
from pathlib import Path
from typing import Annotated, Any, Callable, Union, get_args, get_origin

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from curriculum.errors import UserError
from curriculum.registry import validation_problems
from mixers import DomainInfo, build_mixer
from recipes.config import Recipe
from recipes.paths import PLAIN_NAME, check_input_path, check_path_text

PRESETS_DIR = Path(__file__).parent / "presets"


# Bounds on a YAML document (a recipe, a `--set` value, a grid file), each with the environment
# variable that raises it. Real recipes are a few kB, under 10 levels deep and a few hundred values;
# the bounds stop what would otherwise exhaust the machine before validation even starts: a
# 700-byte "billion laughs" of nested aliases expands to 10^9 values, 5000 nested brackets overflow
# the parser's recursion, and a recursive alias (`&a [*a]`) is an infinite value.
YAML_LIMITS = {
    "bytes": ("CURRIMIX_YAML_MAX_BYTES", 1 << 20, "bytes"),
    "depth": ("CURRIMIX_YAML_MAX_DEPTH", 64, "levels of nesting"),
    "nodes": ("CURRIMIX_YAML_MAX_NODES", 100_000, "values (aliases expanded)"),
}


def yaml_limit(kind: str) -> int:
    """The bound ``kind`` of `YAML_LIMITS`, from its environment variable when set."""
    variable, default, _ = YAML_LIMITS[kind]
    text = os.environ.get(variable)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"{variable}={text!r} is not a whole number") from None
    if value < 1:
        raise UserError(f"{variable}={text!r} must be at least 1")
    return value


def over_limit(source: str, kind: str, found: str) -> UserError:
    variable, _, unit = YAML_LIMITS[kind]
    return UserError(
        f"{source} has {found}: the limit is {yaml_limit(kind):,} {unit}; if that is intended, raise it "
        f"with the environment variable {variable}"
    )


class UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (plain YAML keeps the last
    one silently, so a recipe with two `steps:` would train with whichever came second), a key that
    is a list or a mapping (`? [a, b]`: no recipe key is one), and documents nested deeper than
    `CURRIMIX_YAML_MAX_DEPTH` (checked while composing, before Python's recursion limit is near)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._max_depth = yaml_limit("depth")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > self._max_depth:
                mark = self.peek_event().start_mark
                raise _Bound("depth", f"values nested over {self._max_depth} levels deep (line {mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key on line {line} is a {kind}; keys are plain names", key_node.start_mark
                )
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice in one mapping (lines {seen[key]} and {line}); keep one",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _Bound(Exception):
    """A YAML document over one of `YAML_LIMITS` (turned into a UserError naming the source)."""

    def __init__(self, kind: str, found: str):
        super().__init__(found)
        self.kind, self.found = kind, found


def _expanded_size(root: yaml.Node) -> int:
    """Values in the document once every alias is expanded, counted on the node graph (each node once,
    so a billion laughs is measured without being built); a node reached from inside itself is a
    recursive alias. Iterative, so the count itself never recurses."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise _Bound("nodes", f"a recursive alias (an anchor used inside itself, line {node.start_mark.line + 1})")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
    return size[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml(text: str, source: str = "the YAML") -> Any:
    """YAML from a recipe file (or a `--set` value, a grid file): safe types only, duplicate and
    non-scalar keys refused, and within `YAML_LIMITS` (``source`` names it in the message)."""
    limit = yaml_limit("bytes")
    if len(text) > limit or len(text.encode()) > limit:
        raise over_limit(source, "bytes", f"{len(text.encode()):,} bytes")
    loader = UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        max_nodes = yaml_limit("nodes")
        expanded = _expanded_size(node)
        if expanded > max_nodes:
            raise _Bound("nodes", f"{expanded:,} values once its aliases are expanded")
        return loader.construct_document(node)
    except _Bound as exc:
        if exc.found.startswith("a recursive alias"):
            raise UserError(f"{source} has {exc.found}; a recipe value cannot contain itself") from None
        raise over_limit(source, exc.kind, exc.found) from None
    except RecursionError:
        raise over_limit(source, "depth", "values nested too deep for the parser") from None
    finally:
        loader.dispose()


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


# Keys that moved, by their old path (`*` matches any one key): what a recipe written before the move
# must say now, shown instead of "unknown key". From the git history (e8c516a: one averaging-weights
# schema shared with `currimix average`).
MOVED_KEYS: dict[tuple[str, ...], Callable[[Any], str]] = {
    ("averaging", "method"): lambda v: f"became `averaging.weights: {{name: {v}}}`",
    ("averaging", "alpha"): lambda v: f"became `averaging.weights: {{name: ema, alpha: {v}}}`",
    ("averaging", "ema_form"): lambda v: f"became `averaging.weights: {{name: ema, form: {v}}}`",
}
# Values whose type changed: (path, the old type) -> what to write now.
MOVED_VALUES: dict[tuple[str, ...], tuple[type, Callable[[Any], str]]] = {
    ("averaging", "weights"): (
        list,
        lambda v: f"a list of weights became `averaging.weights: {{name: explicit, values: {v}}}`",
    ),
}


def moved_key_hints(raw: dict[str, Any]) -> dict[str, str]:
    """``{dotted old key: where it went}`` for every moved key or value ``raw`` still uses."""
    hints: dict[str, str] = {}
    for path, say in MOVED_KEYS.items():
        node = _lookup(raw, path[:-1])
        if isinstance(node, dict) and path[-1] in node:
            hints[".".join(path)] = say(_flow(node[path[-1]]))
    for path, (old_type, say) in MOVED_VALUES.items():
        node = _lookup(raw, path[:-1])
        if isinstance(node, dict) and isinstance(node.get(path[-1]), old_type):
            hints[".".join(path)] = say(_flow(node[path[-1]]))
    return hints


def _lookup(raw: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        raw = raw.get(part) if isinstance(raw, dict) else None
    return raw


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip().removesuffix("...").strip()


def nul_bytes(raw: Any, prefix: str = "") -> list[str]:
    """Key paths whose key or text holds a NUL byte: no file name, field name or text a recipe gives may
    (the operating system refuses it, deep inside whichever call meets it first)."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [(prefix, raw)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                path = f"{where}.{key}" if where else str(key)
                if "\0" in str(key):
                    found.append(f"{path!r}: a key contains a NUL byte")
                stack.append((path, value))
        elif isinstance(node, list):
            stack.extend((f"{where}.{i}", v) for i, v in enumerate(node))
        elif isinstance(node, str) and "\0" in node:
            found.append(f"{where}: the text contains a NUL byte ({node!r})")
    return sorted(found)


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
        problems = [_with_hint(p, hints, raw) for p in problems]
        raise UserError(f"{source} has {len(problems)} problem(s):", problems) from None
    problems = check_semantics(recipe)
    if problems:
        raise UserError(f"{source} has {len(problems)} problem(s):", problems)
    return recipe


def _with_hint(problem: str, hints: dict[str, str], raw: dict[str, Any]) -> str:
    """A problem line with where a moved key went, or (an unknown key) the closest key the schema has."""
    key = problem.split(":", 1)[0]
    hint = hints.get(key) or next((h for k, h in hints.items() if key.startswith(k + ".")), None)
    unknown = "unknown key" in problem
    if hint is not None:
        return f"{key}: this key was renamed: it {hint}" if unknown else f"{problem} ({hint})"
    if unknown:
        *parent, last = key.split(".")
        close = difflib.get_close_matches(last, schema_keys(parent, raw), n=1, cutoff=0.6)
        if close:
            return f"{problem}; did you mean `{'.'.join([*parent, close[0]])}`?"
    return problem


def schema_keys(path: list[str], raw: dict[str, Any]) -> list[str]:
    """The keys the recipe schema allows at ``path`` (a registry section by the `name` ``raw`` gives it;
    list items and mapping values by their element type), or [] where that is not one section."""
    annotation: Any = Recipe
    node: Any = raw
    for part in path:
        annotation = _one_kind(annotation, node)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            if field is None:
                return []
            annotation = field.annotation
        elif get_origin(annotation) in (list, dict):
            annotation = get_args(annotation)[-1]
        else:
            return []
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            node = None
    annotation = _one_kind(annotation, node)
    return list(annotation.model_fields) if isinstance(annotation, type) and issubclass(annotation, BaseModel) else []


def _one_kind(annotation: Any, node: Any) -> Any:
    """The one alternative of a (possibly Optional, Annotated, discriminated-union) annotation that
    ``node`` is: the config whose ``name`` it gives, the only model, list or mapping; else None."""
    kinds, stack = [], [annotation]
    while stack:
        kind = stack.pop()
        if get_origin(kind) is Annotated or get_origin(kind) in (Union, types.UnionType):
            stack.extend(get_args(kind)[:1] if get_origin(kind) is Annotated else get_args(kind))
        else:
            kinds.append(kind)
    models = [k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)]
    if len(models) > 1 and isinstance(node, dict):
        named = [
            m
            for m in models
            if "name" in m.model_fields and get_args(m.model_fields["name"].annotation) == (node.get("name"),)
        ]
        return named[0] if len(named) == 1 else None
    containers = [k for k in kinds if get_origin(k) in (list, dict)]
    return models[0] if len(models) == 1 else (containers[0] if len(containers) == 1 else None)


def check_semantics(recipe: Recipe) -> list[str]:
    """Checks past the schema, each reported with its key: the mixer builds (its weights name real
    domains and are distributions; sizes are not known before `prepare`, so every domain counts as
    size 1 here), the plan fits its memory budget, and transformers can build the model and run it
    (on the meta device: no weights, no time)."""
    from recipes.plan import check_plan_budget

    problems: list[str] = []
    names = tuple(recipe.data.domains)
    ones = np.ones(len(names), dtype=np.int64)
    for check in (
        lambda: build_mixer(recipe.mixture.mixer, DomainInfo(names, ones, ones), where="mixture.mixer"),
        lambda: check_plan_budget(recipe),
        lambda: _check_model(recipe),
    ):
        try:
            check()
        except UserError as exc:
            problems.append(str(exc))
    return problems


def _check_model(recipe: Recipe) -> None:
    """Ask transformers to build the model (on the meta device) when the recipe hands it something the
    schema cannot check: `model.extra`, `init_from`, another `arch` than llama, or MoE. A plain llama
    section is the schema's alone, so `recipe show` and `plan` do not import torch and transformers
    (seconds) for it."""
    model = recipe.model
    if not (model.extra or model.init_from or model.moe or model.arch != "llama"):
        return
    from recipes.model import check_buildable

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


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping in a YAML file a user names (a recipe, a grid): the path checked (`recipes.paths`),
    its size refused before it is read, UTF-8 and `load_yaml`'s bounds, each a message naming the file."""
    path = check_input_path(path, what)
    where = f"{what} {str(path)!r}"
    size = path.stat().st_size
    if size > yaml_limit("bytes"):
        raise over_limit(where, "bytes", f"{size:,} bytes")
    try:
        raw = load_yaml(path.read_text(), source=where)
    except UnicodeDecodeError as exc:
        raise UserError(f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{where} is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a {what} is a YAML mapping, got {type(raw).__name__}")
    return raw


def read_recipe_yaml(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The raw mapping of a recipe file, with ``extends: <preset or path>`` resolved (recursively)."""
    if Path(path).resolve() in _chain:
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
    return yaml.safe_dump(recipe.model_dump(mode="json", exclude_none=False), sort_keys=False)
