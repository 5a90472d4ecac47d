"""Uncertainty over seeds: Student-t intervals of a mean, and paired differences between two cells.

Seeds are the unit of replication: seed s draws the same initial noise (and the same per-image noise
streams) in every method and at every NFE, so two cells' values at one seed are a pair, and their
difference removes what the noise of that seed adds to both. With n seeds the interval of a mean is
``mean ± t_{0.975, n-1} · s / sqrt(n)`` (s the sample standard deviation); one seed has no interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95


def t_quantile(df: float, level: float = LEVEL) -> float:
    """The two-sided Student-t quantile t_{(1+level)/2, df}; NaN when df < 1."""
    return float(stats.t.ppf(0.5 + level / 2, df)) if df >= 1 else math.nan


def t_half_width(std: float, n: float, level: float = LEVEL) -> float:
    """Half-width of the t interval of a mean of ``n`` values with sample std ``std``; NaN for n < 2."""
    if not n or n < 2 or not math.isfinite(std):
        return math.nan
    return t_quantile(n - 1, level) * std / math.sqrt(n)


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` finite values and the half-width of its t interval (NaN for one value)."""

    mean: float
    half: float
    n: int

    @property
    def lo(self) -> float:
        return self.mean - self.half

    @property
    def hi(self) -> float:
        return self.mean + self.half


def t_interval(values, level: float = LEVEL) -> Interval:
    """The mean of the finite ``values`` and its Student-t interval."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return Interval(math.nan, math.nan, 0)
    std = float(v.std(ddof=1)) if len(v) > 1 else math.nan
    return Interval(float(v.mean()), t_half_width(std, len(v), level), len(v))


@dataclass(frozen=True)
class Paired(Interval):
    """``a - b`` over the seeds both cells have: mean, t interval, p-value of the paired t test.

    ``significant`` is True when the interval excludes 0, False when it holds 0, None when fewer than two
    seeds are shared (no test is possible)."""

    p_value: float
    seeds: tuple

    @property
    def significant(self) -> bool | None:
        if self.n < 2 or not math.isfinite(self.half):
            return None
        return bool(self.lo > 0 or self.hi < 0)


def paired_difference(a: Mapping, b: Mapping, level: float = LEVEL) -> Paired:
    """Per-seed differences ``a[s] - b[s]`` over the seeds with a finite value in both (seed -> value)."""
    seeds = tuple(sorted(s for s in a if s in b and math.isfinite(a[s]) and math.isfinite(b[s])))
    d = np.array([a[s] - b[s] for s in seeds], dtype=float)
    if len(d) == 0:
        return Paired(math.nan, math.nan, 0, math.nan, seeds)
    mean = float(d.mean())
    if len(d) < 2:
        return Paired(mean, math.nan, 1, math.nan, seeds)
    sd = float(d.std(ddof=1))
    if sd == 0.0:  # every seed moved by exactly the same amount: the interval is a point
        return Paired(mean, 0.0, len(d), 0.0 if mean != 0 else 1.0, seeds)
    t = mean / (sd / math.sqrt(len(d)))
    p = float(2 * stats.t.sf(abs(t), len(d) - 1))
    return Paired(mean, t_half_width(sd, len(d), level), len(d), p, seeds)
