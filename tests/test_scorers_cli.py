"""`currimix score ...` (the Typer app in recipes/cli/score.py) end to end on small real data."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

import datasets
import pytest
from typer.testing import CliRunner

from recipes.cli.score import parse_source, scorer_config
from recipes.cli.score import score_app as app
from tests.scorer_corpus import mail_file

runner = CliRunner()
# The real SpamAssassin file, or a generated one with the same fields (parametrize needs it at import).
_FALLBACK = Path(tempfile.gettempdir()) / f"currimix-tests-{os.getuid()}"
_FALLBACK.mkdir(exist_ok=True)
MAIL = mail_file(_FALLBACK)


def _ok(args: list[str]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_fit_then_apply_writes_a_scored_jsonl_atomically(tmp_path):
    ham, spam = f"{MAIL}?where.label=ham&max_documents=80", f"{MAIL}?where.label=spam&max_documents=80"
    _ok(
        [
            "fit",
            "classifier",
            "--out",
            str(tmp_path / "clf"),
            "-p",
            ham,
            "-n",
            spam,
            "--set",
            "buckets=4096",
            "--set",
            "epochs=2",
        ]
    )
    assert sorted(p.name for p in (tmp_path / "clf").iterdir()) == ["classifier.npz", "scorer.json"]
    out = tmp_path / "scored.jsonl.gz"
    _ok(["apply", f"{MAIL}?max_documents=50", "--out", str(out), "--scorer", str(tmp_path / "clf")])
    with gzip.open(out, "rt") as fh:
        rows = [json.loads(line) for line in fh]
    assert len(rows) == 50 and all(isinstance(r["quality_score"], float) for r in rows)
    assert {"label", "subject", "id"} <= set(rows[0])
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    again = runner.invoke(app, ["apply", str(MAIL), "--out", str(out), "--scorer", "length"])
    assert again.exit_code == 2 and "already exists" in again.output


def test_fit_ngram_refuses_negatives_with_a_clear_error(tmp_path):
    ham, spam = f"{MAIL}?where.label=ham&max_documents=20", f"{MAIL}?where.label=spam&max_documents=5"
    result = runner.invoke(app, ["fit", "ngram", "--out", str(tmp_path / "lm"), "-p", ham, "-n", spam])
    assert result.exit_code == 2 and "5 negative documents" in result.output and "classifier" in result.output
    assert not (tmp_path / "lm").exists()
    _ok(["fit", "ngram", "--out", str(tmp_path / "lm"), "-p", ham, "--set", "order=2"])


def test_apply_writes_a_datasets_folder_and_evaluate_reports_auc(tmp_path):
    _ok(
        [
            "apply",
            f"{MAIL}?max_documents=40",
            "--out",
            str(tmp_path / "ds"),
            "--scorer",
            "heuristic",
            "--column",
            "heur",
            "--set",
            "softness=2",
        ]
    )
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert len(ds) == 40 and "heur" in ds.column_names
    result = _ok(["evaluate", str(MAIL), "--label", "label", "--positive-value", "ham", "--scorer", "heuristic"])
    assert "ROC-AUC" in result.output


def test_inspect_and_list_show_the_rules():
    assert "word_count" in _ok(["inspect", f"{MAIL}?max_documents=5", "--limit", "1"]).output
    assert "fail" in _ok(["inspect", f"{MAIL}?max_documents=20", "--summary"]).output
    listing = _ok(["list", "--rules"]).output
    assert "ngram" in listing and "trainable" in listing and "dup_5gram_char_ratio" in listing
    # default weights are shown, so a rule that is off by default is visible as such
    assert any(line.split()[:1] == ["email_address_ratio"] and " x0 " in line for line in listing.splitlines())


@pytest.mark.parametrize(
    "args, message",
    [
        (["apply", "nowhere.jsonl", "--out", "x.jsonl", "--scorer", "length"], "does not exist"),
        (["apply", str(MAIL), "--out", "x.jsonl", "--scorer", "nope"], "unknown scorer"),
        (["apply", str(MAIL), "--out", "x.jsonl", "--scorer", "heuristic", "--set", "softness=-1"], "softness"),
        (["apply", str(MAIL), "--out", "x.jsonl", "--scorer", "heuristic", "--set", "softness=[1"], "not valid YAML"),
        (["fit", "heuristic", "--out", "x", "-p", str(MAIL)], "not trainable"),
        (["apply", f"{MAIL}?bogus=1", "--out", "x.jsonl", "--scorer", "length"], "bogus"),
    ],
)
def test_user_mistakes_exit_2_with_a_message(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_every_command_documents_its_options():
    for command in ("list", "fit", "apply", "inspect", "evaluate"):
        text = runner.invoke(app, [command, "--help"]).output
        assert "--help" in text and len(text) > 200, command


def test_source_spec_parses_settings_and_filters():
    src = parse_source("data/x.jsonl?text_field=body&max_documents=10&where.label=ham&where.year=2002")
    assert (src.path, src.text_field, src.max_documents) == ("data/x.jsonl", "body", 10)
    assert src.where == {"label": "ham", "year": 2002}


def test_set_reaches_into_lists_like_the_recipes_set(tmp_path):
    config = tmp_path / "combine.yaml"
    config.write_text("name: combine\nparts: [{scorer: {name: heuristic}}, {scorer: {name: length}, weight: 0.5}]\n")
    data = scorer_config(None, config, ["parts.1.weight=2", "parts.0.scorer.softness=0.5"])
    assert data["parts"] == [
        {"scorer": {"name": "heuristic", "softness": 0.5}},
        {"scorer": {"name": "length"}, "weight": 2},
    ]
