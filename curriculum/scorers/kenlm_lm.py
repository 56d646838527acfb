"""`kenlm` scorer: CCNet-style perplexity under a KenLM model of reference text.

CCNet (Wenzek et al. 2020) scores web text by its perplexity under a KenLM 5-gram model of
Wikipedia. This scorer does the same with the KenLM query library (``pip install
'currimix[filters]'`` brings the ``ufal.kenlm`` wheel; PyPI's ``kenlm`` sdist needs a compiler):

- fit: the reference documents are tokenised like the ``ngram`` scorer (lowercased words and
  punctuation runs). KenLM's trainer ``lmplz`` is not in any wheel; when it is on PATH it builds
  the ARPA model, otherwise this project's modified Kneser-Ney trainer (`NgramModel`) writes it
  (`NgramModel.write_arpa`, with ``<unk>``). The folder holds ``model.arpa``.
- score: mean log10 probability per token (``</s>`` included), with ``<unk>`` shared among the
  rare words it replaced, as in the ``ngram`` scorer; higher = more like the reference.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import weakref
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from curriculum.errors import UserError
from curriculum.registry import StrictModel
from curriculum.scorers.base import FIT, Scorer, clean_texts, optional_module
from curriculum.scorers.ngram import NgramModel, check_reference_fit
from curriculum.scorers.registry import SCORERS
from curriculum.scorers.text import tokens

ARPA_FILE = "model.arpa"
INFO_FILE = "kenlm.json"


class KenlmConfig(StrictModel):
    name: Literal["kenlm"] = "kenlm"
    path: str | None = Field(
        None, description="Folder written by `currimix score fit kenlm` (holds model.arpa); None = fit first."
    )
    order: int = Field(5, ge=2, le=8, json_schema_extra=FIT, description="n of the n-gram model (CCNet: 5).")
    min_count: int = Field(
        2, ge=1, json_schema_extra=FIT, description="Reference words seen fewer times become <unk> (own trainer)."
    )
    max_vocab: int = Field(500_000, ge=10, json_schema_extra=FIT, description="Most frequent words kept (own trainer).")
    max_tokens: int = Field(20_000, ge=1, description="Tokens scored per document (its first N).")


@SCORERS.register("kenlm", KenlmConfig)
class KenlmScorer(Scorer):
    """Mean log10 token probability under a KenLM (ARPA) model of reference text."""

    trainable = True
    summary = "KenLM perplexity (CCNet-style) on an ARPA model of reference text"

    def __init__(self, config: KenlmConfig):
        super().__init__(config)
        self._kenlm = optional_module("kenlm", scorer="kenlm", package="ufal.kenlm")
        self.model = None
        self.unk_types = 1
        self.trainer = ""
        self._dir: Path | None = None  # where model.arpa lives: the fit's temp folder or the loaded folder

    @property
    def fitted(self) -> bool:
        return self.model is not None

    def fit(self, positives: list[str], negatives: list[str] | None = None) -> None:
        """Build the ARPA model of ``positives`` (lmplz when on PATH, else the own KN trainer)."""
        check_reference_fit("kenlm", positives, negatives)
        c = self.config
        self._dir = Path(tempfile.mkdtemp(prefix="currimix-kenlm-"))
        weakref.finalize(self, shutil.rmtree, self._dir, True)  # the fit's ARPA lives until save() copies it
        arpa = self._dir / ARPA_FILE
        lmplz = shutil.which("lmplz")
        if lmplz:
            corpus = "\n".join(" ".join(tokens(t)) for t in clean_texts(positives)) + "\n"
            with open(arpa, "w", encoding="utf-8") as out:
                run = subprocess.run(
                    [lmplz, "-o", str(c.order), "--discount_fallback"],
                    input=corpus,
                    stdout=out,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            if run.returncode != 0:
                raise UserError(f"kenlm scorer: lmplz failed: {run.stderr[-1000:]}")
            self.unk_types, self.trainer = 1, "lmplz"
        else:
            model = NgramModel.fit(positives, order=c.order, min_count=c.min_count, max_vocab=c.max_vocab, arpa=arpa)
            self.unk_types, self.trainer = int(model.arrays["unk_types"][0]), "currimix NgramModel"
        self.model = self._kenlm.Model(str(arpa))

    def _save_state(self, folder: Path) -> None:
        assert self._dir is not None
        shutil.copyfile(self._dir / ARPA_FILE, folder / ARPA_FILE)
        (folder / INFO_FILE).write_text(json.dumps({"unk_types": self.unk_types, "trainer": self.trainer}) + "\n")

    def _load_state(self, folder: Path) -> None:
        arpa = folder / ARPA_FILE
        if not arpa.is_file():
            raise UserError(f"{folder}: no {ARPA_FILE}; refit with `currimix score fit kenlm`")
        try:
            info = json.loads((folder / INFO_FILE).read_text())
            self.model = self._kenlm.Model(str(arpa))
        except (OSError, ValueError, RuntimeError) as exc:
            raise UserError(f"{folder}: cannot load the KenLM model: {exc}") from exc
        self._dir = folder
        self.unk_types, self.trainer = int(info.get("unk_types", 1)), str(info.get("trainer", ""))

    def token_log10_probs(self, text: str) -> np.ndarray:
        """log10 probability of every token of ``text`` and of ``</s>`` (KenLM's full_scores)."""
        self.require_fitted()
        sentence = " ".join(tokens(text, max_tokens=self.config.max_tokens))
        scores = np.array([(p, oov) for p, _, oov in self.model.full_scores(sentence, bos=True, eos=True)])
        return scores[:, 0] - np.log10(self.unk_types) * scores[:, 1]

    def score_batch(self, batch: dict[str, list[Any]]) -> np.ndarray:
        return np.array([self.token_log10_probs(t).mean() for t in clean_texts(batch["text"])], dtype=np.float64)
