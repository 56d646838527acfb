"""Seeded corruptions of clean text, for testing that a quality scorer ranks damaged copies lower.

A scorer a data team can trust must not prefer garbled text: a curriculum ordered by such a
score would put the damage last, where it gets the most weight. Each corruption here is a
function ``(text, rng) -> text`` that damages one property of a document and keeps the rest:

- ``word_shuffle``: the words of every line in random order (line layout and vocabulary kept);
- ``char_noise``: 8% of the letters replaced by a random letter of the same case (no new
  symbols or digits, so only word-level plausibility can tell);
- ``boilerplate``: web boilerplate lines (menus, share buttons, cookie and copyright notices)
  inserted between the lines, about one per three lines;
- ``sentence_shuffle``: the sentences of the document in random order, each paragraph keeping
  its number of sentences (every sentence stays intact);
- ``repeated_lines``: about a quarter of the lines copied again at random later places;
- ``mojibake``: typographic quotes, apostrophes and dashes, UTF-8 encoded and decoded as
  Windows-1252 (``’`` becomes ``â€™``), the classic wrong-codec damage;
- ``mt_noise``: machine-translation-like disfluency: 15% of the function words dropped, 10% of
  adjacent word pairs swapped, 3% of the words doubled.

The boilerplate lines come in two disjoint pools (``BOILERPLATE_POOLS``), so a benchmark can tune
on one pool and report on the other: a rule that memorised phrases would not carry over.
"""

from __future__ import annotations

import random
import re
from typing import Callable

Corruption = Callable[[str, random.Random], str]

_BOILERPLATE = (
    "Home | About Us | Contact | Blog",
    "Skip to main content",
    "Share this: Facebook Twitter Pinterest Email",
    "Posted by admin on March 3, 2019",
    "Leave a comment",
    "Subscribe to our newsletter",
    "This site uses cookies to improve your experience.",
    "Copyright © 2021 All rights reserved.",
    "Privacy Policy | Terms of Use",
    "Related Posts",
    "Click here to read more",
    "Log in or register to post comments",
    "« Previous post | Next post »",
    "Tags: news, update, blog",
    "You may also like",
    "Advertisement",
    "Follow us on Instagram",
    "Sign up for free",
    "Powered by WordPress",
    "Back to top",
    "Print this page",
    "Search for:",
    "Categories: Uncategorized",
    "Read more »",
    "Reply ↓",
    "Loading...",
    "Add to cart",
    "Free shipping on orders over $50",
    "Buy now",
    "Please enable JavaScript to view the comments.",
    "Accept all cookies",
    "Sitemap",
    "Menu",
    "Toggle navigation",
    "Download PDF",
    "Rate this: ★★★★☆",
    "0 comments",
    "Like this:",
    "Share on LinkedIn",
    "RSS feed",
)
#: Two disjoint halves of the boilerplate lines: ``[0]`` for tuning, ``[1]`` for reporting.
BOILERPLATE_POOLS: tuple[tuple[str, ...], tuple[str, ...]] = (_BOILERPLATE[0::2], _BOILERPLATE[1::2])

_FUNCTION_WORDS = frozenset(
    "a an the of to in on at for by with from as and or but that which is are was were be".split()
)
#: Where one sentence ends and the next begins (used by `sentence_shuffle` and the quality-dial testbed).
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
_TYPOGRAPHIC = {"'": "’", '"': "”", " - ": " — ", "--": "–"}
_LOWER = "abcdefghijklmnopqrstuvwxyz"


def word_shuffle(text: str, rng: random.Random) -> str:
    out = []
    for line in text.split("\n"):
        words = line.split()
        rng.shuffle(words)
        out.append(" ".join(words))
    return "\n".join(out)


def char_noise(text: str, rng: random.Random, rate: float = 0.08) -> str:
    chars = list(text)
    for i, c in enumerate(chars):
        if c.isascii() and c.isalpha() and rng.random() < rate:
            new = rng.choice(_LOWER.replace(c.lower(), ""))
            chars[i] = new.upper() if c.isupper() else new
    return "".join(chars)


def _lines_with_inserts(lines: list[str], inserts: list[str], rng: random.Random) -> str:
    for extra in inserts:
        lines.insert(rng.randint(0, len(lines)), extra)
    return "\n".join(lines)


def boilerplate(text: str, rng: random.Random, pool: tuple[str, ...] = BOILERPLATE_POOLS[1]) -> str:
    lines = text.split("\n")
    n = max(2, sum(1 for s in lines if s.strip()) // 3)
    return _lines_with_inserts(lines, [rng.choice(pool) for _ in range(n)], rng)


def sentence_shuffle(text: str, rng: random.Random) -> str:
    paragraphs = re.split(r"(\n\s*\n)", text)  # keep the separators
    sentences = [SENTENCE_END.split(p) for p in paragraphs[0::2]]
    flat = [s for p in sentences for s in p]
    rng.shuffle(flat)
    it = iter(flat)
    rebuilt = [" ".join(next(it) for _ in p) for p in sentences]
    out = []
    for i, para in enumerate(rebuilt):
        out.append(para)
        if 2 * i + 1 < len(paragraphs):
            out.append(paragraphs[2 * i + 1])
    return "".join(out)


def repeated_lines(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    content = [s for s in lines if s.strip()]
    if not content:
        return text
    n = max(2, len(content) // 4)
    copies = [rng.choice(content) for _ in range(n)]
    return _lines_with_inserts(lines, copies, rng)


def mojibake(text: str, rng: random.Random) -> str:
    for plain, fancy in _TYPOGRAPHIC.items():
        text = text.replace(plain, fancy)
    return text.encode("utf-8").decode("cp1252", errors="replace")


def mt_noise(text: str, rng: random.Random) -> str:
    out = []
    for line in text.split("\n"):
        words = [w for w in line.split() if not (w.lower() in _FUNCTION_WORDS and rng.random() < 0.15)]
        for i in range(len(words) - 1):
            if rng.random() < 0.10:
                words[i], words[i + 1] = words[i + 1], words[i]
        doubled = []
        for w in words:
            doubled.append(w)
            if rng.random() < 0.03:
                doubled.append(w)
        out.append(" ".join(doubled))
    return "\n".join(out)


CORRUPTIONS: dict[str, Corruption] = {
    "word_shuffle": word_shuffle,
    "char_noise": char_noise,
    "boilerplate": boilerplate,
    "sentence_shuffle": sentence_shuffle,
    "repeated_lines": repeated_lines,
    "mojibake": mojibake,
    "mt_noise": mt_noise,
}


def corrupt(text: str, kind: str, seed: int) -> str:
    """``text`` damaged by the corruption ``kind`` with a ``random.Random(seed)``."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose from {sorted(CORRUPTIONS)}")
    return CORRUPTIONS[kind](text, random.Random(seed))
