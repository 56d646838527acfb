"""Hints for recipe problems: where a moved key went (from the git history), the closest key of a
section for an unknown one, and NUL bytes anywhere in a recipe's keys and texts."""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Callable, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from recipes.config import Recipe

# Keys that moved, by their old path: what a recipe written before the move
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


def with_hint(problem: str, hints: dict[str, str], raw: dict[str, Any]) -> str:
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
