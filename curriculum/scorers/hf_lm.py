"""`hf_lm` scorer: per-token log-likelihood under a transformers causal LM from a local folder.

The neural counterpart of `ngram`: a reference LM (say a small model trained on the text you
trust) rates each document by its mean natural-log probability per predicted token, i.e. minus
the log perplexity, so the score is length-normalised and higher = more like the reference.
Each document is ``[bos] + tokens + [eos]`` (where the tokenizer has them), truncated to
``max_tokens``; a document with nothing to predict gets log(1/vocab), the uniform model's value.
Batched by token budget; CUDA when present.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from curriculum.scorers.hf_common import (
    HFModelFields,
    InProcessModelScorer,
    load_pretrained,
    padded_batch,
    reachable_texts,
    token_batches,
)
from curriculum.scorers.registry import SCORERS


class HFLMConfig(HFModelFields):
    name: Literal["hf_lm"] = "hf_lm"


@SCORERS.register("hf_lm", HFLMConfig)
class HFLMScorer(InProcessModelScorer):
    """Mean log-probability per token under a local causal LM (minus log perplexity)."""

    summary = "transformers causal LM from a local folder: -log perplexity"

    def __init__(self, config: HFLMConfig):
        super().__init__(config)
        from transformers import AutoModelForCausalLM

        self.model, self.tokenizer, self.device = load_pretrained(config, AutoModelForCausalLM)
        self.floor = -math.log(max(2, self.model.config.vocab_size))

    def _encode(self, texts: list[str]) -> list[list[int]]:
        tok = self.tokenizer
        room = self.config.max_tokens - 2
        ids = tok(texts, add_special_tokens=False, truncation=True, max_length=room)["input_ids"] if texts else []
        head = [tok.bos_token_id] if tok.bos_token_id is not None else []
        tail = [tok.eos_token_id] if tok.eos_token_id is not None else []
        return [head + list(x[:room]) + tail for x in ids]

    def score_batch(self, batch: dict[str, list[Any]]) -> np.ndarray:
        import torch

        encoded = self._encode(reachable_texts(batch["text"], self.config.max_tokens))
        out = np.full(len(encoded), self.floor, dtype=np.float64)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for idx in token_batches([len(e) for e in encoded], batch_tokens=self.config.batch_tokens):
            seqs = [encoded[i] for i in idx]
            if max(len(s) for s in seqs) < 2:
                continue  # nothing to predict: keep the floor
            ids, mask = padded_batch(seqs, pad)
            ids, mask = ids.to(self.device), mask.to(self.device)
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
                logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
                target_mask = mask[:, 1:].float()
                total = (logp * target_mask).sum(1)
                count = target_mask.sum(1)
            mean = torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, self.floor))
            out[idx] = mean.double().cpu().numpy()
        return np.nan_to_num(out, nan=self.floor, posinf=0.0, neginf=self.floor)
