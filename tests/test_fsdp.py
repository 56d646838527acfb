"""Multi-process strategy and checkpoints across world sizes.

accelerate runs CPU processes with DDP only (`Accelerator(cpu=True)` ignores an FSDP plugin), so
FSDP itself cannot run here: these tests check the FSDP2 set-up the recipe asks for, and that a
checkpoint written by 2 processes resumes in 1 process with the same global batch, model and
optimizer state following (the losses after the resume match an uninterrupted 1-process run).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_multi_gpu_env

from recipes.loading import recipe_from_dict
from tests.conftest import losses_by_step, recipe_dict
from tests.launch import run_command, two_cpu_ranks
from tools.train.pretrain import fsdp_plugin, train
from tools.train.runtime import Runtime


def test_fsdp_is_fsdp2_per_block_with_reshardable_checkpoints() -> None:
    runtime = Runtime(cpu=False, bf16=True, attention="sdpa", moe_backend=None, fused_cross_entropy=False, fsdp=True)
    plugin = fsdp_plugin(runtime)
    assert plugin.fsdp_version == 2
    assert plugin.state_dict_type.name == "SHARDED_STATE_DICT"  # DCP shards: load reshards to any world size
    assert plugin.auto_wrap_policy is not None and plugin.reshard_after_forward
    assert fsdp_plugin(Runtime(**{**runtime.__dict__, "fsdp": False})) is None


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, fsdp", [("ddp", False), ("fsdp", True)])
def test_example_accelerate_configs_match_the_recipe_switch(name: str, fsdp: bool, monkeypatch) -> None:
    """`accelerate launch --config_file recipes/accelerate/fsdp.yaml` sets up the same FSDP2 as
    `training.distributed: fsdp`; both leave precision to the loop's autocast."""
    args = launch_command_parser().parse_args(
        ["--config_file", str(REPO / "recipes/accelerate" / f"{name}.yaml"), "x.py"]
    )
    validated = _validate_launch_command(args)
    env = prepare_multi_gpu_env(validated[0] if isinstance(validated, tuple) else validated)
    assert env["ACCELERATE_MIXED_PRECISION"] == "no"
    assert env.get("ACCELERATE_USE_FSDP", "false") == ("true" if fsdp else "false")
    if fsdp:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        from_config = FullyShardedDataParallelPlugin()
        runtime = Runtime(
            cpu=False, bf16=True, attention="sdpa", moe_backend=None, fused_cross_entropy=False, fsdp=True
        )
        from_recipe = fsdp_plugin(runtime)
        for field in ("fsdp_version", "state_dict_type", "reshard_after_forward", "cpu_ram_efficient_loading"):
            assert getattr(from_config, field) == getattr(from_recipe, field), field
        assert from_config.auto_wrap_policy.__name__ == from_recipe.auto_wrap_policy.__name__


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_process_checkpoint_resumes_in_one_process(corpus_dir: Path, tiny_store: Path, tmp_path: Path) -> None:
    def raw(run_dir: Path) -> dict:
        r = recipe_dict(corpus_dir, run_dir, tiny_store)
        r["training"].update(device="cpu", steps=8, eval_every_steps=None, log_every_steps=1)
        r["checkpoint"] = {"every_steps": 4, "keep_last": 2}
        r["averaging"] = {"snapshots": None}
        return r

    reference = train(recipe_from_dict(raw(tmp_path / "one")), show_progress=False)
    split = raw(tmp_path / "split")
    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(split))
    proc = run_command(two_cpu_ranks("train", str(path), "--no-progress", "--stop-after", "4"), tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-12000:]
    config = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()][0]
    assert config["config"]["processes"] == 2  # really two ranks, not a silent single process

    resumed = train(recipe_from_dict(split), resume=True, show_progress=False)
    assert resumed["processes"] == 1 and resumed["steps_done"] == 8
    one, two = losses_by_step(tmp_path / "one"), losses_by_step(tmp_path / "split")
    assert sorted(two) == list(range(8))
    # Steps 4..7 ran in one process from the 2-process checkpoint: they continue the same run.
    assert [two[s] for s in range(8)] == pytest.approx([one[s] for s in range(8)], rel=1e-4)
    for domain, loss in reference["val_loss"].items():
        assert resumed["val_loss"][domain] == pytest.approx(loss, rel=1e-3)
