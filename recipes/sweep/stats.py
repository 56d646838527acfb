"""Paired differences over seeds and their 95% intervals: the one statistic every results table uses.

A sweep runs every cell with the same seeds, and a seed fixes both the initialisation and the data
order, so two cells are compared *paired by seed*: d_s = metric(a, s) - metric(b, s). The interval
is the paired t-interval, mean(d) +- t(0.975, n-1) * sd(d) / sqrt(n), which assumes the per-seed
differences are roughly normal; with 4 seeds it is wide (t = 3.18), on purpose. A difference is
called a *finding* only when its interval excludes zero. A contrast of several cells (e.g. the gap
between two orders under decay minus the same gap under a constant LR) is the same computation on
d_s = sum_i c_i * metric(cell_i, s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Two-sided 95% quantiles of Student's t, t(0.975, df), for df = 1..30 (standard tables); beyond
# 30 degrees of freedom the normal quantile is within 2%.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.960


@dataclass(frozen=True)
class Paired:
    """A paired difference over ``n`` seeds: its mean, sd, 95% interval and how many seeds agree in sign."""

    mean: float
    sd: float
    low: float
    high: float
    n: int
    agree: int  # seeds whose difference has the sign of the mean

    @property
    def finding(self) -> bool:
        """The interval excludes zero."""
        return self.n > 1 and (self.low > 0 or self.high < 0)

    def text(self, digits: int = 3) -> str:
        if self.n < 2:
            return f"{self.mean:+.{digits}f} (1 seed)"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def paired(differences: np.ndarray) -> Paired:
    """The statistics of per-seed differences (see the module docstring)."""
    d = np.asarray(differences, dtype=np.float64)
    n = len(d)
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    half = t975(n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
    agree = int(np.sum(np.sign(d) == np.sign(mean))) if mean != 0 else 0
    return Paired(mean, sd, mean - half, mean + half, n, agree)


@dataclass(frozen=True)
class SignalNoise:
    """How well a metric separates a sweep's variants, as in "Signal and Noise" (Heineman et al.,
    2508.13144): signal = relative dispersion of the variants' means, max - min over |mean of all|;
    noise = relative standard deviation of one variant's runs, over seeds (sd across seeds) or over a
    run's last checkpoints (sd across its last evaluations), averaged over variants or runs;
    SNR = signal / noise (the |mean| cancels). At SNR below ~1, the metric cannot rank the variants at
    this scale: its spread between recipes is the size of its spread within one."""

    signal: float
    seed_noise: float
    checkpoint_noise: float
    variants: int

    @property
    def seed_snr(self) -> float:
        return _ratio(self.signal, self.seed_noise)

    @property
    def checkpoint_snr(self) -> float:
        return _ratio(self.signal, self.checkpoint_noise)


def _ratio(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)) or b <= 0:
        return math.nan
    return a / b


def signal_noise(by_variant: list[np.ndarray], last_checkpoints: list[np.ndarray] | None = None) -> SignalNoise:
    """``by_variant``: each variant's values over seeds; ``last_checkpoints``: each run's values at its
    last evaluations (in-loop). Noise needs >= 2 values per variant (or run); nan otherwise."""
    means = np.array([v.mean() for v in by_variant if len(v)], dtype=np.float64)
    scale = abs(float(means.mean())) if len(means) else math.nan
    if not len(means) or scale == 0:
        return SignalNoise(math.nan, math.nan, math.nan, len(means))
    signal = float(means.max() - means.min()) / scale if len(means) > 1 else math.nan
    seed_sds = [float(v.std(ddof=1)) for v in by_variant if len(v) > 1]
    ckpt_sds = [float(v.std(ddof=1)) for v in (last_checkpoints or []) if len(v) > 1]
    seed = float(np.mean(seed_sds)) / scale if seed_sds else math.nan
    ckpt = float(np.mean(ckpt_sds)) / scale if ckpt_sds else math.nan
    return SignalNoise(signal, seed, ckpt, len(means))
