"""The heuristic scorer's feature code: every rule's raw value for every document (`rule_values`).

Per document, the line and character rules (`_doc_values`: line, paragraph and character counts,
regexes, ftfy's mojibake badness); per chunk of documents, the word rules (`_chunk_table`: word
count and length, capitals, letters, stop words, `vocabulary` look-ups, doubled words) and
Gopher's n-gram repetition rules (`_ngram_values`). The values come in the order of `RULES`
(`curriculum.scorers.heuristic_rules`); the scorer (`curriculum.scorers.heuristic`) turns them
into soft penalties.

Speed: the line rules are a handful of C-level string operations per document; the word rules
are computed once per *distinct* word of a batch (C-level ``map`` over its vocabulary, then
spread to every occurrence by integer indexing); the n-gram repetition rules run vectorised over
the whole batch at once (one sort per n over composite ``doc | hash | position`` keys) instead
of a Python loop per n-gram; ftfy's mojibake regex runs only in windows around non-ASCII
characters (`_badness`). Words are identified by string equality, never by ``hash`` alone
(``'a"'`` and ``'≡'`` share a str hash). No spaCy.
"""

from __future__ import annotations

import operator
import re
import string
from functools import lru_cache
from itertools import compress, count, repeat
from typing import Callable

import numpy as np
from ftfy.badness import BADNESS_RE

from curriculum.errors import UserError
from curriculum.scorers.base import clean_texts
from curriculum.scorers.heuristic_rules import DUP_NGRAM_MAX, RULE_NAMES, TOP_NGRAM_MAX

