"""Build the averaging benchmark's inputs: K fp32 checkpoints of a ~374M-parameter Llama with
random weights (different seed each), saved with ``save_pretrained`` as single safetensors files.

374M = 24 layers x (4 * 1024^2 attention + 3 * 1024 * 2816 MLP) + 2 untied 32000 x 1024
embeddings: about 1.5 GB per fp32 checkpoint, 9 GB for K=6. The largest tensors are the two
embeddings (131 MB each).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

BENCH_CONFIG = dict(
    hidden_size=1024,
    intermediate_size=2816,
    num_hidden_layers=24,
    num_attention_heads=16,
    num_key_value_heads=16,
    vocab_size=32000,
    max_position_embeddings=2048,
    tie_word_embeddings=False,
)


def build_checkpoints(folder: Path, k: int) -> list[Path]:
    """``folder/ckpt_<i>`` for i < k, reusing the ones that already exist."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(2)
    paths = []
    for i in range(k):
        path = folder / f"ckpt_{i}"
        paths.append(path)
        if (path / "model.safetensors").is_file():
            continue
        start = time.perf_counter()
        torch.manual_seed(i)
        model = LlamaForCausalLM(LlamaConfig(**BENCH_CONFIG))
        model.save_pretrained(path, max_shard_size="50GB")
        n = sum(p.numel() for p in model.parameters())
        print(f"built {path}: {n / 1e6:.1f}M params in {time.perf_counter() - start:.1f} s", flush=True)
        del model
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("/work/bench-data/average"))
    parser.add_argument("-k", type=int, default=6)
    args = parser.parse_args()
    build_checkpoints(args.data, args.k)
