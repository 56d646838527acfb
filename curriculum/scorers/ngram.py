"""`ngram` scorer: per-token log-probability under a word n-gram LM fitted on high-quality text.

The CCNet / KenLM recipe (score web text by its perplexity under a model of reference text), in
numpy with no compiled dependency:

- tokens: lowercased words and punctuation runs; words seen fewer than ``min_count`` times in
  the reference text become ``<unk>``; each document is ``<s>``-padded and ends with ``</s>``;
  ``<unk>`` stands for a whole class of rare words, so its probability is divided by the number
  of distinct words it replaced in the reference text (otherwise gibberish, all ``<unk>``, would
  look like fluent text);
- n-grams are identified by 64-bit rolling hashes of their token ids (no n-gram strings kept);
- smoothing: interpolated *modified* Kneser-Ney (Chen & Goodman), as in KenLM's ``lmplz``:
  three discounts per order estimated from counts-of-counts, continuation counts for the lower
  orders, interpolation down to a uniform distribution over the vocabulary;
- score = mean log10 probability per token (the negative log10 perplexity), so it is
  length-normalised and higher = more like the reference text.

Fitting and scoring are vectorised over whole corpora / batches (sorted hash tables and
``searchsorted``), so a batch costs a few numpy passes per order, not a Python loop per n-gram.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from curriculum.errors import UserError
from curriculum.files import atomic_path
from curriculum.registry import StrictModel
from curriculum.scorers.base import FIT, Scorer, clean_texts
from curriculum.scorers.registry import SCORERS
from curriculum.scorers.text import tokens

UNK, BOS, EOS = 0, 1, 2
_SPECIAL = ("<unk>", "<s>", "</s>")
_C1, _C2, _C3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


class NgramConfig(StrictModel):
    name: Literal["ngram"] = "ngram"
    path: str | None = Field(
        None,
        description="Folder written by `currimix score fit ngram` (or "
        "Scorer.save); None means the scorer must be fitted before scoring.",
    )
    order: int = Field(4, ge=1, le=8, json_schema_extra=FIT, description="n of the n-gram model.")
    min_count: int = Field(
        2, ge=1, json_schema_extra=FIT, description="Reference-text words seen fewer times than this become <unk>."
    )
    max_vocab: int = Field(
        500_000, ge=10, json_schema_extra=FIT, description="Keep at most this many of the most frequent words."
    )
    max_tokens: int = Field(
        20_000, ge=1, description="Tokens scored per document (its first N); bounds time and memory on huge documents."
    )


def check_reference_fit(name: str, positives: list[str], negatives: list[str] | None) -> None:
    """The training documents of a reference LM (``ngram``, ``kenlm``): at least one positive, and no
    negatives: it learns only what good text looks like, so say so rather than drop them silently."""
    if negatives:
        raise UserError(
            f"{name} scorer: got {len(negatives)} negative documents, but a reference language model learns "
            "only from good (positive) text and would ignore them; drop -n/--negative, or fit the "
            "`classifier` scorer, which uses both"
        )
    if not positives:
        raise UserError(f"{name} scorer: fit needs at least one reference (positive) document")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads bits so rolling hashes of short n-grams do not collide."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(31))) * _C2
        x = (x ^ (x >> np.uint64(29))) * _C3
        return x ^ (x >> np.uint64(32))


def _gram_hashes(ids: np.ndarray, order: int) -> list[np.ndarray]:
    """``G[k-1][j]`` = hash of the k tokens ending at position j (valid for j >= k-1)."""
    tok = ids.astype(np.uint64) + np.uint64(1)
    grams = [_mix(tok * _C1)]
    for k in range(2, order + 1):
        g = np.zeros_like(tok)
        with np.errstate(over="ignore"):
            g[k - 1 :] = _mix((grams[-1][k - 2 : -1] * _C2) ^ (tok[k - 1 :] * _C1))
        grams.append(g)
    return grams


def _lookup(table: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index into sorted ``table``, found mask) for each query hash."""
    if len(table) == 0:
        return np.zeros(len(queries), dtype=np.int64), np.zeros(len(queries), dtype=bool)
    if len(queries) > 1 << 16:
        # Binary searches in sorted order walk the table cache-friendly: ~4x faster on millions
        # of random hashes, even counting the argsort (identical result).
        order = np.argsort(queries)
        idx = np.empty(len(queries), dtype=np.int64)
        idx[order] = np.searchsorted(table, queries[order])
    else:
        idx = np.searchsorted(table, queries)
    idx = np.minimum(idx, len(table) - 1)
    return idx, table[idx] == queries


