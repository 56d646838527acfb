"""Everything a recipe's `evaluation` section measures, opened once and run on any model.

`Evaluator.open` opens the evaluation sets (their sequences and byte counts) and tokenizes the
probes once; `Evaluator.measure` runs them on a model, in the training loop (ranks sharing the work)
or on a saved folder, and returns one flat dict of metrics (see `tools.evaluate.measure` and
`tools.evaluate.probes` for the names).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from curriculum.tokenizer import load_tokenizer
from tools.evaluate.config import EvaluationConfig, ProbeSetConfig
from tools.evaluate.measure import set_losses, set_metrics
from tools.evaluate.probe_sets import BUILDERS
from tools.evaluate.probes import (
    ProbeExample,
    TokenizedProbes,
    choice_logprobs,
    load_probe_file,
    probe_metrics,
    tokenize_probes,
)
from tools.evaluate.sets import EvalSet, open_eval_set


def probe_examples(config: ProbeSetConfig) -> list[ProbeExample]:
    """A probe set's examples: built (shipped sets) or read from its jsonl file."""
    if config.builtin is not None:
        return BUILDERS[config.builtin](config.max_examples, 0)
    return load_probe_file(config.path, config.max_examples)  # type: ignore[arg-type]


@dataclass
class Evaluator:
    """Opened evaluation sets and tokenized probes of one `evaluation` section."""

    sets: list[EvalSet]
    probes: list[TokenizedProbes]
    pad_id: int

    @classmethod
    def open(
        cls,
        config: EvaluationConfig,
        *,
        training_store: str | Path | None,
        tokenizer_dir: str | Path,
        max_len: int,
        per_domain: int | None = None,
    ) -> "Evaluator":
        """Open ``config``'s sets (every store checked against ``tokenizer_dir``, the model's tokenizer)
        and its probes, tokenized for a context of ``max_len``; ``per_domain`` caps every set."""
        opened = [
            open_eval_set(
                name,
                spec,
                training_store,
                bits_per_byte=config.bits_per_byte,
                per_domain=per_domain,
                reference_tokenizer=tokenizer_dir,
            )
            for name, spec in config.sets.items()
        ]
        sets = [s for s in opened if s is not None]
        tokenizer = load_tokenizer(tokenizer_dir) if config.probes else None
        probes = [
            tokenize_probes(name, probe_examples(spec), tokenizer, max_len) for name, spec in config.probes.items()
        ]
        pad = tokenizer.pad_token_id if tokenizer is not None else None
        return cls(sets, probes, pad if pad is not None else 0)

    def measure(
        self,
        model: torch.nn.Module,
        *,
        micro_batch_size: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
        autocast: Callable[[], object] | None = None,
    ) -> dict[str, float]:
        """Every set's and probe's metrics on ``model`` (ranks share the work when ``reduce`` sums)."""
        shared = dict(
            micro_batch_size=micro_batch_size,
            device=device,
            rank=rank,
            world_size=world_size,
            reduce=reduce,
            autocast=autocast,
        )
        out: dict[str, float] = {}
        for eval_set in self.sets:
            out.update(set_metrics(eval_set, set_losses(model, eval_set, **shared)))
        for probes in self.probes:
            out.update(probe_metrics(probes, choice_logprobs(model, probes, pad_id=self.pad_id, **shared)))
        return out
