"""GPU benchmark: currimix's loop vs a transformers `Trainer` on the same model, data and batch.

One command, under 8 minutes on one H100/H200:

    python benchmarks/gpu.py              # ~336M Llama (24 x 1024, vocab 32k), seq 2048, bf16
    python benchmarks/gpu.py --tiny       # the same code on CPU in seconds (run by the test suite)

Arms, each `--warmup` steps (not timed: compilation, allocator warm-up) then `--steps` timed steps
on the same global batch (sequences x seq_len) from the same synthetic token store:

* **currimix**: `tools.train.pretrain.train` as a user runs it - bf16 autocast, per-block
  `torch.compile`, fused AdamW, SDPA (flash-attention-2 if installed), background prefetch.
* **Trainer**: `transformers.Trainer` with `bf16=True`, the same attention kernel, its default
  fused AdamW, the same micro-batch and gradient accumulation, no compile (its default).
* **MoE** (8 layers x 512 wide, 8 experts, top-2, eager): the currimix loop with transformers'
  experts, and with megablocks' dMoE kernels when the `moe` extra is installed.

Per arm: tokens/s over the timed steps, MFU = tokens/s x training FLOPs per token / the device's
dense bf16 peak (`tools.train.model.PEAK_BF16_FLOPS`; `--peak-tflops` overrides), and the fraction of
the timed wall-clock the loop spent waiting for data (currimix: its own log; Trainer: time inside
its data-loader `next()` calls). The token store is random tokens written through the real
writer into a temp folder. Prints a markdown table under a line naming the commit and machine;
`--json PATH` also writes the rows, each carrying that commit, machine and time.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny sizes: checks the script in seconds")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of one device")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--skip-trainer", action="store_true", help="only the currimix arms")
    return parser


if __name__ == "__main__" and {"-h", "--help"} & set(sys.argv[1:]):
    build_parser().parse_args()  # prints the help and exits before importing torch and transformers

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from benchmarks import harness  # noqa: E402
from curriculum.store.reader import TokenStore  # noqa: E402
from recipes.loading import recipe_from_dict  # noqa: E402
from tools.train.model import build_model, flops_per_token, peak_flops  # noqa: E402
from tools.train.runtime import installed, resolve_runtime  # noqa: E402
from tools.train.trackers import read_metrics  # noqa: E402


@dataclass(frozen=True)
class Size:
    """One benchmark size: model, batch and steps."""

    vocab: int
    seq_len: int
    dense: dict[str, Any]
    moe: dict[str, Any]
    micro_batch: int
    global_batch: int
    moe_micro_batch: int
    moe_global_batch: int
    warmup: int
    steps: int
    sequences_per_domain: int


FULL = Size(
    vocab=32_000,
    seq_len=2048,
    dense={"hidden_size": 1024, "num_layers": 24, "num_heads": 16, "tie_embeddings": True},
    moe={
        "hidden_size": 512,
        "num_layers": 8,
        "num_heads": 8,
        "intermediate_size": 1408,
        "moe": {"num_experts": 8, "top_k": 2},
    },
    micro_batch=16,
    global_batch=64,
    moe_micro_batch=16,
    moe_global_batch=32,
    warmup=5,
    steps=20,
    sequences_per_domain=2048,
)
TINY = Size(
    vocab=512,
    seq_len=64,
    dense={"hidden_size": 64, "num_layers": 2, "num_heads": 2},
    moe={
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 32,
        "moe": {"num_experts": 4, "top_k": 2},
    },
    micro_batch=4,
    global_batch=8,
    moe_micro_batch=4,
    moe_global_batch=8,
    warmup=2,
    steps=4,
    sequences_per_domain=64,
)
DOMAINS = ("web", "code")


def synthetic_store(root: Path, size: Size) -> Path:
    """Random-token documents of one sequence each, through the real writer, plus a word-level
    tokenizer of the right vocabulary size (the loop loads it for its ids)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    from benchmarks.synthetic_store import write_synthetic_store

    # Validation holds one micro-batch per domain: the end-of-run eval then has the training
    # shape, so the compiled blocks need no recompilation for a new batch size.
    n_train, n_val = size.sequences_per_domain, size.micro_batch
    write_synthetic_store(
        root,
        {name: n_train + n_val for name in DOMAINS},
        seq_len=size.seq_len,
        vocab_size=size.vocab,
        pick_val=lambda rng, count: np.arange(count) >= n_train,
        make_tokens=lambda rng, n: rng.integers(2, size.vocab, size=n),
        fingerprint="synthetic-gpu-benchmark",
    )
    vocab = {"<|endoftext|>": 0, "<pad>": 1} | {f"t{i}": i for i in range(2, size.vocab)}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<pad>")),
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        pad_token="<pad>",
    )
    tokenizer.save_pretrained(str(root / "tokenizer"))
    return root