def _discounts(adjusted: np.ndarray) -> np.ndarray:
    """Modified-KN discounts D1, D2, D3+ from counts-of-counts (clamped for tiny corpora)."""
    n = [float((adjusted == i).sum()) for i in (1, 2, 3, 4)]
    if min(n) == 0:  # too little data for the estimate: fall back to the classic D = 0.75
        return np.array([0.5, 0.75, 0.75])
    y = n[0] / (n[0] + 2 * n[1])
    d = np.array([1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]])
    return np.clip(d, 0.05, [0.95, 1.95, 2.95])


class NgramModel:
    """The fitted tables: per order, sorted n-gram hashes with discounted counts, and per
    context the normaliser and the interpolation mass."""

    def __init__(self, vocab: list[str], order: int, arrays: dict[str, np.ndarray]):
        self.vocab = vocab
        self.order = order
        self.arrays = arrays
        self.index = {w: i for i, w in enumerate(vocab)}

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls, texts: list[str], *, order: int, min_count: int, max_vocab: int, arpa: Path | None = None
    ) -> "NgramModel":
        """Fit on ``texts``; with ``arpa`` also write the model there in ARPA format (`write_arpa`)."""
        docs = [tokens(t) for t in clean_texts(texts)]
        counts = collections.Counter(w for doc in docs for w in doc)
        kept = sorted(
            (w for w, c in counts.items() if c >= min_count and w not in _SPECIAL), key=lambda w: (-counts[w], w)
        )[:max_vocab]
        vocab = list(_SPECIAL) + kept
        model = cls(vocab, order, {})
        unk_types = max(1, sum(1 for w in counts if w not in model.index))
        ids, targets = model._encode(docs)
        if len(targets) == 0:
            raise UserError("ngram scorer: the reference documents contain no tokens")
        grams = _gram_hashes(ids, order)
        arrays: dict[str, np.ndarray] = {}
        higher_suffix: np.ndarray | None = None
        gram_positions: dict[int, np.ndarray] = {}
        for k in range(order, 0, -1):
            uniq, first, raw = np.unique(grams[k - 1][targets], return_index=True, return_counts=True)
            if k == order:
                adjusted = raw
            else:  # continuation counts: distinct left extensions among the (k+1)-grams
                assert higher_suffix is not None
                sfx, cont = np.unique(higher_suffix, return_counts=True)
                adjusted = np.zeros(len(uniq), dtype=np.int64)
                idx, found = _lookup(uniq, sfx)
                assert found.all(), "every (k+1)-gram suffix is a k-gram"
                adjusted[idx] = cont
            positions = targets[first]
            gram_positions[k] = positions
            higher_suffix = grams[k - 2][positions] if k >= 2 else None
            d = _discounts(adjusted)
            discount = d[np.minimum(adjusted, 3) - 1]
            arrays[f"gram{k}"] = uniq
            arrays[f"num{k}"] = (adjusted - discount).astype(np.float32)
            # Per-context normaliser and interpolation mass (D1 N1 + D2 N2 + D3 N3+).
            ctx = grams[k - 2][positions - 1] if k >= 2 else np.zeros(len(uniq), dtype=np.uint64)
            ctx_uniq, ctx_inv = np.unique(ctx, return_inverse=True)
            arrays[f"ctx{k}"] = ctx_uniq
            arrays[f"den{k}"] = np.bincount(ctx_inv, weights=adjusted).astype(np.float64)
            arrays[f"gam{k}"] = np.bincount(ctx_inv, weights=discount).astype(np.float64)
        arrays["unk_types"] = np.array([unk_types], dtype=np.int64)
        model.arrays = arrays
        if arpa is not None:
            model.write_arpa(arpa, ids, gram_positions)
        return model

    def write_arpa(self, path: Path, ids: np.ndarray, gram_positions: dict[int, np.ndarray]) -> None:
        """Write the fitted model as an ARPA file (what KenLM and SRILM read), atomically.

        Interpolated Kneser-Ney maps onto ARPA exactly as KenLM's ``lmplz`` writes it: each seen
        k-gram gets its interpolated probability computed with orders 1..k, and each context gets
        the back-off weight ``gamma / denominator`` its k+1-grams interpolate with. ``<unk>`` is
        always listed (with the probability of an unseen word when the training text had none).
        KenLM starts a sentence with one ``<s>``, where this model pads ``order - 1`` of them, so
        n-grams with ``<s>`` after their first token are left out; KenLM and the ngram scorer
        therefore agree on every token from the ``order``-th of a document on (tested), and the
        first ``order - 1`` tokens see a shorter history under KenLM.
        """
        a = self.arrays
        words = np.array(self.vocab, dtype=object)
        sections: list[list[str]] = []
        for k in range(1, self.order + 1):
            pos = np.sort(gram_positions[k])
            grams = np.stack([ids[pos - k + 1 + j] for j in range(k)], axis=1)
            keep = ~(grams[:, 1:] == BOS).any(axis=1)
            pos, grams = pos[keep], grams[keep]
            logp = self.log10_probs(ids, pos, unk_class=False, max_order=k)
            backoff = np.zeros(len(pos))
            has_backoff = np.zeros(len(pos), dtype=bool)
            if k < self.order:
                idx, found = _lookup(a[f"ctx{k + 1}"], _gram_hashes(ids, k)[k - 1][pos])
                backoff[found] = np.log10(a[f"gam{k + 1}"][idx[found]] / a[f"den{k + 1}"][idx[found]])
                has_backoff = found
            text = [" ".join(row) for row in words[grams]]
            lines = [
                f"{p:.7f}\t{t}\t{b:.7f}" if hb else f"{p:.7f}\t{t}"
                for p, t, b, hb in zip(logp.tolist(), text, backoff.tolist(), has_backoff.tolist())
            ]
            if k == 1:
                bos_idx, bos_found = (
                    _lookup(a["ctx2"], _gram_hashes(np.array([BOS]), 1)[0])
                    if self.order > 1
                    else (np.zeros(1, dtype=np.int64), np.zeros(1, dtype=bool))
                )
                bos_backoff = np.log10(a["gam2"][bos_idx[0]] / a["den2"][bos_idx[0]]) if bos_found[0] else 0.0
                lines.append(f"-99\t<s>\t{bos_backoff:.7f}")
                if not (grams[:, 0] == UNK).any():
                    unseen = a["gam1"][0] / a["den1"][0] / len(self.vocab)
                    lines.append(f"{np.log10(unseen):.7f}\t<unk>")
            sections.append(lines)
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            fh.write("\\data\\\n")
            for k, lines in enumerate(sections, 1):
                fh.write(f"ngram {k}={len(lines)}\n")
            for k, lines in enumerate(sections, 1):
                fh.write(f"\n\\{k}-grams:\n")
                fh.write("\n".join(lines))
                fh.write("\n")
            fh.write("\n\\end\\\n")

    def _encode(self, docs: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of all docs concatenated (each <s>-padded, </s>-ended), and the positions
        of the predicted tokens (everything but the padding)."""
        pad = [BOS] * (self.order - 1)
        get = self.index.get
        ids: list[int] = []
        targets: list[np.ndarray] = []
        for doc in docs:
            start = len(ids) + len(pad)
            ids.extend(pad)
            ids.extend([get(w, UNK) for w in doc])
            ids.append(EOS)
            targets.append(np.arange(start, len(ids)))
        return np.asarray(ids, dtype=np.int64), (np.concatenate(targets) if targets else np.zeros(0, np.int64))

    # ------------------------------------------------------------------ scoring
    def token_log10_probs(self, docs: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """log10 P(token | history) for every predicted token, and the document of each."""
        ids, targets = self._encode(docs)
        doc_of = np.repeat(np.arange(len(docs)), [len(d) + 1 for d in docs])
        return self.log10_probs(ids, targets), doc_of

    def log10_probs(
        self, ids: np.ndarray, targets: np.ndarray, *, unk_class: bool = True, max_order: int | None = None
    ) -> np.ndarray:
        """log10 P(ids[j] | ids[j-order+1 .. j-1]) for each position j in ``targets``.

        With ``unk_class`` the <unk> probability is shared among the rare words it stands for;
        ``max_order`` interpolates only orders 1..max_order (the ARPA writer's k-gram entries).
        """
        order = self.order if max_order is None else max_order
        grams = _gram_hashes(ids, order)
        a = self.arrays
        prob = np.full(len(targets), 1.0 / len(self.vocab))
        for k in range(1, order + 1):
            if k == 1:
                ctx_idx = np.zeros(len(targets), dtype=np.int64)
                ctx_found = np.ones(len(targets), dtype=bool)
            else:
                ctx_idx, ctx_found = _lookup(a[f"ctx{k}"], grams[k - 2][targets - 1])
            g_idx, g_found = _lookup(a[f"gram{k}"], grams[k - 1][targets])
            num = np.where(g_found, a[f"num{k}"][g_idx], 0.0)
            den = a[f"den{k}"][ctx_idx]
            gam = a[f"gam{k}"][ctx_idx]
            # An unseen context carries no evidence: keep the lower-order estimate.
            prob = np.where(ctx_found, (num + gam * prob) / np.where(ctx_found, den, 1.0), prob)
        logp = np.log10(np.maximum(prob, 1e-30))
        if unk_class:
            logp[ids[targets] == UNK] -= np.log10(float(a["unk_types"][0]))
        return logp

    def save(self, folder: Path) -> None:
        np.savez(folder / "ngram.npz", **self.arrays)
        (folder / "vocab.txt").write_text("\n".join(self.vocab) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, order: int) -> "NgramModel":
        try:
            with np.load(folder / "ngram.npz") as data:
                arrays = {k: data[k] for k in data.files}
            vocab = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
        except (OSError, ValueError) as exc:
            raise UserError(f"{folder}: cannot read the n-gram model: {exc}") from exc
        missing = [
            f"{kind}{k}"
            for k in range(1, order + 1)
            for kind in ("gram", "num", "ctx", "den", "gam")
            if f"{kind}{k}" not in arrays
        ] + [k for k in ("unk_types",) if k not in arrays]
        if missing or vocab[:3] != list(_SPECIAL):
            raise UserError(f"{folder}: incomplete n-gram model (missing {missing or 'special tokens'}); refit it")
        return cls(vocab, order, arrays)


@SCORERS.register("ngram", NgramConfig)
class NgramScorer(Scorer):
    """Mean log10 token probability under an interpolated modified Kneser-Ney word n-gram LM."""

    trainable = True
    summary = "n-gram LM (modified Kneser-Ney) fitted on reference text: -log10 perplexity"

    def __init__(self, config: NgramConfig):
        super().__init__(config)
        self.model: NgramModel | None = None

    @property
    def fitted(self) -> bool:
        return self.model is not None

    def fit(self, positives: list[str], negatives: list[str] | None = None) -> None:
        """Fit the reference LM on ``positives``; negatives are refused (a reference LM has no use for them)."""
        check_reference_fit("ngram", positives, negatives)
        c = self.config
        self.model = NgramModel.fit(positives, order=c.order, min_count=c.min_count, max_vocab=c.max_vocab)

    def _save_state(self, folder: Path) -> None:
        assert self.model is not None
        self.model.save(folder)

    def _load_state(self, folder: Path) -> None:
        self.model = NgramModel.load(folder, self.config.order)

    def score_batch(self, batch: dict[str, list[Any]]) -> np.ndarray:
        self.require_fitted()
        assert self.model is not None
        docs = [tokens(t, max_tokens=self.config.max_tokens) for t in clean_texts(batch["text"])]
        logp, doc_of = self.model.token_log10_probs(docs)
        n_tokens = np.bincount(doc_of, minlength=len(docs))
        return np.bincount(doc_of, weights=logp, minlength=len(docs)) / np.maximum(n_tokens, 1)
