"""The heuristic scorer's rules table: each rule's name, source, accepted range, softness and weight.

`RULES` holds every rule of the `heuristic` scorer (`curriculum.scorers.heuristic`), in the order
of the columns `heuristic_features.rule_values` computes. Each `Rule` cites where its measurement
and its cut come from (``ours`` marks this project's own cuts); the history of every rule, and
what evaluation numbers had been seen when it was added, is in BENCHMARKS.md ("Heuristic rules:
provenance"). `TOP_NGRAM_MAX` and `DUP_NGRAM_MAX` are Gopher's n-gram repetition cuts, by n.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One quality rule: the accepted range [lo, hi] of its value and the softness of the penalty.

    ``cite`` says where the measurement *and* its cut come from. ``ours`` marks a rule whose cut
    (or the measurement itself) is this project's choice rather than a published filter's; every
    rule's history (when it was added, what evaluation numbers had been seen by then) is in
    BENCHMARKS.md, "Heuristic rules: provenance".
    """

    name: str
    cite: str
    description: str
    lo: float | None = None
    hi: float | None = None
    scale: float = 0.1
    log: bool = False  # compare log(1 + value) with log(1 + threshold)
    ours: bool = False
    weight: float = 1.0  # default weight in the score (HeuristicConfig.weights overrides it)

    @property
    def source(self) -> str:
        """Short provenance tag: the published filter's name, or "ours"."""
        return "ours" if self.ours else self.cite.split()[0]


_GOPHER = "Gopher (Rae et al. 2021, Appendix A: MassiveWeb quality filter)"
_GOPHER_REP = "Gopher (Rae et al. 2021, Appendix A: repetition thresholds table)"
_FINEWEB = "FineWeb (Penedo et al. 2024; datatrove FineWebQualityFilter)"
TOP_NGRAM_MAX = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_NGRAM_MAX = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}