def make_recipe(
    store: Path, run_dir: Path, size: Size, model: dict, micro: int, global_: int, gpu: bool, compile: bool = True
):
    return recipe_from_dict(
        {
            "name": "gpu-bench",
            "run_dir": str(run_dir),
            "data": {
                "store": str(store),
                "seq_len": size.seq_len,
                "domains": {n: {"sources": [{"path": str(store)}]} for n in DOMAINS},
            },
            "model": model,
            "mixture": {"mixer": {"name": "static", "weights": {"web": 0.5, "code": 0.5}}},
            "curriculum": {"order": {"name": "random"}},
            "schedule": {"name": "constant", "peak_lr": 3e-4, "warmup_steps": 0},
            "training": {
                "steps": size.warmup + size.steps,
                "global_batch_size": global_,
                "micro_batch_size": micro,
                "precision": "bf16" if gpu else "fp32",
                "compile": gpu and compile,
                "device": "cuda" if gpu else "cpu",
                "log_every_steps": size.warmup,  # the first record holds the warm-up; the rest are timed
                "eval_sequences_per_domain": micro,
                "trackers": ["jsonl"],
            },
            "checkpoint": {"keep_last": 1},
        }
    )


def timed_windows(run_dir: Path, warmup: int) -> tuple[float, float, float]:
    """(tokens, seconds, data-wait seconds) over the log windows after the warm-up."""
    tokens = seconds = waited = 0.0
    previous = None
    for record in read_metrics(run_dir):
        if "tokens_per_s" not in record:
            continue
        if record["step"] >= warmup and previous is not None:
            window_tokens = record["tokens"] - previous
            window_s = window_tokens / record["tokens_per_s"]
            tokens, seconds = tokens + window_tokens, seconds + window_s
            waited += record["data_wait_fraction"] * window_s
        previous = record["tokens"]
    return tokens, seconds, waited


def bench_currimix(
    store: Path, work: Path, size: Size, model: dict, micro: int, global_: int, gpu: bool, backend: str | None = None
) -> dict[str, Any]:
    from tools.train.pretrain import train

    if backend:
        model = {**model, "moe": {**model["moe"], "backend": backend}}
    run_dir = work / f"currimix-{backend or 'dense'}"
    # MoE routing has data-dependent shapes (and megablocks reads expert sizes on the host), so
    # the MoE arms run eager: compiling them costs more than this benchmark's minutes.
    recipe = make_recipe(store, run_dir, size, model, micro, global_, gpu, compile=backend is None)
    train(recipe, show_progress=False)
    tokens, seconds, waited = timed_windows(run_dir, size.warmup)
    _free()
    return {"tokens_per_s": tokens / seconds, "data_wait": waited / seconds, "seconds": seconds}


class _TokenDataset(torch.utils.data.Dataset):
    def __init__(self, store: Path):
        self.split = TokenStore(store).train

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = torch.from_numpy(self.split.sequences(np.array([i]))[0])
        return {"input_ids": ids, "labels": ids}


