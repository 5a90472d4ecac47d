"""The Pareto front of a trade-off, drawn as what is attainable, and which differences near it are real.

Cells are compared on their means over seeds. A cell is *on the front* when no other cell is at least as
good on both axes and better on one. A dominated cell is *near the front* when no front cell that
dominates it is significantly better on the metric (paired t test by seed, Holm-corrected over every test
the table makes): within the noise of the seeds, it could be on the front. Speed is taken as
measured (medians of timed batches); only the metric is tested.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .setting import REAL, check_one_timing_run
from .stats import Paired, holm, paired_difference, significant_after


def pareto_mask(x, y, *, min_x: bool = True, min_y: bool = True) -> np.ndarray:
    """True for the points no other point beats on both axes (ties allowed, one strict)."""
    sx, sy = (1 if min_x else -1) * np.asarray(x, float), (1 if min_y else -1) * np.asarray(y, float)
    ok = np.isfinite(sx) & np.isfinite(sy)
    mask = np.zeros(len(sx), bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (sx <= sx[i]) & (sy <= sy[i]) & ((sx < sx[i]) | (sy < sy[i]))
        mask[i] = not dominated.any()
    return mask


def staircase(x, y, *, min_x: bool = True, min_y: bool = True, extend: float | None = None):
    """Vertices of the attainable frontier through the front of (x, y), in increasing x.

    At a cost x (``min_x``) the best attainable y is that of the last front point with x_i <= x, so the
    line runs flat from each front point to the next one's x, then steps to its y. Where x is a benefit
    (``min_x=False``, as recall) the best y at x is that of the first front point with x_i >= x: the step
    comes first. ``extend`` continues the last (cost) or first (benefit) level to that x.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    mask = pareto_mask(x, y, min_x=min_x, min_y=min_y)
    order = np.argsort(x[mask], kind="stable")
    fx, fy = x[mask][order], y[mask][order]
    xs, ys = [], []
    for i in range(len(fx)):
        if i:
            if min_x:
                xs.append(fx[i]), ys.append(fy[i - 1])
            else:
                xs.append(fx[i - 1]), ys.append(fy[i])
        xs.append(fx[i]), ys.append(fy[i])
    if extend is not None and len(fx):
        if min_x and extend > fx[-1]:
            xs.append(extend), ys.append(fy[-1])
        elif not min_x and extend < fx[0]:
            xs.insert(0, extend), ys.insert(0, fy[0])
    return np.array(xs), np.array(ys)


def cell_label(line) -> str:
    return f"{line['method']}@{int(line['nfe'])}"


def per_seed(rows: pd.DataFrame, line, metric: str) -> dict:
    """seed -> value of one cell's rows."""
    at = ((rows["method"] == line["method"]) & (rows["sampler"] == line["sampler"])
          & (pd.to_numeric(rows["nfe"], errors="coerce") == line["nfe"]))
    mine = rows.loc[at, ["seed", metric]]  # two columns, not the row's hundred: the report calls this thousands of times
    return dict(zip(mine["seed"], pd.to_numeric(mine[metric], errors="coerce")))


@dataclass(frozen=True)
class Comparison:
    relation: str  # "front: next" or "near: dominated by"
    cell: str
    other: str
    test: Paired  # cell - other, per seed
    adjusted_p: float = math.nan  # Holm-adjusted over every test the table's construction made
    n_tests: int = 0  # ... that many

    @property
    def significant(self) -> bool | None:
        """The verdict after correction (None: not testable)."""
        return significant_after(self.adjusted_p) if self.test.significant is not None else None


def cells_of(summary: pd.DataFrame, xcol: str, ycol: str) -> pd.DataFrame:
    """The model cells (not real data) with a finite mean on both axes."""
    ok = summary["method"] != REAL
    for col in (xcol, ycol):
        col = "nfe" if col == "nfe" else f"{col}_mean"
        ok &= np.isfinite(pd.to_numeric(summary.get(col, np.nan), errors="coerce"))
    return summary[ok].reset_index(drop=True)