_STOP_WORDS = frozenset(("the", "be", "to", "of", "and", "that", "have", "with"))
_BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "–", "-", "*", "·", "➢", "►", "✓", "‣", "⁃", "◦", "∙")
_ELLIPSES = ("...", "…")
_TERMINAL = (".", "!", "?", '"', "'", "”", "’")
_SHORT_LINE = 30  # FineWeb's short-line length (characters)
# Every bullet and terminal mark is one character, so (lines being non-empty) a line starts with
# a bullet iff its first character is one: a set look-up instead of a startswith per bullet.
_BULLET_SET, _TERMINAL_SET = frozenset(_BULLETS), frozenset(_TERMINAL)
assert all(len(c) == 1 for c in _BULLETS + _TERMINAL)
_FIRST, _LAST = operator.itemgetter(0), operator.itemgetter(-1)
_LETTER = re.compile(r"[^\W\d_]")
_HTML_TAG = re.compile(r"<[a-zA-Z/!][^<>\n]{0,200}>")
_BOILERPLATE = re.compile(
    r"javascript|cookie|privacy policy|terms of (?:use|service)|lorem ipsum|"
    r"all rights reserved"
)
_BOILERPLATE_TRIGGERS = ("javascript", "cookie", "privacy", "terms of", "lorem", "rights reserved")
_DIGITS = b"0123456789"
# Only the "@" and what follows is matched (a match starting at every word character is slow);
# the look-behind asks for a local part before it. It comes after the "@" so that the regex
# engine can search for the literal "@" first (placed before it, 15x slower).
_EMAIL = re.compile(r"@(?<=[\w.+-]@)[\w-]+\.[a-zA-Z]")
_ENTITY = re.compile(r"&(?:[a-zA-Z]{2,8}|#[0-9]{2,6}|#x[0-9a-fA-F]{2,5});")
# Web/e-mail call-to-action boilerplate (RefinedWeb's line-wise removal of "read more",
# "sign-in", cart counters; the usual newsletter and advertising footers). All literal, so
# substring tests (`_lines_with`) find them exactly.
_CALL_TO_ACTION_PHRASES = (
    "click here", "click below", "unsubscribe", "opt-out", "opt out", "buy now", "order now", "act now",
    "call now", "sign up", "subscribe now", "read more", "add to cart", "add to basket", "free shipping",
    "limited time", "special offer", "money back",
)  # fmt: skip
# The phrases grouped under a substring they all contain: a document is searched for the 11 keys,
# and for a group's phrases only when it contains the key (fewer full scans, same phrases found).
_CALL_TO_ACTION_GROUPS = (
    ("click", ("click here", "click below")), ("subscribe", ("unsubscribe", "subscribe now")),
    ("opt", ("opt-out", "opt out")), ("now", ("buy now", "order now", "act now", "call now")),
    ("add to", ("add to cart", "add to basket")),
    *((p, (p,)) for p in ("sign up", "read more", "free shipping", "limited time", "special offer", "money back")),
)  # fmt: skip
assert all(key in p for key, group in _CALL_TO_ACTION_GROUPS for p in group)
assert sorted(p for _, group in _CALL_TO_ACTION_GROUPS for p in group) == sorted(_CALL_TO_ACTION_PHRASES)
_CURRENCY = ("$", "€", "£", "¥")
# A sentence end right after a letter (not "..." or ">>>"), an optional closing quote or bracket,
# white space, then the next sentence's first letter. The look-behind comes after the [.!?], so
# it is only tried at punctuation, not at every position (5x faster).
_SENTENCE_START = re.compile(r"[.!?](?<=[^\W\d_][.!?])[\"')\]”’]?\s+([^\W\d_])")
# Item numbers: 1-3 digits (optionally "." or ")") then a capitalised word, at a line start or
# after a sentence end and white space. Numbered lists and verses count up; shuffled sentences
# break the count. The pattern starts at the line break or punctuation (a fast charset scan;
# one that starts with the alternative "^ or look-behind" is 4x slower); the text's start is
# matched separately by _ITEM_AT_START.
_ITEM_NUMBER = re.compile(r"[.!?\n]\s*(?<=\s)(\d{1,3})[.)]?[ \t]+(?=[A-Z])")
_ITEM_AT_START = re.compile(r"[ \t]*(\d{1,3})[.)]?[ \t]+(?=[A-Z])")
# A UTF-8 lead byte read as Windows-1252/Latin-1 followed by a continuation byte read the same way:
# every classic mojibake has one, so ftfy's slower badness() (`_badness`) runs only on texts that do.
_MOJIBAKE_HINT = re.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122]"
)
# ftfy's badness() is ``len(BADNESS_RE.findall(text))``. One of that pattern's alternatives starts
# with "^", so the regex engine has no first-character test and tries every alternative at every
# position (~140 ns a character). But each of its matches is at most _MOJIBAKE_WIDTH characters
# long and has a non-ASCII character among its first _MOJIBAKE_LEAD + 1 (both checked against
# ftfy's pattern in tests/test_scorers.py), so `_badness` runs it only in windows around clusters
# of non-ASCII characters (10-15x faster, same count; see there).
_MOJIBAKE_WIDTH, _MOJIBAKE_LEAD = 7, 2
_NON_ASCII_CLUSTER = re.compile(r"[^\x00-\x7f](?:[\x00-\x7f]{0,16}[^\x00-\x7f])*")
# Punctuation stripped from both ends of a word before the vocabulary look-up.
_WORD_EDGES = "".join(sorted(set(string.punctuation) | set("“”‘’«»…—–¿¡")))
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'"})

# Composite sort keys for the vectorised n-gram rules: doc (11 bits) | hash (33) | position (20).
_POS_BITS, _HASH_BITS, _DOC_BITS = 20, 33, 11
_MAX_WORDS_PER_CHUNK = (1 << _POS_BITS) - 16
_MAX_DOCS_PER_CHUNK = 1 << _DOC_BITS


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def _dup_stats(items: list[str], total_chars: int) -> tuple[float, float]:
    """(fraction of items repeating an earlier one, fraction of characters in such items).

    Every repeat is a duplicate of one distinct item, so both counts follow from the set of
    distinct items (two C-level passes instead of a Python loop).
    """
    distinct = set(items)
    dup_chars = total_chars - sum(map(len, distinct))
    return _ratio(len(items) - len(distinct), len(items)), _ratio(dup_chars, total_chars)