def bench_trainer(store: Path, work: Path, size: Size, model_cfg: dict, gpu: bool) -> dict[str, Any]:
    """transformers.Trainer on the same model (same init, attention kernel), batch and steps."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    recipe = make_recipe(store, work / "trainer", size, model_cfg, size.micro_batch, size.global_batch, gpu)
    runtime = resolve_runtime(recipe.training, recipe.model)
    meta = TokenStore(store)
    model = build_model(
        recipe.model,
        vocab_size=meta.vocab_size,
        seq_len=meta.seq_len,
        eos_id=0,
        pad_id=1,
        seed=0,
        attention=runtime.attention,
    )
    clock: dict[str, float] = {"waited": 0.0}

    def sync() -> None:
        if gpu:
            torch.cuda.synchronize()

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (size.warmup, size.warmup + size.steps):
                sync()
                clock[f"t{state.global_step}"] = time.perf_counter()
                if state.global_step == size.warmup:
                    clock["waited"] = 0.0

    class TimedTrainer(Trainer):
        def get_batch_samples(self, epoch_iterator, num_batches, device):
            started = time.perf_counter()
            batches = []
            for _ in range(num_batches):
                try:
                    batches.append(next(epoch_iterator))
                except StopIteration:
                    break
            clock["waited"] += time.perf_counter() - started
            return batches, self._get_num_items_in_batch(batches, device)

    args = TrainingArguments(
        output_dir=str(work / "trainer"),
        per_device_train_batch_size=size.micro_batch,
        gradient_accumulation_steps=size.global_batch // size.micro_batch,
        max_steps=size.warmup + size.steps,
        learning_rate=3e-4,
        lr_scheduler_type="constant",
        weight_decay=0.1,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        bf16=gpu,
        use_cpu=not gpu,
        logging_steps=size.warmup + size.steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=gpu,
        seed=0,
    )
    trainer = TimedTrainer(model=model, args=args, train_dataset=_TokenDataset(store), callbacks=[Clock()])
    trainer.train()
    seconds = clock[f"t{size.warmup + size.steps}"] - clock[f"t{size.warmup}"]
    tokens = size.steps * size.global_batch * size.seq_len
    del trainer, model
    _free()
    return {"tokens_per_s": tokens / seconds, "data_wait": clock["waited"] / seconds, "seconds": seconds}


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def flops_of(model_cfg: dict, size: Size) -> tuple[float, int]:
    """Training FLOPs per token and parameter count of a model section (built on the meta device)."""
    from tools.train.config import ModelConfig
    from tools.train.model import count_parameters

    with torch.device("meta"):
        model = build_model(
            ModelConfig(**model_cfg), vocab_size=size.vocab, seq_len=size.seq_len, eos_id=0, pad_id=1, seed=0
        )
    return flops_per_token(model, size.seq_len), count_parameters(model)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = build_parser()
    args = parser.parse_args(argv)
    gpu = not args.tiny
    if gpu and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --tiny on CPU")
    size = TINY if args.tiny else FULL
    device = torch.device("cuda" if gpu else "cpu")
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_flops(device, None)
    warnings.filterwarnings("ignore")
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="currimix-gpu-bench-") as tmp:
        work = Path(tmp)
        store = synthetic_store(work / "store", size)
        dense_fpt, dense_params = flops_of(size.dense, size)
        moe_fpt, moe_params = flops_of(size.moe, size)
        arms = [
            (
                "currimix",
                "dense",
                dense_fpt,
                dense_params,
                lambda: bench_currimix(store, work, size, size.dense, size.micro_batch, size.global_batch, gpu),
            )
        ]
        if not args.skip_trainer:
            arms.append(
                (
                    "transformers Trainer",
                    "dense",
                    dense_fpt,
                    dense_params,
                    lambda: bench_trainer(store, work, size, size.dense, gpu),
                )
            )
        moe_backends = ["transformers"] + (["megablocks"] if gpu and installed("megablocks") else [])
        for backend in moe_backends:
            arms.append(
                (
                    f"currimix MoE ({backend} experts)",
                    "moe",
                    moe_fpt,
                    moe_params,
                    lambda b=backend: bench_currimix(
                        store, work, size, size.moe, size.moe_micro_batch, size.moe_global_batch, gpu, b
                    ),
                )
            )
        for name, kind, fpt, params, run in arms:
            # GPU time is scarce: an arm that fails is reported in its row, the others still run.
            try:
                result = run()
            except Exception as exc:  # noqa: BLE001 - reported, and the exit status says so
                traceback.print_exc()
                _free()
                result = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}"}
            mfu = result["tokens_per_s"] * fpt / peak if peak and "error" not in result else None
            result.update(arm=name, kind=kind, params=params, flops_per_token=fpt, mfu=mfu)
            rows.append(result)
    print_table(rows, size, device, peak, time.perf_counter() - started, moe_backends)
    if args.json:
        # A list of rows (what tests/test_benchmark_gpu.py reads), each row stamped with where it ran.
        where = {**harness.provenance(), "device": device_name(device)}
        harness.write_json(args.json, [{**r, **where} for r in rows])
    if any("error" in r for r in rows):
        sys.exit(1)
    return rows


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"


def print_table(
    rows: list[dict], size: Size, device: torch.device, peak: float | None, total_s: float, moe_backends: list[str]
) -> None:
    name = device_name(device)
    print("\n" + harness.header("GPU loop: currimix vs transformers Trainer"))
    peak_text = f"peak {peak / 1e12:g} TFLOP/s" if peak else "no peak FLOP/s known: MFU n/a"
    print(
        f"\n{name}, torch {torch.__version__}, {datetime.date.today()}, total {total_s:.0f} s; "
        f"seq {size.seq_len}, {size.warmup} warm-up + {size.steps} timed steps; {peak_text}"
    )
    trainer = next((r for r in rows if r["arm"] == "transformers Trainer" and "error" not in r), None)
    print("\n| arm | params | global batch | tokens/s | MFU | data wait | vs Trainer |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        batch = size.global_batch if r["kind"] == "dense" else size.moe_global_batch
        if "error" in r:
            print(f"| {r['arm']} | {r['params'] / 1e6:.2f} M | {batch} x {size.seq_len} | failed: {r['error']} | | | |")
            continue
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        ratio = f"{r['tokens_per_s'] / trainer['tokens_per_s']:.2f}x" if trainer and r["kind"] == "dense" else ""
        print(
            f"| {r['arm']} | {r['params'] / 1e6:.2f} M | {batch} x {size.seq_len} | {r['tokens_per_s']:,.0f} | "
            f"{mfu} | {r['data_wait']:.2%} | {ratio} |"
        )
    if "megablocks" not in moe_backends:
        print("\nmegablocks: not run (needs the `moe` extra and a GPU; see README, 'Mixture of experts').")


if __name__ == "__main__":
    main()
