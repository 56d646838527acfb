"""The shipped probe sets, built at run time from this Python installation's standard library.

Deterministic for a given Python version and seed. They read the stdlib modules from the *end* of
the sorted file list, while the quickstart corpus (`tools/corpus.py`) takes its code from the start,
so at quickstart size the probes are code the model never trained on. What each measures:

- ``python-keywords``: the lines of code before a statement and its indentation; which keyword
  starts it (``return``, ``if``, ``for``, ``raise``, ...; 4 choices). Syntax and control flow.
- ``python-builtins``: a line of code up to a call of a builtin; which builtin it is (``len``,
  ``isinstance``, ``range``, ...; 4 choices). Common idioms.
- ``stdlib-docstrings``: a function's ``def`` line and the opening quotes of its docstring; which
  of 4 docstring first lines (the others from other functions) belongs to it. Ties names to prose.
"""

from __future__ import annotations

import ast
import functools
import random
import re
import sysconfig
import warnings
from pathlib import Path
from typing import Callable, Iterator

from tools.corpus import _SKIP_DIRS, read_source
from tools.evaluate.probes import ProbeExample

KEYWORDS = ["return", "if", "for", "raise", "while", "with", "try", "import", "del", "yield", "assert", "elif"]
BUILTINS = [
    "len",
    "isinstance",
    "range",
    "str",
    "int",
    "list",
    "dict",
    "getattr",
    "hasattr",
    "print",
    "sorted",
    "tuple",
]
CHOICES = 4


@functools.lru_cache(maxsize=1)
def _stdlib_tail() -> tuple[Path, ...]:
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(root.glob("*.py"), reverse=True)  # top-level modules: no walk of the whole tree
    return tuple(p for p in paths if not _SKIP_DIRS & set(p.relative_to(root).parts[:-1]))


def probe_sources() -> Iterator[tuple[Path, str]]:
    """Top-level stdlib modules from the end of the sorted list (away from the quickstart's training
    code, which takes the start of the whole tree's sorted list)."""
    for path in _stdlib_tail():
        source = read_source(path)
        if source:
            yield path, source


def _distractors(rng: random.Random, pool: list[str], answer: str) -> tuple[list[str], int]:
    choices = rng.sample([w for w in pool if w != answer], CHOICES - 1) + [answer]
    rng.shuffle(choices)
    return choices, choices.index(answer)


def python_keywords(n: int, seed: int = 0) -> list[ProbeExample]:
    rng, out = random.Random(seed), []
    pattern = re.compile(r"^(\s*)(" + "|".join(KEYWORDS) + r")\b")
    for _, source in probe_sources():
        lines = source.splitlines()
        for i in range(3, len(lines)):
            match = pattern.match(lines[i])
            if match is None or rng.random() > 0.05:
                continue
            context = "\n".join(lines[i - 3 : i]) + "\n" + match.group(1)
            choices, label = _distractors(rng, KEYWORDS, match.group(2))
            out.append(ProbeExample(context=context, choices=choices, label=label))
            if len(out) >= n:
                return out
    return out


def python_builtins(n: int, seed: int = 0) -> list[ProbeExample]:
    rng, out = random.Random(seed), []
    pattern = re.compile(r"(?<![\w.])(" + "|".join(BUILTINS) + r")\(")
    for _, source in probe_sources():
        lines = source.splitlines()
        for i in range(2, len(lines)):
            match = pattern.search(lines[i])
            if match is None or lines[i].lstrip().startswith("#") or rng.random() > 0.05:
                continue
            before = lines[i][: match.start()]
            context = "\n".join(lines[i - 2 : i]) + "\n" + before
            choices, label = _distractors(rng, BUILTINS, match.group(1))
            out.append(ProbeExample(context=context, choices=choices, label=label))
            if len(out) >= n:
                return out
    return out


def stdlib_docstrings(n: int, seed: int = 0) -> list[ProbeExample]:
    rng = random.Random(seed)
    found: list[tuple[str, str]] = []  # (def line, docstring first line)
    for _, source in probe_sources():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        lines = source.splitlines()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                doc = ast.get_docstring(node)
                first = doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""
                if 20 <= len(first) <= 120 and node.lineno <= len(lines):
                    found.append((lines[node.lineno - 1].strip(), first))
        if len(found) >= 2 * n:
            break
    rng.shuffle(found)
    docs = [doc for _, doc in found]
    out = []
    for head, doc in found[:n]:
        choices = rng.sample([d for d in docs if d != doc], CHOICES - 1) + [doc]
        rng.shuffle(choices)
        out.append(ProbeExample(context=f'{head}\n    """', choices=choices, label=choices.index(doc)))
    return out


BUILDERS: dict[str, Callable[[int, int], list[ProbeExample]]] = {
    "python-keywords": python_keywords,
    "python-builtins": python_builtins,
    "stdlib-docstrings": stdlib_docstrings,
}
