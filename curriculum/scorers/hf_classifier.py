"""`hf_classifier` scorer: a transformers sequence-classification model from a local folder.

FineWeb-Edu style: a regression head (``num_labels == 1``) gives the score directly (e.g. an
educational value 0-5); a classification head gives the log-odds of the ``label`` that means
"good" (default: the last label), log p / (1 - p), computed stably from the logits.
Batched by token budget; CUDA when present.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from curriculum.errors import UserError
from curriculum.scorers.hf_common import (
    HFModelFields,
    InProcessModelScorer,
    load_pretrained,
    padded_batch,
    reachable_texts,
    token_batches,
)
from curriculum.scorers.registry import SCORERS


class HFClassifierConfig(HFModelFields):
    name: Literal["hf_classifier"] = "hf_classifier"
    max_tokens: int = Field(512, ge=2, le=1 << 20, description="Tokens read per document (its first N).")
    label: int | str | None = Field(
        None,
        description="Classification heads: the output meaning 'good', by "
        "index or by name in the model's id2label; None = the last one. "
        "Ignored for a regression head (num_labels 1).",
    )


@SCORERS.register("hf_classifier", HFClassifierConfig)
class HFClassifierScorer(InProcessModelScorer):
    """Regression value, or log-odds of the 'good' label, of a local sequence classifier."""

    summary = "transformers sequence classifier from a local folder (FineWeb-Edu style)"

    def __init__(self, config: HFClassifierConfig):
        super().__init__(config)
        from transformers import AutoModelForSequenceClassification

        self.model, self.tokenizer, self.device = load_pretrained(config, AutoModelForSequenceClassification)
        self.label_index = self._label_index()
        tok, mcfg = self.tokenizer, self.model.config
        candidates = (tok.pad_token_id, mcfg.pad_token_id, tok.eos_token_id, 0)
        self.pad_id = next(c for c in candidates if c is not None)
        if mcfg.pad_token_id is None:
            # Decoder-style classifiers pool the last non-pad token and need to know the pad id.
            mcfg.pad_token_id = self.pad_id
        specials = (tok.cls_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id, self.pad_id)
        self.filler_id = next(c for c in specials if c is not None)

    def _label_index(self) -> int | None:
        n = self.model.config.num_labels
        label = self.config.label
        if n == 1:
            return None
        if label is None:
            return n - 1
        if isinstance(label, int):
            if not 0 <= label < n:
                raise UserError(f"hf_classifier: label {label} is out of range; the model has {n} labels")
            return label
        names = {str(v): int(k) for k, v in (self.model.config.id2label or {}).items()}
        if label not in names:
            raise UserError(f"hf_classifier: label {label!r} is not one of the model's labels {sorted(names)}")
        return names[label]

    def score_batch(self, batch: dict[str, list[Any]]) -> np.ndarray:
        import torch

        texts = reachable_texts(batch["text"], self.config.max_tokens)
        encoded = (
            self.tokenizer(texts, truncation=True, max_length=self.config.max_tokens)["input_ids"] if texts else []
        )
        encoded = [list(e) or [self.filler_id] for e in encoded]  # an empty document still gets one token
        out = np.zeros(len(encoded), dtype=np.float64)
        for idx in token_batches([len(e) for e in encoded], batch_tokens=self.config.batch_tokens):
            ids, mask = padded_batch([encoded[i] for i in idx], self.pad_id)
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float()
                if self.label_index is None:
                    value = logits[:, 0]
                else:
                    others = torch.cat([logits[:, : self.label_index], logits[:, self.label_index + 1 :]], dim=1)
                    value = logits[:, self.label_index] - torch.logsumexp(others, dim=1)
            out[idx] = value.double().cpu().numpy()
        return np.nan_to_num(out, nan=0.0, posinf=1e6, neginf=-1e6)
