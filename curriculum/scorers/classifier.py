"""`classifier` scorer: a DCLM-style fastText-equivalent linear classifier, good vs bad documents.

DCLM's filter is a fastText model (word unigrams + bigrams hashed into buckets, a linear model
on their averaged embedding) trained on high-quality positives against random web text. For two
labels fastText's low-rank model is exactly a linear function of the bag of hashed n-grams, so
this is that model without the dependency:

- features: lowercased word and punctuation tokens, plus word bigrams up to ``ngrams``, each
  hashed (stable CRC-based hash) into ``buckets`` slots; a document is the set of its slots,
  L2-normalised (so one document is one unit vector however long it is);
- optionally (``rule_features``) the heuristic scorer's soft rule penalties as extra dense
  features, so the model learns from its training sources how much each structural property
  (repetition, capitals, URLs, boilerplate, ...) matters, on top of the vocabulary;
- optionally (``char_ngrams``) hashed character n-grams of each word (fastText's subwords), which
  share evidence between spellings, inflections and obfuscations ("fr3e", "freee");
- model: logistic regression, trained by mini-batch lazy Adam with a linear learning-rate decay
  (fastText's schedule) and L2 regularisation, classes weighted to balance;
- score: the log-odds of "positive" (finite; higher = more like the positives).

Training is seeded and single-threaded numpy, so the same data gives the same weights bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from curriculum.errors import UserError
from curriculum.registry import StrictModel
from curriculum.scorers.base import FIT, Scorer, clean_texts
from curriculum.scorers.heuristic import rule_penalties
from curriculum.scorers.heuristic_features import rule_values
from curriculum.scorers.heuristic_rules import RULE_NAMES
from curriculum.scorers.registry import SCORERS
from curriculum.scorers.text import combine_hashes, hash_tokens, tokens


class ClassifierConfig(StrictModel):
    name: Literal["classifier"] = "classifier"
    path: str | None = Field(
        None,
        description="Folder written by `currimix score fit classifier` (or "
        "Scorer.save); None means the scorer must be fitted before scoring.",
    )
    buckets: int = Field(
        1 << 20,
        ge=1 << 8,
        le=1 << 26,
        json_schema_extra=FIT,
        description="Hash buckets for the n-gram features (the weight vector's size).",
    )
    ngrams: int = Field(
        2,
        ge=1,
        le=4,
        json_schema_extra=FIT,
        description="Longest word n-gram used as a feature (2 = unigrams + bigrams, as DCLM's fastText).",
    )
    epochs: int = Field(8, ge=1, le=1000, json_schema_extra=FIT, description="Passes over the training data.")
    learning_rate: float = Field(
        0.05, gt=0, le=10, json_schema_extra=FIT, description="Adam's initial step size (decays linearly to 0)."
    )
    l2: float = Field(1e-5, ge=0, le=1, json_schema_extra=FIT, description="L2 penalty on the weights.")
    batch_size: int = Field(64, ge=1, le=1 << 16, json_schema_extra=FIT, description="Documents per update.")
    seed: int = Field(0, ge=0, json_schema_extra=FIT, description="Seed of the shuffling between epochs.")
    max_tokens: int = Field(
        5_000,
        ge=1,
        json_schema_extra=FIT,
        description="Tokens read per document (its first N), for training and scoring alike.",
    )
    rule_features: bool = Field(
        False,
        json_schema_extra=FIT,
        description="Also feed the heuristic scorer's rule penalties (one dense feature per rule).",
    )
    char_ngrams: int = Field(
        0,
        ge=0,
        le=6,
        json_schema_extra=FIT,
        description="Also hash character n-grams of this length of every word (0 = off; fastText uses 3-6).",
    )


def _char_grams(toks: list[str], n: int) -> list[str]:
    """fastText-style subwords: character n-grams of ``<word>`` for every distinct word token."""
    out = []
    for word in set(toks):
        if not word[0].isalnum():
            continue
        padded = f"<{word}>"
        out.extend("#" + padded[i : i + n] for i in range(len(padded) - n + 1))
    return out


def featurize(
    texts: list[str], *, buckets: int, ngrams: int, max_tokens: int, char_ngrams: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR rows (indptr, bucket indices, values) of L2-normalised hashed n-gram sets."""
    indptr = [0]
    parts: list[np.ndarray] = []
    for text in clean_texts(texts):
        toks = tokens(text, max_tokens=max_tokens)
        h = hash_tokens(toks)
        grams = [h]
        for _ in range(1, ngrams):
            if len(grams[-1]) < 2:
                break
            grams.append(combine_hashes(grams[-1][:-1], h[len(h) - len(grams[-1]) + 1 :]))
        if char_ngrams and toks:
            grams.append(hash_tokens(_char_grams(toks, char_ngrams)))
        slots = (
            np.unique(np.concatenate(grams) % np.uint64(buckets)).astype(np.int64)
            if len(h)
            else np.zeros(0, dtype=np.int64)
        )
        parts.append(slots)
        indptr.append(indptr[-1] + len(slots))
    indptr_arr = np.asarray(indptr, dtype=np.int64)
    indices = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    lengths = np.diff(indptr_arr)
    values = np.repeat(1.0 / np.sqrt(np.maximum(lengths, 1)), lengths)
    return indptr_arr, indices, values