RULES: tuple[Rule, ...] = (
    Rule(
        "word_count",
        f"{_GOPHER}: 50-100,000 words",
        "whitespace-separated words",
        lo=50,
        hi=100_000,
        scale=1.0,
        log=True,
    ),
    Rule("mean_word_length", f"{_GOPHER}: 3-10", "mean characters per word", lo=3, hi=10, scale=0.5),
    Rule("symbol_word_ratio", f"{_GOPHER}: <= 0.1", "('#' + '...' + '…') per word", hi=0.1, scale=0.03),
    Rule("bullet_line_ratio", f"{_GOPHER}: <= 0.9", "lines starting with a bullet", hi=0.9, scale=0.05),
    Rule("ellipsis_line_ratio", f"{_GOPHER}: <= 0.3", "lines ending with an ellipsis", hi=0.3, scale=0.05),
    Rule("alpha_word_ratio", f"{_GOPHER}: >= 0.8", "words with at least one letter", lo=0.8, scale=0.05),
    Rule(
        "stop_word_count",
        f"{_GOPHER}: >= 2",
        "occurrences of the, be, to, of, and, that, have, with",
        lo=2,
        scale=0.5,
    ),
    Rule("dup_line_ratio", f"{_GOPHER_REP}: <= 0.3", "lines repeating an earlier line", hi=0.3, scale=0.05),
    Rule(
        "dup_line_char_ratio",
        f"{_GOPHER_REP}: <= 0.2",
        "characters in lines repeating an earlier line",
        hi=0.2,
        scale=0.05,
    ),
    Rule(
        "dup_paragraph_ratio", f"{_GOPHER_REP}: <= 0.3", "paragraphs repeating an earlier paragraph", hi=0.3, scale=0.05
    ),
    Rule("dup_paragraph_char_ratio", f"{_GOPHER_REP}: <= 0.2", "characters in repeated paragraphs", hi=0.2, scale=0.05),
    *(
        Rule(
            f"top_{n}gram_char_ratio",
            f"{_GOPHER_REP}: <= {t}",
            f"characters covered by the most repeated word {n}-gram",
            hi=t,
            scale=0.04,
        )
        for n, t in TOP_NGRAM_MAX.items()
    ),
    *(
        Rule(
            f"dup_{n}gram_char_ratio",
            f"{_GOPHER_REP}: <= {t}",
            f"characters covered by repeated word {n}-grams",
            hi=t,
            scale=0.04,
        )
        for n, t in DUP_NGRAM_MAX.items()
    ),
    Rule(
        "terminal_punct_line_ratio",
        f"{_FINEWEB}: line_punct_thr >= 0.12",
        "lines ending in . ! ? or a quote",
        lo=0.12,
        scale=0.05,
    ),
    Rule(
        "short_line_ratio",
        f"{_FINEWEB}: short_line_thr <= 0.67 (< 30 chars)",
        "lines shorter than 30 characters",
        hi=0.67,
        scale=0.05,
    ),
    Rule("newline_word_ratio", f"{_FINEWEB}: new_line_ratio <= 0.3", "line breaks per word", hi=0.3, scale=0.05),
    Rule(
        "char_dup_ratio",
        f"{_FINEWEB}: char_duplicates_ratio <= 0.01",
        "characters in lines repeating an earlier line, per non-newline character",
        hi=0.01,
        scale=0.01,
    ),
    # C4 removes lines naming javascript and whole pages with "lorem ipsum" or a curly bracket;
    # as per-document ratios these two need cuts, which are ours.
    Rule(
        "boilerplate_line_ratio",
        "ours, after C4 (Raffel et al. 2020) line/page removal; cut ours",
        "lines naming javascript, cookies, privacy/terms, lorem ipsum",
        hi=0.05,
        scale=0.03,
        ours=True,
    ),
    Rule(
        "curly_bracket_ratio",
        "ours, after C4's '{' page rule; cut ours",
        "'{' and '}' per character",
        hi=0.005,
        scale=0.003,
        ours=True,
    ),
    # RedPajama-v2 publishes these quality *signals* without cuts; the cuts are ours.
    Rule(
        "all_caps_word_ratio",
        "ours, RedPajama-v2 signal; cut ours",
        "words written in capitals (str.isupper)",
        hi=0.1,
        scale=0.03,
        ours=True,
    ),
    Rule(
        "url_word_ratio",
        "ours, RedPajama-v2-like signal; cut ours",
        "URLs (http://, https://, www.) per word",
        hi=0.02,
        scale=0.01,
        ours=True,
        # Half weight since 2026-11-29 (third pass of issue 13, chosen with the spam AUC in view):
        # the cut fires on 25% of SpamAssassin ham (mailing-list footers) vs 28% of spam.
        weight=0.5,
    ),
    Rule("html_tag_ratio", "ours; cut ours", "HTML tags per word", hi=0.01, scale=0.01, ours=True),
    Rule("digit_char_ratio", "ours; cut ours", "digits per character", hi=0.1, scale=0.03, ours=True),
    Rule(
        "replacement_char_ratio",
        "ours; cut ours",
        "U+FFFD replacement characters per character",
        hi=0.001,
        scale=0.001,
        ours=True,
    ),
    # Spam / advertising markers, ours (added after the first spam ROC-AUC had been seen, see
    # BENCHMARKS.md); each borrows the cut of the published or earlier rule named.
    Rule("exclamation_ratio", "ours; cut ours", "'!' per word", hi=0.03, scale=0.01, ours=True),
    Rule(
        "currency_symbol_ratio",
        "ours; Gopher's symbol cut 0.1 borrowed",
        "$ € £ ¥ per word",
        hi=0.1,
        scale=0.03,
        ours=True,
    ),
    Rule(
        "email_address_ratio",
        "ours; url_word_ratio's cut borrowed",
        "e-mail addresses per word",
        hi=0.02,
        scale=0.01,
        ours=True,
        # Off by default since 2026-11-29 (third pass of issue 13): the spam marker points the wrong
        # way on spam itself (alone ROC-AUC 0.378; it fires on 8.4% of ham, 6.0% of spam: quoted
        # "x@y wrote:" lines). Still computed, so a recipe can weight it back on.
        weight=0.0,
    ),
    Rule(
        "html_entity_ratio",
        "ours; html_tag_ratio's cut borrowed",
        "HTML entities (&amp; &#160; ...) per word",
        hi=0.01,
        scale=0.01,
        ours=True,
    ),
    Rule(
        "call_to_action_line_ratio",
        "ours, phrases after RefinedWeb's line removal; boilerplate_line_ratio's cut borrowed",
        "lines with click here, unsubscribe, buy/order now, sign up, read more, add to cart, ...",
        hi=0.05,
        scale=0.03,
        ours=True,
    ),
    # Character-level damage (added for the corruption benchmark, cuts chosen on its tune half).
    Rule(
        "valid_word_ratio",
        "ours; vocabulary: wordfreq's 100k most frequent words of the language",
        "letter-only words found in the vocabulary, per letter-only word",
        lo=0.88,
        scale=0.01,
        ours=True,
        weight=4.0,
    ),
    Rule(
        "doubled_word_ratio",
        "ours",
        "words equal to the word before them ('the the'), per word",
        hi=0.02,
        scale=0.005,
        ours=True,
        weight=3.0,
    ),
    Rule(
        "lowercase_sentence_start_ratio",
        "ours",
        "sentence ends (. ! ? then a space) followed by a lowercase letter, per sentence end",
        hi=0.3,
        scale=0.05,
        ours=True,
        weight=3.0,
    ),
    Rule(
        "mojibake_ratio",
        "ours; detector: ftfy's badness()",
        "ftfy 'badness' (mojibake sequences) per word",
        hi=0.002,
        scale=0.0005,
        ours=True,
        weight=3.0,
    ),
    # Sentence-order damage (added 2026-11-29, after the report half of the earlier rules had
    # been seen; cut, scale, weight and the floor of 5 pairs chosen on the tune half only).
    Rule(
        "item_number_disorder_ratio",
        "ours",
        "item numbers (1-3 digits at a line start or after a sentence end, before a capitalised word: "
        "list items, verses) not above the item number before them, per pair (at least 5)",
        hi=0.1,
        scale=0.05,
        ours=True,
        weight=3.0,
    ),
)
RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RULES)
