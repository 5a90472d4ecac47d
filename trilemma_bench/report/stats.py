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


ALPHA = 1 - LEVEL  # the family-wise error rate Holm's procedure holds


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979): sort the m finite p ascending, p_(i) -> max over j <= i of
    min(1, (m - j + 1) p_(j)); NaN stays NaN and does not count as a test. A hypothesis is rejected at family-wise
    error ALPHA when its adjusted p is below ALPHA: the family's chance of any false "significant" is at most ALPHA."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def significant_after(adjusted_p: float) -> bool | None:
    """The verdict of one test after correction: None when it could not be made (fewer than two seeds)."""
    return None if not math.isfinite(adjusted_p) else bool(adjusted_p < ALPHA)