def _lines_with(low: str, phrases: list[str]) -> int:
    """How many lines (``low.split("\n")``) contain at least one of the literal ``phrases``.

    A line is identified by the position of its end; after a hit the search resumes at that
    end, so the cost stays linear however often a phrase repeats.
    """
    ends: set[int] = set()
    for phrase in phrases:
        i = low.find(phrase)
        while i >= 0:
            end = low.find("\n", i)
            if end < 0:
                ends.add(len(low))
                break
            ends.add(end)
            i = low.find(phrase, end)
    return len(ends)


def _badness(text: str) -> int:
    """ftfy's ``badness(text)`` (its number of mojibake matches), searched near non-ASCII text only.

    A cluster is a run of non-ASCII characters with gaps of at most 16 ASCII ones; clusters are
    more than 16 apart, so a window (from _MOJIBAKE_LEAD before a cluster's first non-ASCII
    character to _MOJIBAKE_WIDTH - 1 after its last) holds no other cluster's characters and
    ends before the next window starts. Every match starts within _MOJIBAKE_LEAD before a
    non-ASCII character and is at most _MOJIBAKE_WIDTH long, so it lies in its cluster's
    window, where the engine sees the same characters as in the whole text (the window's end
    cuts no match or attempt, and "^" matches only at the text's real start, as ``pos`` keeps
    it); ASCII stretches between windows hold no match. So findall over the windows, in order,
    finds exactly the matches of findall over the whole text.
    """
    bad = BADNESS_RE.findall
    lead, width = _MOJIBAKE_LEAD, _MOJIBAKE_WIDTH
    return sum(len(bad(text, max(c.start() - lead, 0), c.end() - 1 + width)) for c in _NON_ASCII_CLUSTER.finditer(text))


