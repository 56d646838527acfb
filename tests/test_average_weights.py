"""Weight presets and run-folder selection for checkpoint averaging (no models needed)."""

from __future__ import annotations

import json
import logging
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curriculum.errors import UserError
from tools.average.select import select_run_checkpoints
from tools.average.weights import WEIGHTINGS, EMAWeights, resolve_weights


def test_presets_are_registered():
    assert WEIGHTINGS.names() == ["ema", "explicit", "sma", "wma", "wsm"]


def test_sma_wma_explicit():
    assert resolve_weights("sma", 4) == [0.25] * 4
    assert resolve_weights("wma", 3) == pytest.approx([1 / 6, 2 / 6, 3 / 6])
    assert resolve_weights([1, 1, 2], 3) == [0.25, 0.25, 0.5]
    assert resolve_weights({"name": "explicit", "values": [2, -1], "normalize": False}, 2) == [2.0, -1.0]


def test_ema_forms_documented_numbers():
    """The two EMA conventions differ; the module docstring quotes these numbers (alpha 0.2, K 6)."""
    norm = resolve_weights(EMAWeights(alpha=0.2), 6)
    rec = resolve_weights(EMAWeights(alpha=0.2, form="recursive"), 6)
    assert norm[-1] == pytest.approx(0.271, abs=5e-4) and norm[0] == pytest.approx(0.089, abs=5e-4)
    assert rec[-1] == pytest.approx(0.200) and rec[0] == pytest.approx(0.328, abs=5e-4)
    # Same ratios among checkpoints 2..K; only the oldest differs.
    assert [b / a for a, b in zip(norm[1:], norm[2:])] == pytest.approx([b / a for a, b in zip(rec[1:], rec[2:])])


@settings(deadline=None)  # a busy CI machine once took 280 ms for one example (the default deadline is 200 ms)
@given(k=st.integers(1, 12), alpha=st.floats(0.01, 1.0))
def test_ema_properties(k, alpha):
    norm = resolve_weights({"name": "ema", "alpha": alpha}, k)
    assert math.fsum(norm) == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(norm, norm[1:]))  # newest heaviest
    for a, b in zip(norm, norm[1:]):
        assert a == pytest.approx(b * (1 - alpha), abs=1e-12)
    # The recursive form is exactly the EMA recursion seeded with the oldest checkpoint.
    rec = resolve_weights({"name": "ema", "alpha": alpha, "form": "recursive"}, k)
    state = [1.0] + [0.0] * (k - 1)
    for i in range(1, k):
        state = [(1 - alpha) * s for s in state]
        state[i] += alpha
    assert rec == pytest.approx(state, abs=1e-12)


@pytest.mark.parametrize(
    "spec, k, match",
    [
        ([1.0, 2.0], 3, "2 explicit weights given for 3 checkpoints"),
        ([1.0, -1.0], 2, "sum to 0"),
        ({"name": "ema", "alpha": 1.5}, 3, "alpha"),
        ({"name": "ema"}, 3, "alpha"),
        ({"name": "nope"}, 3, "unknown weighting 'nope'; choose one of: ema, explicit, sma, wma"),
        ("sma", 0, "no checkpoints"),
    ],
)
def test_bad_weights(spec, k, match):
    with pytest.raises(UserError, match=match):
        resolve_weights(spec, k)


def _folder(base, name, marker=None):
    folder = base / name
    folder.mkdir(parents=True)
    if marker is not None:
        (folder / "currimix.json").write_text(json.dumps(marker))
    return folder


def test_select_reads_steps_from_marker(tmp_path, caplog):
    snaps = tmp_path / "snapshots"
    for step in (100, 200, 300):
        # Folder names deliberately disagree with the steps: the marker wins.
        _folder(snaps, f"step_{step + 5:08d}", {"format": 1, "kind": "snapshot", "step": step})
    _folder(snaps, "step_00000400")  # no marker: falls back to the name, with a warning
    _folder(snaps, ".step_00000500.tmp")  # an unfinished write
    _folder(snaps, "avg", {"format": 1, "kind": "average"})
    _folder(snaps, "notes")  # no marker, no step name
    with caplog.at_level(logging.WARNING):
        picked = select_run_checkpoints(tmp_path)
    assert [p.name for p in picked] == ["step_00000105", "step_00000205", "step_00000305", "step_00000400"]
    assert "step 400 read from the folder name" in caplog.text
    assert [p.name for p in select_run_checkpoints(tmp_path, last=2)] == ["step_00000305", "step_00000400"]
    assert [p.name for p in select_run_checkpoints(tmp_path, every=200)] == ["step_00000205", "step_00000400"]
    assert [p.name for p in select_run_checkpoints(tmp_path, every=200, last=1)] == ["step_00000400"]


def test_select_errors(tmp_path):
    ckpts = tmp_path / "checkpoints"
    _folder(ckpts, "a", {"kind": "checkpoint", "step": 10})
    _folder(ckpts, "b", {"kind": "checkpoint", "step": 10})
    with pytest.raises(UserError, match="snapshots does not exist"):
        select_run_checkpoints(tmp_path)
    with pytest.raises(UserError, match="two folders claim step 10"):
        select_run_checkpoints(tmp_path, source="checkpoints")
    (ckpts / "b" / "currimix.json").write_text(json.dumps({"kind": "checkpoint", "step": 20}))
    with pytest.raises(UserError, match="asked for the last 3 checkpoints but .* has only 2"):
        select_run_checkpoints(tmp_path, last=3, source="checkpoints")
    with pytest.raises(UserError, match=r"steps found: 10, 20"):
        select_run_checkpoints(tmp_path, every=7, source="checkpoints")
