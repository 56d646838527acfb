"""Reading a YAML file a user names (a recipe, a grid) or a `--set` value: safe types only, a key given
twice or a key that is a list or mapping refused, and bounds on size, nesting and alias expansion, each
a message naming the source and the environment variable that raises the bound."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from curriculum.errors import UserError
from curriculum.paths import check_input_path

# Bounds on a YAML document (a recipe, a `--set` value, a grid file), each with the environment
# variable that raises it. Real recipes are a few kB, under 10 levels deep and a few hundred values;
# the bounds stop what would otherwise exhaust the machine before validation even starts: a
# 700-byte "billion laughs" of nested aliases expands to 10^9 values, 5000 nested brackets overflow
# the parser's recursion, and a recursive alias (`&a [*a]`) is an infinite value.
# (Measured: 600,000 expanded values in model.extra take `recipe show` 26 s and 630 MB.)
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


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping in a YAML file a user names (a recipe, a grid): the path checked (`curriculum.paths`),
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
