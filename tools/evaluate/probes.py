"""Ranked-classification probes: which of a few continuations does the model find most likely?

A probe example is ``{"context": str, "choices": [str, ...], "label": int}`` (one JSON object per line of
a jsonl file). The model scores each choice by the summed log-probability of its tokens after the
context (the context and the choice are tokenized apart and joined, preceded by the document
separator the model saw between packed documents). Two numbers per probe set, as in OLMo's and
DataDecide's downstream metrics:

- ``probe/<name>/acc``: the share of examples whose correct choice scores highest;
- ``probe/<name>/bpb``: bits per byte of the correct choice (its nats / ln 2 / its UTF-8 bytes), a
  continuous metric that moves long before accuracy does at small scale (DataDecide, 2504.11393).

Probe sets ship as builders over material every machine has (`tools/evaluate/probe_sets.py`); user
sets load from jsonl with every bad row named by file and line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from pydantic import Field, ValidationError, model_validator

from curriculum.errors import UserError
from curriculum.registry import StrictModel

MAX_PROBE_FILE_BYTES = 64 << 20


class ProbeExample(StrictModel):
    """One row of a probe jsonl file."""

    context: str = Field(description="The text before the answer.")
    choices: list[str] = Field(min_length=2, description="Candidate continuations (at least two).")
    label: int = Field(ge=0, description="Index of the correct choice in `choices`.")

    @model_validator(mode="after")
    def _label_in_range(self) -> "ProbeExample":
        if self.label >= len(self.choices):
            raise ValueError(f"label {self.label} is not an index of the {len(self.choices)} choices")
        if any(not c for c in self.choices):
            raise ValueError("every choice must be a non-empty string")
        return self


def load_probe_file(path: str | Path, limit: int | None = None) -> list[ProbeExample]:
    """The examples of a jsonl probe file; every bad row is reported at once as ``file:line: what``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"probe file {str(path)!r} does not exist (or is not a file)")
    if path.stat().st_size > MAX_PROBE_FILE_BYTES:
        raise UserError(f"probe file {str(path)!r} is over {MAX_PROBE_FILE_BYTES >> 20} MiB; probes are small sets")
    examples, problems = [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"probe file {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            examples.append(ProbeExample.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: not JSON ({exc.msg})")
        except ValidationError as exc:
            for err in exc.errors():
                key = "".join(f"{p}: " for p in err["loc"][:1])  # the field; a whole-row check has none
                what = err["msg"].removeprefix("Value error, ")
                problems.append(f"{path}:{number}: {key}{what} (expected {{context, choices, label}})")
        if len(problems) >= 20:
            break
    if problems:
        raise UserError(f"probe file {str(path)!r} has bad rows:", problems)
    if not examples:
        raise UserError(f"probe file {str(path)!r} holds no examples")
    return examples[:limit] if limit else examples


@dataclass
class TokenizedProbes:
    """A probe set as token rows: one row per (example, choice), the choice's tokens at the end."""

    name: str
    rows: list[list[int]]  # context + choice tokens, left-truncated to the model's length
    choice_tokens: np.ndarray  # tokens of the choice in each row (the scored part)
    choice_bytes: np.ndarray  # UTF-8 bytes of the choice
    example: np.ndarray  # which example each row belongs to
    correct: np.ndarray  # whether the row is its example's correct choice
    n_examples: int


def split_pair(context: str, choice: str) -> tuple[str, str]:
    """Trailing whitespace of the context moves to the choice (as lm-evaluation-harness does), so a
    byte-level BPE sees " return" as it saw it in training, not a lone space then "return"."""
    n_spaces = len(context) - len(context.rstrip())
    return (context[:-n_spaces], context[-n_spaces:] + choice) if n_spaces else (context, choice)


def tokenize_probes(name: str, examples: list[ProbeExample], tokenizer, max_len: int) -> TokenizedProbes:
    """Token rows of ``examples`` for a model of context ``max_len`` (contexts cut from the left).

    The choice's tokens are those of context + choice past the context's own tokens (lm-eval's rule:
    a merge across the boundary goes to the choice)."""
    bos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    rows, n_choice, n_bytes, example, correct = [], [], [], [], []
    for i, e in enumerate(examples):
        for j, raw in enumerate(e.choices):
            context, choice = split_pair(e.context, raw)
            ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
            whole = tokenizer(context + choice, add_special_tokens=False)["input_ids"]
            cont = whole[len(ctx) :][: max_len - 1]
            rows.append((bos + ctx)[-(max_len - len(cont)) :] + cont)
            n_choice.append(min(len(cont), len(rows[-1]) - 1))  # the first token of a row is never predicted
            n_bytes.append(len(choice.encode("utf-8")))
            example.append(i)
            correct.append(j == e.label)
    return TokenizedProbes(
        name,
        rows,
        np.array(n_choice, dtype=np.int64),
        np.array(n_bytes, dtype=np.int64),
        np.array(example, dtype=np.int64),
        np.array(correct, dtype=bool),
        len(examples),
    )


@torch.no_grad()
def choice_logprobs(
    model: torch.nn.Module,
    probes: TokenizedProbes,
    *,
    micro_batch_size: int,
    device: torch.device,
    pad_id: int,
    rank: int = 0,
    world_size: int = 1,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    autocast: Callable[[], object] | None = None,
) -> np.ndarray:
    """The summed log-probability (nats) of each row's choice tokens; rows padded on the right."""
    was_training = model.training
    model.eval()
    out = torch.zeros(len(probes.rows), dtype=torch.float64, device=device)
    order = np.argsort([len(r) for r in probes.rows], kind="stable")[rank::world_size]  # similar lengths together
    for start in range(0, len(order), micro_batch_size):
        batch = order[start : start + micro_batch_size]
        width = max(len(probes.rows[i]) for i in batch)
        tokens = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        scored = torch.zeros((len(batch), width - 1), dtype=torch.bool)
        for k, i in enumerate(batch):
            row = probes.rows[i]
            tokens[k, : len(row)] = torch.tensor(row)
            mask[k, : len(row)] = 1
            scored[k, len(row) - 1 - probes.choice_tokens[i] : len(row) - 1] = True
        tokens, mask, scored = tokens.to(device), mask.to(device), scored.to(device)
        with autocast() if autocast else torch.autocast(device.type, enabled=False):
            logits = model(input_ids=tokens, attention_mask=mask).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, tokens[:, 1:, None])[..., 0]
        out[torch.from_numpy(batch).to(device)] = (logp * scored).sum(dim=1).double()
    if reduce is not None:
        out = reduce(out)
    model.train(was_training)
    return out.cpu().numpy()


def probe_metrics(probes: TokenizedProbes, logprobs: np.ndarray) -> dict[str, float]:
    """Accuracy (ties count as wrong) and bits per byte of the correct choices."""
    best = np.full(probes.n_examples, -np.inf)
    np.maximum.at(best, probes.example, logprobs)
    wins = np.zeros(probes.n_examples, dtype=np.int64)
    np.add.at(wins, probes.example, logprobs == best[probes.example])
    right = probes.correct & (logprobs == best[probes.example]) & (wins[probes.example] == 1)
    nats = -logprobs[probes.correct].sum()
    return {
        f"probe/{probes.name}/acc": float(right.sum() / probes.n_examples),
        f"probe/{probes.name}/bpb": float(nats / math.log(2) / probes.choice_bytes[probes.correct].sum()),
    }
