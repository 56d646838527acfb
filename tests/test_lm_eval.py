"""`currimix eval --tasks`: lm-evaluation-harness on a model folder, offline, against lm-eval's own CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

TASK_YAML = """task: currimix_tiny
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
target_delimiter: ""
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def tiny_task(folder: Path) -> Path:
    """A 12-question local task in lm-eval's YAML over a jsonl file (the probe format)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {"context": "def f(x):\n    return x +", "choices": [f" {i}", " the", " model"], "label": i % 3}
        for i in range(12)
    ]
    (folder / "tiny.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "currimix_tiny.yaml").write_text(TASK_YAML.format(data=folder / "tiny.jsonl"))
    return folder


@pytest.mark.slow
def test_eval_tasks_match_lm_evals_own_cli(tmp_path: Path, finished_run: Path) -> None:
    from typer.testing import CliRunner

    from recipes.cli import app

    tasks = tiny_task(tmp_path / "tasks")
    final = finished_run / "final"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(final),
            "--tasks",
            "currimix_tiny",
            "--include-path",
            str(tasks),
            "--json",
            str(tmp_path / "ours.json"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    ours = json.loads((tmp_path / "ours.json").read_text())[str(final)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={final},dtype=float32",
            "--tasks",
            "currimix_tiny",
            "--include_path",
            str(tasks),
            "--device",
            "cpu",
            "--batch_size",
            "8",
            "--output_path",
            str(tmp_path / "cli"),
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    cli = json.loads(next((tmp_path / "cli").rglob("results_*.json")).read_text())["results"]["currimix_tiny"]
    assert ours["lm-eval/currimix_tiny/acc"] == cli["acc,none"]
    assert ours["lm-eval/currimix_tiny/acc_norm"] == cli["acc_norm,none"]
    assert ours["lm-eval/currimix_tiny/acc_stderr"] == pytest.approx(cli["acc_stderr,none"])
    assert 0 <= ours["lm-eval/currimix_tiny/acc"] <= 1


def test_unknown_task_and_missing_include_path_are_named(tmp_path: Path, finished_run: Path) -> None:
    from curriculum.errors import UserError
    from tools.evaluate.harness import run_tasks

    with pytest.raises(UserError, match="not a folder of task YAML"):
        run_tasks(finished_run / "final", ["x"], include_path=tmp_path / "none")
    tasks = tiny_task(tmp_path / "tasks")
    with pytest.raises(UserError, match=r"unknown lm-eval task\(s\) \['no_such_task'\]"):
        run_tasks(finished_run / "final", ["no_such_task"], include_path=tasks)