def _doc_values(text: str, words: list[str]) -> list[float]:
    """Line- and character-level rule values of one document; appends its words to ``words``.

    Word-level rules (word count and length, capitals, letters, stop words, vocabulary, doubled
    words) and the n-gram rules are filled in later, vectorised over the chunk's distinct words.
    """
    words.extend(text.split())
    low = text.lower()
    n_chars = len(text)
    n_newlines = text.count("\n")
    # ASCII text (most documents): one bytes pass deleting the digits, not ten str.count scans;
    # of the currency symbols only "$" can occur in it.
    if text.isascii():
        n_digits = n_chars - len(text.encode("ascii").translate(None, _DIGITS))
        currency = text.count("$")
    else:
        n_digits = sum(map(text.count, "0123456789"))
        currency = sum(map(text.count, _CURRENCY))
    lines = list(filter(None, map(str.strip, text.split("\n"))))
    n_lines = len(lines)
    line_lengths = list(map(len, lines))
    line_chars = sum(line_lengths)
    if "\n\n" in text:
        paragraphs = list(filter(None, map(str.strip, text.split("\n\n"))))
        para_chars = sum(map(len, paragraphs))
    else:
        paragraphs = lines[:1]
        para_chars = len(lines[0]) if lines else 0
    dup_lines, dup_line_chars = _dup_stats(lines, line_chars)
    dup_paras, dup_para_chars = _dup_stats(paragraphs, para_chars)
    symbols = text.count("#") + text.count("...") + text.count("…")
    # The boilerplate regex is slow-ish; most documents contain none of its trigger words.
    boilerplate = len(_BOILERPLATE.findall(low)) if any(map(low.__contains__, _BOILERPLATE_TRIGGERS)) else 0
    tags = len(_HTML_TAG.findall(text)) if "<" in text else 0
    emails = len(_EMAIL.findall(text)) if "@" in text else 0
    entities = len(_ENTITY.findall(text)) if "&" in text else 0
    # The first character after each sentence end; a lowercase one means broken sentences.
    starts = _SENTENCE_START.findall(text)
    actions = _lines_with(low, [p for key, group in _CALL_TO_ACTION_GROUPS if key in low for p in group if p in low])
    items = _item_numbers(text) if n_digits else []
    return [
        0.0,  # word_count: filled in per chunk
        0.0,  # mean_word_length: filled in per chunk
        symbols,  # divided by the word count per chunk
        _ratio(sum(map(_BULLET_SET.__contains__, map(_FIRST, lines))), n_lines),
        _ratio(sum(map(str.endswith, lines, repeat(_ELLIPSES))), n_lines),
        0.0,  # alpha_word_ratio: filled in per word type
        0.0,  # stop_word_count: filled in per word type
        dup_lines,
        dup_line_chars,
        dup_paras,
        dup_para_chars,
        *([0.0] * (len(TOP_NGRAM_MAX) + len(DUP_NGRAM_MAX))),  # filled in by _ngram_values
        _ratio(sum(map(_TERMINAL_SET.__contains__, map(_LAST, lines))), n_lines),
        _ratio(sum(map(_SHORT_LINE.__gt__, line_lengths)), n_lines),
        n_newlines,  # per word, per chunk
        _ratio(dup_line_chars * line_chars, n_chars - n_newlines),
        _ratio(boilerplate, n_lines),
        _ratio(text.count("{") + text.count("}"), n_chars),
        0.0,  # all_caps_word_ratio: filled in per word type
        low.count("http://") + low.count("https://") + low.count("www."),  # per word, per chunk
        tags,  # per word, per chunk
        _ratio(n_digits, n_chars),
        _ratio(text.count("\ufffd"), n_chars),
        text.count("!"),  # per word, per chunk
        currency,  # per word, per chunk
        emails,  # per word, per chunk
        entities,  # per word, per chunk
        _ratio(actions, n_lines),
        0.0,  # valid_word_ratio: filled in per word type
        0.0,  # doubled_word_ratio: filled in from the word ids
        # At least 10 in the denominator: one "? and" in a two-sentence text is not broken text.
        _ratio(sum(map(str.islower, starts)), max(len(starts), 10)),
        _badness(text) if not text.isascii() and _MOJIBAKE_HINT.search(text) else 0.0,  # per word, per chunk
        # A number not above the one before it; at least 5 pairs in the denominator, so that one
        # restart in a short text (a second list) is not disorder.
        _ratio(sum(map(int.__ge__, items, items[1:])), max(len(items) - 1, 5)),
    ]


def _item_numbers(text: str) -> list[int]:
    """The item numbers of ``text`` in order (see ``_ITEM_NUMBER``)."""
    first = _ITEM_AT_START.match(text)
    found = _ITEM_NUMBER.findall(text)
    return list(map(int, [first.group(1), *found] if first else found))


@lru_cache(maxsize=4)
def vocabulary(language: str = "en", size: int = 100_000) -> frozenset[str]:
    """The ``size`` most frequent words of ``language`` in wordfreq's "large" list (lowercase)."""
    import wordfreq  # imported here: loading the list costs ~0.1 s, only when the heuristic runs

    try:
        words = wordfreq.top_n_list(language, size, wordlist="large")
    except LookupError as exc:
        raise UserError(f"heuristic scorer: wordfreq has no word list for language {language!r}: {exc}") from None
    return frozenset(w.translate(_APOSTROPHES) for w in words)


def _each(words: list[str], transform: Callable[[str], str]) -> list[str]:
    """``[transform(w) for w in words]`` as one C call on the NUL-joined words.

    For the transforms used here (lower, upper, apostrophe replaces), which never add, drop or
    cross a NUL. A word containing NUL itself cannot be split back out: then word by word.
    """
    out = transform("\x00".join(words)).split("\x00")
    return out if len(out) == len(words) else list(map(transform, words))


def _straight_apostrophes(text: str) -> str:
    """``text.translate(_APOSTROPHES)`` as two replaces: fast enough to run over all words at once."""
    return text.replace("’", "'").replace("‘", "'")


