"""Build the averaging benchmark's inputs: K fp32 checkpoints of a ~374M-parameter Llama with
random weights (different seed each), saved with ``save_pretrained`` as single safetensors files.

374M = 24 layers x (4 * 1024^2 attention + 3 * 1024 * 2816 MLP) + 2 untied 32000 x 1024
embeddings: about 1.5 GB per fp32 checkpoint, 9 GB for K=6. The largest tensors are the two
embeddings (131 MB each).
"""

from __future__ import annotations

import argparse
import shutil
import sys
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
#: ``benchmarks/average.py --quick``: the same shape of model at ~7M parameters (~30 MB per checkpoint).
QUICK_CONFIG = dict(BENCH_CONFIG, hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=4)
QUICK_CONFIG.update(num_key_value_heads=4, vocab_size=8000)


def build_checkpoints(folder: Path, k: int, config: dict = BENCH_CONFIG) -> list[Path]:
    """``folder/ckpt_<i>`` for i < k of a Llama with ``config``, reusing the ones that already exist."""
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
        model = LlamaForCausalLM(LlamaConfig(**config))
        # Saved under a temporary name, then renamed: an interrupted build is not taken for a finished one.
        partial = folder / f".ckpt_{i}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        model.save_pretrained(partial, max_shard_size="50GB")
        shutil.rmtree(path, ignore_errors=True)
        partial.rename(path)
        n = sum(p.numel() for p in model.parameters())
        print(f"built {path}: {n / 1e6:.1f}M params in {time.perf_counter() - start:.1f} s", flush=True)
        del model
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="where to build them (default: what benchmarks/average.py uses)")
    parser.add_argument("-k", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="the ~7M model of `average.py --quick`")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness

    folder = args.data or harness.cache_dir("average", "quick" if args.quick else "full")
    build_checkpoints(folder, args.k, QUICK_CONFIG if args.quick else BENCH_CONFIG)