def _rows(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the entries of ``rows`` in a CSR matrix, and the local row of each."""
    starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
    local = np.repeat(np.arange(len(rows)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return starts[local] + offsets, local


def _logits(w: np.ndarray, bias: float, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
    n = len(indptr) - 1
    local = np.repeat(np.arange(n), np.diff(indptr))
    return np.bincount(local, weights=w[indices] * values, minlength=n) + bias


@SCORERS.register("classifier", ClassifierConfig)
class ClassifierScorer(Scorer):
    """Log-odds of the positive class under a hashed n-gram logistic regression."""

    trainable = True
    summary = "fastText-style hashed n-gram linear classifier (DCLM): log-odds of 'good'"

    def __init__(self, config: ClassifierConfig):
        super().__init__(config)
        self.weights: np.ndarray | None = None
        self.bias = 0.0

    @property
    def fitted(self) -> bool:
        return self.weights is not None

    @property
    def n_features(self) -> int:
        return self.config.buckets + (len(RULE_NAMES) if self.config.rule_features else 0)

    def _featurize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = self.config
        indptr, indices, values = featurize(
            texts, buckets=c.buckets, ngrams=c.ngrams, max_tokens=c.max_tokens, char_ngrams=c.char_ngrams
        )
        if not c.rule_features:
            return indptr, indices, values
        # Dense rule penalties in the slots after the hash buckets, appended to each CSR row.
        penalties = rule_penalties(rule_values(texts))
        dense = np.stack([penalties[name] for name in RULE_NAMES], axis=1)  # (docs, rules)
        n_docs, n_rules = dense.shape
        lengths = np.diff(indptr) + n_rules
        new_indptr = np.r_[0, np.cumsum(lengths)]
        new_indices = np.empty(new_indptr[-1], dtype=np.int64)
        new_values = np.empty(new_indptr[-1], dtype=np.float64)
        rule_pos = (new_indptr[1:, None] - n_rules + np.arange(n_rules)).ravel()
        keep = np.ones(new_indptr[-1], dtype=bool)
        keep[rule_pos] = False
        new_indices[keep], new_values[keep] = indices, values
        new_indices[rule_pos] = np.tile(c.buckets + np.arange(n_rules), n_docs)
        new_values[rule_pos] = dense.ravel()
        return new_indptr, new_indices, new_values

    def fit(self, positives: list[str], negatives: list[str] | None = None) -> None:
        """Train on positive (good) against negative (bad) documents."""
        if not positives or not negatives:
            raise UserError(
                "classifier scorer: fit needs both positive and negative documents "
                f"(got {len(positives)} positive, {len(negatives or [])} negative)"
            )
        c = self.config
        indptr, indices, values = self._featurize(list(positives) + list(negatives))
        y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
        n = len(y)
        sample_weight = np.where(y == 1, n / (2.0 * len(positives)), n / (2.0 * len(negatives)))
        w = np.zeros(self.n_features)
        m, v = np.zeros(self.n_features), np.zeros(self.n_features)
        bias, bm, bv = 0.0, 0.0, 0.0
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        rng = np.random.default_rng(c.seed)
        steps = c.epochs * ((n + c.batch_size - 1) // c.batch_size)
        step = 0
        for _ in range(c.epochs):
            order = rng.permutation(n)
            for start in range(0, n, c.batch_size):
                rows = order[start : start + c.batch_size]
                pos, local = _rows(indptr, rows)
                idx, val = indices[pos], values[pos]
                z = np.bincount(local, weights=w[idx] * val, minlength=len(rows)) + bias
                p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
                g = (p - y[rows]) * sample_weight[rows] / len(rows)
                touched, inverse = np.unique(idx, return_inverse=True)
                grad = np.bincount(inverse, weights=g[local] * val, minlength=len(touched)) + c.l2 * w[touched]
                step += 1
                lr = c.learning_rate * (1.0 - (step - 1) / steps)  # fastText's linear decay
                corr1, corr2 = 1 - beta1**step, 1 - beta2**step
                # Lazy Adam: only the slots present in the batch move (like fastText's sparse SGD).
                m[touched] = beta1 * m[touched] + (1 - beta1) * grad
                v[touched] = beta2 * v[touched] + (1 - beta2) * grad * grad
                w[touched] -= lr * (m[touched] / corr1) / (np.sqrt(v[touched] / corr2) + eps)
                gb = g.sum()
                bm = beta1 * bm + (1 - beta1) * gb
                bv = beta2 * bv + (1 - beta2) * gb * gb
                bias -= lr * (bm / corr1) / (np.sqrt(bv / corr2) + eps)
        self.weights, self.bias = w.astype(np.float32), float(bias)

    def _save_state(self, folder: Path) -> None:
        assert self.weights is not None
        np.savez(folder / "classifier.npz", weights=self.weights, bias=np.array([self.bias]))

    def _load_state(self, folder: Path) -> None:
        try:
            with np.load(folder / "classifier.npz") as data:
                weights, bias = data["weights"], float(data["bias"][0])
        except (OSError, KeyError, ValueError) as exc:
            raise UserError(f"{folder}: cannot read classifier.npz: {exc}") from exc
        if weights.shape != (self.n_features,):
            raise UserError(
                f"{folder}: classifier.npz has {weights.shape[0]} weights, scorer.json says "
                f"{self.n_features} (buckets={self.config.buckets}, rule_features={self.config.rule_features}); "
                "refit the scorer"
            )
        self.weights, self.bias = weights, bias

    def score_batch(self, batch: dict[str, list[Any]]) -> np.ndarray:
        self.require_fitted()
        assert self.weights is not None
        indptr, indices, values = self._featurize(batch["text"])
        return _logits(self.weights.astype(np.float64), self.bias, indptr, indices, values)