def _valid_words(words: list[str], vocab: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
    """For distinct lowercased words: (is a letter-only word, and is it in ``vocab``).

    Punctuation is stripped from both ends first; ``don't`` and ``well-known`` count as letter
    words, valid when the whole word (or every hyphen part) is in the vocabulary. Digits, symbols
    and mixed tokens are neither valid nor invalid: only letter words can show letter damage.
    """
    # Fast path in C: plain letter words looked up as they are; only the rest (punctuation
    # attached, apostrophes, hyphens, digits) goes through the Python loop. ``compress`` picks
    # the words to look up at C level, so only letter words are looked up.
    is_alpha = list(map(str.isalpha, words))
    candidate = np.array(is_alpha, dtype=bool)
    valid = np.zeros(len(words), dtype=bool)
    letters = np.flatnonzero(candidate)
    valid[letters] = np.fromiter(map(vocab.__contains__, compress(words, is_alpha)), dtype=bool, count=len(letters))
    rest = np.flatnonzero(~candidate)
    stripped = list(map(str.strip, compress(words, map(operator.not_, is_alpha)), repeat(_WORD_EDGES)))
    cores = _each(stripped, _straight_apostrophes)
    core_alpha = list(map(str.isalpha, cores))
    alpha = np.array(core_alpha, dtype=bool)
    found = rest[alpha]
    candidate[found] = True
    valid[found] = np.fromiter(map(vocab.__contains__, compress(cores, core_alpha)), dtype=bool, count=len(found))
    # Only apostrophes and hyphens left inside: whole word or every part in the vocabulary.
    for j in np.flatnonzero(~alpha).tolist():
        core = cores[j]
        if core and core.replace("'", "").replace("-", "").isalpha():
            candidate[rest[j]] = True
            valid[rest[j]] = core in vocab or all(p in vocab for p in core.replace("'", "-").split("-") if p)
    return candidate, valid


def _has_letter(words: list[str]) -> np.ndarray:
    """Which (lowercased) words contain a letter, for a list of distinct words."""
    # Fast path: a lowercased word with a cased letter changes when upper-cased (one C call
    # for all words); only words without cased letters (digits, CJK, ...) need the regex.
    out = np.fromiter(map(str.__ne__, words, _each(words, str.upper)), dtype=bool, count=len(words))
    for i in np.flatnonzero(~out):
        out[i] = _LETTER.search(words[i]) is not None
    return out


def _ngram_values(
    ids: np.ndarray, lengths: np.ndarray, total: np.ndarray, doc_of: np.ndarray, n_docs: int
) -> dict[str, np.ndarray]:
    """Gopher's n-gram repetition rules for every document of a chunk at once.

    ``top_{n}gram``: the largest share of a document's word characters (``total``) covered by one
    repeated n-gram (count x its length). ``dup_{n}gram``: the share of word characters covered
    by occurrences of an n-gram that already occurred earlier in the same document.

    Word lengths are whole numbers, so every character sum here (``cum_len`` and its
    differences, the per-document totals) is exact in float64 whatever the order of summation.
    """
    out: dict[str, np.ndarray] = {}
    zeros = np.zeros(n_docs)
    cum_len = np.r_[0, np.cumsum(lengths)]
    n_words = len(ids)
    doc_shift = np.uint64(_HASH_BITS + _POS_BITS)
    key_base = (doc_of.astype(np.uint64) << doc_shift) | np.arange(n_words, dtype=np.uint64)
    pos_mask = np.uint64((1 << _POS_BITS) - 1)
    h = ids.astype(np.uint64)  # becomes the rolling n-gram hash
    with np.errstate(over="ignore"):
        spread = h * np.uint64(0x9E3779B97F4A7C15)  # each word's term of the rolling hash, once
    for n in range(1, max(DUP_NGRAM_MAX) + 1):
        if n > 1:
            h = h[:-1]  # a view: the update below runs in place
            h *= np.uint64(0x100000001B3)  # (array integer arithmetic wraps around silently)
            h ^= spread[n - 1 :]
        if n not in TOP_NGRAM_MAX and n not in DUP_NGRAM_MAX:
            continue
        name = f"top_{n}gram_char_ratio" if n in TOP_NGRAM_MAX else f"dup_{n}gram_char_ratio"
        # Key doc | hash | position, built in place: the mixed hash's top _HASH_BITS bits,
        # shifted right by 64 - _HASH_BITS - _POS_BITS, with the position bits then cleared.
        with np.errstate(over="ignore"):
            keys = h * np.uint64(0xD6E8FEB86659FD93)
        keys >>= np.uint64(64 - _HASH_BITS - _POS_BITS)
        keys &= ~pos_mask
        keys |= key_base[: len(h)]
        keys = keys[doc_of[: len(h)] == doc_of[n - 1 :]]  # n-grams inside one document
        if len(keys) == 0:
            out[name] = zeros
            continue
        keys.sort()
        group = keys >> np.uint64(_POS_BITS)
        same = group[1:] == group[:-1]  # key i + 1 repeats the doc | hash of key i
        if n in TOP_NGRAM_MAX:
            # Runs of equal doc | hash; only repeated ones (count > 1) cover anything, so only
            # they are kept (a document without any gets 0, as when its runs' zeros are maxed).
            # A repeated run is a run of True in ``same``, found from its two edges: keys
            # rise .. fall, without materialising every run start.
            edges = np.flatnonzero(np.diff(np.r_[False, same, False]))
            rise, fall = edges[::2], edges[1::2]
            first = keys[rise]  # each repeated run's earliest occurrence
            pos = (first & pos_mask).astype(np.int64)
            covered = (fall - rise + 1) * (cum_len[pos + n] - cum_len[pos])
            run_doc = (first >> doc_shift).astype(np.int64)
            best = zeros.copy()
            if len(run_doc):
                # runs are sorted by document: the best run per document is a segmented max
                seg = np.flatnonzero(np.r_[True, run_doc[1:] != run_doc[:-1]])
                best[run_doc[seg]] = np.maximum.reduceat(covered, seg)
            out[name] = np.minimum(np.divide(best, total, out=zeros.copy(), where=total > 0), 1.0)
        else:
            # Start positions of repeating occurrences (not the first of their run), in text
            # order. They all span n words, so each adds the words between the end of the one
            # before it (or its own start, if later) and its own end; n-grams never cross a
            # document, so an earlier document's end never reaches into the next one.
            rep = np.sort((keys[1:][same] & pos_mask).astype(np.int64))
            end = rep + n
            begin = rep.copy()
            np.maximum(begin[1:], end[:-1], out=begin[1:])
            dup_chars = np.bincount(doc_of[rep], weights=cum_len[end] - cum_len[begin], minlength=n_docs)
            out[name] = np.divide(dup_chars, total, out=zeros.copy(), where=total > 0)
    return out


#: Rules whose per-document count `_doc_values` returns, divided by the word count per chunk.
_PER_WORD = (
    "symbol_word_ratio", "newline_word_ratio", "url_word_ratio", "html_tag_ratio", "exclamation_ratio",
    "currency_symbol_ratio", "email_address_ratio", "html_entity_ratio", "mojibake_ratio",
)  # fmt: skip


def _distinct(items: list[str]) -> tuple[list[str], np.ndarray]:
    """Distinct items in first-occurrence order, and the index in that list of every item."""
    # One C-level pass: each item maps to the stream position of its first occurrence ...
    first: dict[str, int] = {}
    first_at = np.fromiter(map(first.setdefault, items, count()), dtype=np.int64, count=len(items))
    # ... which the distinct items' ranks then turn into dense indices.
    dense = np.zeros(len(items), dtype=np.int64)
    dense[np.fromiter(first.values(), dtype=np.int64, count=len(first))] = np.arange(len(first))
    return list(first), dense[first_at]


def _chunk_table(rows: list[list[float]], words: list[str], counts: list[int], language: str) -> np.ndarray:
    """The rule table of one chunk: per-document rows completed with the word-level rules.

    Word properties are computed once per *distinct* word (C-level ``map`` over the chunk's
    vocabulary) and spread to every occurrence with integer indexing. Word ids are assigned to
    lowercased words in first-occurrence order, so the n-gram rules see the same ids whatever
    the hash seed.
    """
    table = np.asarray(rows, dtype=np.float64)
    n_docs = len(rows)
    col = RULE_NAMES.index
    doc_of = np.repeat(np.arange(n_docs), counts)
    n_words = np.bincount(doc_of, minlength=n_docs).astype(np.float64)

    def per_word(total: np.ndarray, empty: float = 0.0) -> np.ndarray:
        return np.divide(total, n_words, out=np.full(n_docs, empty), where=n_words > 0)

    def doc_sum(weights: np.ndarray) -> np.ndarray:
        return np.bincount(doc_of, weights=weights, minlength=n_docs)

    distinct, word_of = _distinct(words)
    low_distinct, low_of = _distinct(_each(distinct, str.lower))
    ids = low_of[word_of]  # lowercased-word id of every word occurrence
    lengths = np.fromiter(map(len, distinct), dtype=np.float64, count=len(distinct))[word_of]
    is_upper = np.fromiter(map(str.isupper, distinct), dtype=bool, count=len(distinct))

    total_length = doc_sum(lengths)
    table[:, col("word_count")] = n_words
    table[:, col("mean_word_length")] = per_word(total_length)
    table[:, col("all_caps_word_ratio")] = per_word(doc_sum(is_upper[word_of]))
    for name in _PER_WORD:
        table[:, col(name)] = per_word(table[:, col(name)])
    has_letter = _has_letter(low_distinct)[ids]
    table[:, col("alpha_word_ratio")] = per_word(doc_sum(has_letter))
    candidate, valid = _valid_words(low_distinct, vocabulary(language))
    n_letter_words = doc_sum(candidate[ids])
    table[:, col("valid_word_ratio")] = np.divide(
        doc_sum(valid[ids]), n_letter_words, out=np.ones(n_docs), where=n_letter_words > 0
    )
    doubled = (ids[1:] == ids[:-1]) & (doc_of[1:] == doc_of[:-1]) & has_letter[1:]
    table[:, col("doubled_word_ratio")] = per_word(np.bincount(doc_of[1:][doubled], minlength=n_docs))
    is_stop = np.fromiter(map(_STOP_WORDS.__contains__, low_distinct), dtype=bool, count=len(low_distinct))
    table[:, col("stop_word_count")] = np.bincount(doc_of[is_stop[ids]], minlength=n_docs)
    for name, values in _ngram_values(ids, lengths, total_length, doc_of, n_docs).items():
        table[:, col(name)] = values
    return table


def rule_values(texts: list[str], *, max_chars: int = 500_000, language: str = "en") -> dict[str, np.ndarray]:
    """Every rule's value for every text: ``{rule name: float64 array of len(texts)}``."""
    texts = [t[:max_chars] for t in clean_texts(texts)]
    tables: list[np.ndarray] = []
    start = 0
    while start < len(texts):
        words: list[str] = []
        counts: list[int] = []
        rows: list[list[float]] = []
        # One chunk: as many documents as fit the composite-key bit budget.
        while start < len(texts) and len(rows) < _MAX_DOCS_PER_CHUNK:
            text = texts[start]
            if rows and len(words) + len(text) // 2 + 1 > _MAX_WORDS_PER_CHUNK:
                break
            before = len(words)
            rows.append(_doc_values(text, words))
            counts.append(len(words) - before)
            start += 1
        tables.append(_chunk_table(rows, words, counts, language))
    table = np.concatenate(tables) if tables else np.zeros((0, len(RULE_NAMES)))
    return {name: table[:, j].copy() for j, name in enumerate(RULE_NAMES)}