def front_comparisons(summary: pd.DataFrame, rows: pd.DataFrame, ycol: str = "fid", *, xcol: str = "ms_per_image",
                      min_y: bool = True) -> tuple[list[Comparison], pd.DataFrame]:
    """Paired tests on and near the front of ``ycol`` against ``xcol`` (a cost): each front cell against
    the next faster front cell, and each dominated cell against every front cell that dominates it; the
    dominated cells are kept only when near (no dominating front cell significantly better).
    Also returns the cells with columns ``front`` and ``near``."""
    cells = cells_of(summary, xcol, ycol)
    if xcol != "nfe":
        check_one_timing_run(cells)
    if cells.empty:
        return [], cells.assign(front=[], near=[])
    x, y = cells[f"{xcol}_mean"].to_numpy(float), cells[f"{ycol}_mean"].to_numpy(float)
    front = pareto_mask(x, y, min_y=min_y)
    sign = 1 if min_y else -1
    values = [per_seed(rows, line, ycol) for line in cells.to_dict("records")]
    labels = [cell_label(line) for line in cells.to_dict("records")]
    made: list[tuple[int | None, Comparison]] = []  # (the dominated cell, or None on the front; the comparison)
    order = [i for i in np.argsort(x, kind="stable") if front[i]]
    for faster, slower in itertools.pairwise(order):
        made.append((None, Comparison("front: next faster", labels[slower], labels[faster],
                                      paired_difference(values[slower], values[faster]))))
    for i in np.flatnonzero(~front):
        doms = [j for j in np.flatnonzero(front)
                if x[j] <= x[i] and sign * y[j] <= sign * y[i] and (x[j] < x[i] or y[j] != y[i])]
        made += [(i, Comparison("near: dominated by", labels[i], labels[j], paired_difference(values[i], values[j])))
                 for j in doms]
    # One family: every test made, the ones that decide which dominated cells are near included.
    adjusted = holm([c.test.p_value if c.test.significant is not None else math.nan for _, c in made])
    n_tests = int(np.isfinite(adjusted).sum())
    made = [(i, replace(c, adjusted_p=float(p), n_tests=n_tests)) for (i, c), p in zip(made, adjusted)]
    near = np.zeros(len(cells), bool)
    for i in np.flatnonzero(~front):
        # near: no dominating front cell is significantly better after correction (untestable: not shown better)
        near[i] = all(c.significant is not True for k, c in made if k == i)
    out = [c for k, c in made if k is None or near[k]]
    return out, cells.assign(front=front, near=near)


def comparison_table(comparisons: list[Comparison], metric_title: str, pattern: str,
                     min_y: bool = True) -> pd.DataFrame:
    """The comparisons as text: difference ``cell - vs`` with its interval, p-value and verdict."""
    records = []
    for c in comparisons:
        t = c.test
        if c.significant is None:
            verdict = f"not testable ({t.n} shared seed{'s' if t.n != 1 else ''})"
        elif c.significant:
            better = c.cell if (t.mean < 0) == min_y else c.other
            verdict = f"significant: {better} better"
        else:
            verdict = "not significant (within seed noise)"
        diff = "–" if t.n == 0 else pattern.format(t.mean) + (
            f" [{pattern.format(t.lo)}, {pattern.format(t.hi)}]" if t.significant is not None else "")
        records.append({
            "relation": c.relation,
            "cell": c.cell,
            "vs": c.other,
            "paired seeds": t.n,
            f"Δ {metric_title} (cell − vs), 95% t interval (uncorrected)": diff,
            "p (paired t)": "–" if t.significant is None else f"{t.p_value:.2g}",
            "p (Holm)": "–" if c.significant is None else f"{c.adjusted_p:.2g}",
            "verdict": verdict,
        })
    return pd.DataFrame.from_records(records)
