"""Weight presets for checkpoint averaging: uniform (SMA), EMA, linear (WMA) and explicit lists.

Checkpoints are numbered i = 1..K from **oldest to newest**; every preset returns K float64
weights in that order. Conventions, stated once here and nowhere else:

- ``sma``: w_i = 1/K.
- ``wma``: w_i proportional to i (the newest is K times the oldest).
- ``ema`` with ``form="normalized"`` (the default): w_i proportional to (1-alpha)^(K-i), scaled to
  sum to 1. The newest weighs most; each older one (1-alpha) times less.
- ``ema`` with ``form="recursive"``: what e_1 = theta_1, e_i = alpha*theta_i + (1-alpha)*e_{i-1}
  gives: w_i = alpha*(1-alpha)^(K-i) for i >= 2 and w_1 = (1-alpha)^(K-1). The ratios between
  checkpoints 2..K are the same as in the normalized form, but the oldest checkpoint also keeps
  the mass an infinite history would have spread over still older ones, so with few checkpoints
  the two differ (alpha=0.2, K=6: newest 0.271 normalized vs 0.200 recursive; oldest 0.089 vs 0.328).
- ``explicit``: the given values, scaled to sum to 1 unless ``normalize=False``.
- ``wsm`` (WSM, arXiv 2507.17634): merging checkpoints of a constant-LR run in place of a decay. Averaging
  checkpoints 1..K with weights c_i applies every update between checkpoints m and m+1 with the LR
  scaled by the weight of the checkpoints after it, sum_{i>m} c_i. So c_i are chosen to make that
  multiplier follow a decay shape d(q) (``decay_shape`` from 1 to ``final_lr_ratio``, the same shapes
  as the LR schedules) sampled at the middle of each of the K-1 gaps: c_K = d(q_{K-1}), c_i =
  d(q_{i-1}) - d(q_i), c_1 = 1 - d(q_1), with q_m = (m - 1/2) / (K - 1). All weights are >= 0 and the
  newest weighs most only when the emulated decay ends high. The knobs of WSM are the shape, the
  count K (``averaging.snapshots`` / ``--last``), the spacing (``averaging.every_steps`` /
  ``--every``) and so the merge duration (K - 1) x spacing, which the paper finds matters most.

Presets are registered in `WEIGHTINGS`: the recipe's ``averaging.weights`` and ``currimix average``
use the same configs (``{name: ema, alpha: 0.2}``). `tools.average.window` places a run's snapshots
on the plan's steps.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence, Union

import numpy as np
from pydantic import Field, ValidationError

from curriculum.errors import UserError
from curriculum.registry import Registry, StrictModel, validation_problems
from tools.train.schedules import decay_curve

WEIGHTINGS: Registry[list[float]] = Registry("weighting")


class SMAWeights(StrictModel):
    """Uniform average of the K checkpoints."""

    name: Literal["sma"] = "sma"


class WMAWeights(StrictModel):
    """Linearly increasing weights: checkpoint i (1 = oldest) gets weight proportional to i."""

    name: Literal["wma"] = "wma"


class EMAWeights(StrictModel):
    """Exponential weights; see the module docstring for the two forms."""

    name: Literal["ema"] = "ema"
    alpha: float = Field(gt=0.0, le=1.0, description="Weight of the newest checkpoint's update, in (0, 1].")
    form: Literal["normalized", "recursive"] = Field(
        "normalized",
        description="'normalized': w_i ~ (1-alpha)^(K-i) scaled to sum 1; "
        "'recursive': the EMA recursion seeded from the oldest checkpoint.",
    )


class ExplicitWeights(StrictModel):
    """One weight per checkpoint, oldest first."""

    name: Literal["explicit"] = "explicit"
    values: list[float] = Field(min_length=1, description="Weights, oldest checkpoint first.")
    normalize: bool = Field(True, description="Scale the values to sum to 1.")


class WSMWeights(StrictModel):
    """Weights that make a merge of constant-LR checkpoints emulate an LR decay (see the module docstring)."""

    name: Literal["wsm"] = "wsm"
    decay_shape: Literal["linear", "cosine", "1-sqrt"] = Field(
        "linear", description="Decay shape the merge emulates over its window (as in `schedule.decay_shape`)."
    )
    final_lr_ratio: float = Field(
        0.0, ge=0.0, le=1.0, description="LR / peak the emulated decay ends at (0 = decay to zero)."
    )


WeightSpec = Union[SMAWeights, WMAWeights, EMAWeights, ExplicitWeights, WSMWeights]


@WEIGHTINGS.register("sma", SMAWeights)
def sma_weights(config: SMAWeights, k: int) -> list[float]:
    return [1.0 / k] * k


@WEIGHTINGS.register("wma", WMAWeights)
def wma_weights(config: WMAWeights, k: int) -> list[float]:
    total = k * (k + 1) / 2
    return [i / total for i in range(1, k + 1)]


@WEIGHTINGS.register("ema", EMAWeights)
def ema_weights(config: EMAWeights, k: int) -> list[float]:
    decay = 1.0 - config.alpha
    if config.form == "recursive":
        return [decay ** (k - 1)] + [config.alpha * decay ** (k - i) for i in range(2, k + 1)]
    raw = [decay ** (k - i) for i in range(1, k + 1)]
    total = math.fsum(raw)
    return [r / total for r in raw]


@WEIGHTINGS.register("wsm", WSMWeights)
def wsm_weights(config: WSMWeights, k: int) -> list[float]:
    if k == 1:
        return [1.0]
    q = (np.arange(1, k) - 0.5) / (k - 1)
    tail = decay_curve(q, config.decay_shape, config.final_lr_ratio)  # tail[m-1] = sum of c_i, i > m
    weights = np.concatenate([[1.0 - tail[0]], tail[:-1] - tail[1:], [tail[-1]]])
    return [float(w) for w in np.maximum(weights, 0.0)]  # exact zeros, never -1e-17, for a flat shape


@WEIGHTINGS.register("explicit", ExplicitWeights)
def explicit_weights(config: ExplicitWeights, k: int) -> list[float]:
    values = [float(v) for v in config.values]
    if len(values) != k:
        raise UserError(f"{len(values)} explicit weights given for {k} checkpoints; give exactly one per checkpoint")
    if not all(math.isfinite(v) for v in values):
        raise UserError(f"explicit weights must be finite numbers, got {values}")
    try:
        total = math.fsum(values)
    except OverflowError:
        total = math.inf
    if not math.isfinite(total):
        raise UserError(
            f"explicit weights {values} overflow when summed; use weights of a sensible size (e.g. summing to 1)"
        )
    if not config.normalize:
        return values
    if total == 0.0:
        raise UserError(f"explicit weights {values} sum to 0 and cannot be normalized")
    return [v / total for v in values]


def parse_weight_spec(spec: WeightSpec | str | Sequence[float] | dict[str, Any]) -> WeightSpec:
    """Turn a preset config, a preset name, a list of numbers or a ``{name: ...}`` dict into a config."""
    if isinstance(spec, StrictModel):
        return spec  # type: ignore[return-value]
    try:
        if isinstance(spec, str):
            return WEIGHTINGS.parse({"name": spec})  # type: ignore[return-value]
        if isinstance(spec, dict):
            return WEIGHTINGS.parse(spec)  # type: ignore[return-value]
        return ExplicitWeights(values=[float(v) for v in spec])
    except ValidationError as exc:
        problems = validation_problems(exc, spec if isinstance(spec, dict) else None, top="weights")
        raise UserError(f"invalid averaging weights {spec!r}", problems) from None


def parse_weight_text(
    text: str,
    *,
    alpha: float | None = None,
    ema_form: str = "normalized",
    normalize: bool = True,
    wsm_shape: str | None = None,
    wsm_final: float | None = None,
) -> WeightSpec:
    """A weighting as a command line writes it (``--weights``): a preset name (``ema`` with its
    ``alpha`` and ``ema_form``; ``wsm`` with its ``wsm_shape`` and ``wsm_final``) or one
    comma-separated weight per checkpoint, oldest first (``normalize``: scaled to sum to 1). The
    result goes through `parse_weight_spec`."""
    wsm_given = {k: v for k, v in (("decay_shape", wsm_shape), ("final_lr_ratio", wsm_final)) if v is not None}
    if text == "wsm":
        return parse_weight_spec({"name": "wsm", **wsm_given})
    if wsm_given:
        raise UserError(f"--wsm-shape and --wsm-final only apply to --weights wsm, not {text!r}")
    if text == "ema":
        if alpha is None:
            raise UserError("--weights ema needs --alpha (e.g. --alpha 0.2)")
        return parse_weight_spec({"name": "ema", "alpha": alpha, "form": ema_form})
    if alpha is not None:
        raise UserError(f"--alpha only applies to --weights ema, not {text!r}")
    if text in WEIGHTINGS.names() and text != "explicit":
        return parse_weight_spec(text)
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(
            f"--weights {text!r} is neither sma, ema, wma, wsm nor a comma-separated list of numbers"
        ) from None
    return parse_weight_spec({"name": "explicit", "values": values, "normalize": normalize})


def resolve_weights(spec: WeightSpec | str | Sequence[float] | dict[str, Any], k: int) -> list[float]:
    """The K weights (oldest checkpoint first) that ``spec`` gives for K checkpoints."""
    if k < 1:
        raise UserError("no checkpoints to average")
    config = parse_weight_spec(spec)
    weights = WEIGHTINGS.build(config, k)
    assert len(weights) == k, (config, weights)
    return weights
