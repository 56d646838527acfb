"""Tokenizers: load a local transformers tokenizer, or train a byte-level BPE with `tokenizers`.

A trained tokenizer uses ``<|endoftext|>`` as BOS/EOS (the document separator in packed sequences)
and ``<pad>`` for padding, and is saved as a transformers tokenizer folder that
`AutoTokenizer.from_pretrained` loads offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from curriculum.errors import UserError

EOS = "<|endoftext|>"
PAD = "<pad>"


def train_bpe(
    texts: Iterator[str], vocab_size: int, min_frequency: int = 2, max_length: int = 1 << 20
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE (GPT-2 style pre-tokenisation) on an iterator of texts."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=None,
        model_max_length=max_length,
    )


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """A tokenizer from a local folder; it must be fast (Rust) and define an EOS token."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"tokenizer folder {str(path)!r} does not exist")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # a damaged tokenizer.json: KeyError, TypeError, the Rust library's Exception
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        reason = f"{type(exc).__name__}: {lines[0]}" if isinstance(exc, KeyError) or not lines else lines[0]
        raise UserError(
            f"tokenizer folder {str(path)!r} could not be loaded ({reason}); its files are damaged or not a "
            "tokenizer saved by `save_pretrained`"
        ) from None
    if not tokenizer.is_fast:
        raise UserError(f"tokenizer {str(path)!r} is not a fast (Rust) tokenizer; currimix needs one for speed")
    if tokenizer.eos_token_id is None:
        raise UserError(f"tokenizer {str(path)!r} has no EOS token; documents need a separator")
    return tokenizer
