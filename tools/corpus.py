"""A small three-domain corpus built offline from what every Python installation has.

* ``code``: the standard library's ``.py`` sources (one file per document);
* ``prose``: English technical prose, the docstrings of the standard library plus the language
  reference topics that ship in ``pydoc_data``;
* ``web``: noisy web-like text generated from the same words: keyword spam, boilerplate lines,
  shuffled sentences and fragments, the kind of low-quality text quality scorers should rank last.

Deterministic for a given seed and Python version; used by `currimix quickstart` and tests.
"""

from __future__ import annotations

import ast
import json
import random
import re
import sysconfig
import warnings
from pathlib import Path

from curriculum.files import atomic_path

_SKIP_DIRS = {
    "test",
    "tests",
    "idlelib",
    "turtledemo",
    "lib2to3",
    "ensurepip",
    "site-packages",
    "pydoc_data",
    "encodings",
    "__pycache__",
    "tkinter",
    "venv",
}


def stdlib_files(limit_bytes: int) -> list[Path]:
    """Standard-library modules in a stable order, up to ``limit_bytes`` of source."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files, total = [], 0
    for path in sorted(root.rglob("*.py")):
        if _SKIP_DIRS & set(path.relative_to(root).parts[:-1]) or path.stat().st_size < 2000:
            continue
        files.append(path)
        total += path.stat().st_size
        if total >= limit_bytes:
            break
    return files


def read_source(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None  # a few stdlib files are latin-1; tokenizer training wants clean UTF-8


def docstrings(source: str) -> list[str]:
    """Module, class and function docstrings of at least 200 characters."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and len(doc) >= 200:
                out.append(doc)
    return out


def reference_topics() -> list[str]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions split the docs out
        return []
    return [text for _, text in sorted(topics.items()) if len(text) >= 200]


_BOILERPLATE = [
    "Click here to subscribe!",
    "Copyright (c) All rights reserved.",
    "Home | About | Contact | Login",
    "Best price guaranteed!!! Buy now",
    "Share this: Facebook Twitter Email",
    "Read more...",
    "Accept cookies to continue",
    "FREE shipping on orders over $50",
    "Posted by admin",
    "Loading...",
    "Page 1 2 3 4 5 Next >>",
    "Sign up for our newsletter",
]


def noisy_document(rng: random.Random, words: list[str], sentences: list[str]) -> str:
    """One low-quality page: a mix of spam, boilerplate, word salad and sentence fragments."""
    lines = []
    for _ in range(rng.randint(8, 40)):
        kind = rng.random()
        if kind < 0.3:
            lines.append(rng.choice(_BOILERPLATE))
        elif kind < 0.55:
            keyword = rng.choice(words)
            lines.append(" ".join([keyword] * rng.randint(3, 9)) + " " + rng.choice(["!!!", "...", "$$$", "#1"]))
        elif kind < 0.8:
            lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(4, 16))))
        else:
            sentence = rng.choice(sentences)
            cut = rng.randint(10, max(11, len(sentence)))
            lines.append("- " + sentence[:cut] + "...")
    return "\n".join(lines)


def build_corpus(
    out_dir: str | Path, *, code_bytes: int = 3_000_000, noisy_documents: int = 1500, seed: int = 0
) -> dict[str, Path]:
    """Write ``code.jsonl``, ``prose.jsonl`` and ``web.jsonl`` under ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    code, prose = [], []
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in stdlib_files(code_bytes):
        source = read_source(path)
        if source is None:
            continue
        name = path.relative_to(root).with_suffix("").as_posix()  # unique: many modules are `__init__`
        code.append({"id": f"code/{name}/{len(code)}", "text": source})
        prose.extend({"id": f"doc/{name}/{i}", "text": d} for i, d in enumerate(docstrings(source)))
    prose.extend({"id": f"topic/{i}", "text": t} for i, t in enumerate(reference_topics()))
    rng = random.Random(seed)
    text = " ".join(d["text"] for d in prose)
    words = sorted({w for w in re.findall(r"[A-Za-z]{3,12}", text)})
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if 30 < len(s) < 300]
    web = [{"id": f"web/{i}", "text": noisy_document(rng, words, sentences)} for i in range(noisy_documents)]
    paths = {}
    for name, docs in (("code", code), ("prose", prose), ("web", web)):
        path = out_dir / f"{name}.jsonl"
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            for doc in docs:
                fh.write(json.dumps(doc) + "\n")
        paths[name] = path
    return paths
