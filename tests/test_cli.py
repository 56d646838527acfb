"""The command line: every option documented, user errors exit 2 without a traceback, commands work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import typer
import yaml
from typer.testing import CliRunner

from recipes.cli import app
from tests.conftest import recipe_dict

runner = CliRunner()


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, command in group.commands.items():
        out.append((prefix + name, command))
        if isinstance(command, click.Group):
            out.extend(_commands(command, prefix + name + " "))
    return out


def test_every_command_and_option_is_documented() -> None:
    root = typer.main.get_command(app)
    commands = _commands(root)
    names = {n for n, _ in commands}
    assert {"prepare", "plan", "train", "average", "eval", "run", "quickstart", "score", "presets"} <= names
    for name, command in commands:
        assert command.help, f"`currimix {name}` has no help text"
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"`currimix {name}` option {param.opts} has no help"
        result = runner.invoke(app, name.split() + ["--help"])
        assert result.exit_code == 0, result.output


def _cli(*args: str, cwd: Path):
    """Run a command in-process, as the console script would (exit code, stdout, stderr)."""
    result = runner.invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result


def test_console_script_smoke(corpus_dir: Path, tmp_path: Path) -> None:
    """One real subprocess: the entry point runs, and a user mistake is a message with exit status 2."""
    raw = recipe_dict(corpus_dir, tmp_path)
    raw["training"]["micro_batch_sise"] = 4
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = subprocess.run(
        [sys.executable, "-m", "recipes.cli", "plan", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "training.micro_batch_sise" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_recipe_exits_2_with_every_problem_named(corpus_dir: Path, tmp_path: Path) -> None:
    raw = recipe_dict(corpus_dir, tmp_path)
    raw["training"]["micro_batch_sise"] = 4
    raw["mixture"]["mixer"] = {"name": "static", "weights": {"code": 0.7, "prose": 0.7}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = _cli("plan", str(path), cwd=tmp_path)
    assert proc.exit_code == 2
    assert "training.micro_batch_sise" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("plan", str(path), "--set", "training.micro_batch_sise=null", cwd=tmp_path)
    assert proc.exit_code == 2  # the override cannot delete the typo'd key: still reported
    raw["training"].pop("micro_batch_sise")
    path.write_text(yaml.safe_dump(raw))
    proc = _cli("plan", str(path), cwd=tmp_path)
    assert proc.exit_code == 2 and "sum to 1" in proc.stderr and "Traceback" not in proc.stderr


def test_plan_prints_the_timeline_and_writes_the_png(
    make_recipe, corpus_dir: Path, tiny_store: Path, tmp_path: Path
) -> None:
    raw = recipe_dict(corpus_dir, tmp_path / "run", tiny_store)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = runner.invoke(
        app, ["plan", str(path), "--png", str(tmp_path / "p.png"), "--json", str(tmp_path / "p.json")]
    )
    assert result.exit_code == 0, result.output
    assert "timeline" in result.output and "quality quintile" in result.output and "averaging: ema" in result.output
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert "segments" in (tmp_path / "p.json").read_text()


def test_impossible_plan_fails_clearly(corpus_dir: Path, tiny_store: Path, tmp_path: Path) -> None:
    raw = recipe_dict(corpus_dir, tmp_path / "run", tiny_store)
    raw["averaging"] = {"snapshots": 20, "every_steps": 5}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = _cli("plan", str(path), cwd=tmp_path)
    assert proc.exit_code == 2 and "does not fit" in proc.stderr
    raw["averaging"] = {"snapshots": None}
    raw["mixture"] = {
        "mixer": {
            "name": "staged",
            "stages": [
                {"until": 0.6, "weights": "natural"},
                {"until": 0.4, "weights": "uniform"},
                {"until": 1.0, "weights": "natural"},
            ],
        }
    }
    path.write_text(yaml.safe_dump(raw))
    proc = _cli("plan", str(path), cwd=tmp_path)
    assert proc.exit_code == 2 and "Traceback" not in proc.stderr and "until" in proc.stderr


def test_recipe_show_prints_the_resolved_recipe(corpus_dir: Path, tmp_path: Path) -> None:
    from recipes.loading import recipe_from_dict

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(corpus_dir, tmp_path / "run")))
    result = runner.invoke(app, ["recipe", "show", str(path), "--set", "training.steps=7"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["training"]["steps"] == 7
    assert shown["averaging"]["weights"] == {"name": "ema", "alpha": 0.2, "form": "normalized"}  # defaults filled in
    assert shown["training"]["weight_decay"] == 0.1
    assert recipe_from_dict(shown).training.steps == 7  # and it loads again as it is


def test_plan_writes_nothing_unless_asked(corpus_dir: Path, tiny_store: Path, tmp_path: Path) -> None:
    raw = recipe_dict(corpus_dir, tmp_path / "run", tiny_store)
    raw["schedule"]["peak_lr"] = 3e-5
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    before = sorted(tmp_path.rglob("*"))
    result = runner.invoke(app, ["plan", str(path)])
    assert result.exit_code == 0, result.output
    assert sorted(tmp_path.rglob("*")) == before  # no plan.png in the run folder as a side effect
    # Not a terminal (a pipe, a log): the tables print at their natural width, no number is cut.
    assert "…" not in result.output and "3.00e-05" in result.output, result.output


def test_plan_checks_every_output_before_writing_any(corpus_dir: Path, tiny_store: Path, tmp_path: Path) -> None:
    raw = recipe_dict(corpus_dir, tmp_path / "run", tiny_store)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    (tmp_path / "file").write_text("x")
    png = tmp_path / "p.png"
    for bad in (tmp_path / "file" / "s.json", tmp_path, Path("/proc/currimix-plan.json")):
        result = runner.invoke(app, ["plan", str(path), "--png", str(png), "--json", str(bad)])
        assert result.exit_code == 2 and ("--json" in result.output or "cannot write" in result.output), result.output
        assert not png.exists() and not list(tmp_path.glob(".*tmp*"))
