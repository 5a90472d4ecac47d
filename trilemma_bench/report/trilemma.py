"""The trilemma view: within a budget of NFE or of ms/image, which cell is best on quality (FID) and on
diversity (coverage, recall), and which others are tied with it.

The best cell is the one with the best mean over seeds among those within the budget (the budget applies
to the cell's NFE as counted, or to its mean ms/image). Another cell is *tied* with it when their paired
per-seed difference is not significant after Holm's correction over the answer's tests (every other cell
within the budget against the best: one family per budget and axis); with fewer than two shared seeds no test
is possible, and the answer counts those apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .front import cell_label, cells_of, pareto_mask, per_seed
from .setting import check_one_timing_run
from .stats import holm, paired_difference, significant_after
from .tables import METRICS, fmt

AXES = [("fid", False), ("coverage", True), ("recall", True)]  # (metric, higher is better)
NFE_BUDGETS = (1, 2, 4, 10, 20, 50, 100, 1000)
BUDGETS = {"nfe": "NFE", "ms_per_image": "ms/image"}


SHOWN_TIES = 3  # a tie list names the few cells nearest the best, then counts the rest


@dataclass
class Best:
    """The best cell on one axis within a budget, and the cells it cannot be told apart from: paired by seed, each
    other cell's test against the best, Holm-corrected over the ``n_tests`` tests of this one answer."""

    cell: str
    mean: float
    half: float
    ties: list[str] = field(default_factory=list)  # not significantly different from the best, nearest first
    untested: list[str] = field(default_factory=list)  # fewer than two shared seeds
    n_tests: int = 0
    beaten: int = 0  # cells significantly worse than the best after correction

    def text(self, pattern: str) -> str:
        out = f"{self.cell} ({fmt(self.mean, self.half, pattern)})"
        if self.ties:
            shown = ", ".join(self.ties[:SHOWN_TIES]) + (", …" if len(self.ties) > SHOWN_TIES else "")
            out += f"; tied with {len(self.ties)} ({shown})"
        if self.n_tests:
            out += f"; better than {self.beaten} of {self.n_tests} (Holm)"
        if self.untested:
            out += f"; {len(self.untested)} untested (fewer than 2 shared seeds)"
        return out


def _budget_values(cells: pd.DataFrame, budget_col: str) -> np.ndarray:
    col = "nfe" if budget_col == "nfe" else f"{budget_col}_mean"
    return pd.to_numeric(cells[col], errors="coerce").to_numpy(float)


def best_within(summary: pd.DataFrame, rows: pd.DataFrame, budget_col: str, budget: float, metric: str,
                higher: bool) -> Best | None:
    """The best cell on ``metric`` among those whose NFE (``budget_col="nfe"``) or mean ms/image is at most
    ``budget``; None when no cell fits or none has the metric. Ties: Holm over this answer's tests."""
    cells = cells_of(summary, "ms_per_image" if budget_col != "nfe" else metric, metric)
    if budget_col != "nfe":
        check_one_timing_run(cells)
    if cells.empty:
        return None
    cells = cells[_budget_values(cells, budget_col) <= budget * (1 + 1e-9)].reset_index(drop=True)
    if cells.empty:
        return None
    means = cells[f"{metric}_mean"].to_numpy(float)
    b = int(np.argmax(means) if higher else np.argmin(means))
    best = cells.iloc[b]
    out = Best(cell_label(best), float(means[b]), float(best[f"{metric}_ci95"]))
    mine = per_seed(rows, best, metric)
    others = [i for i in np.argsort(np.abs(means - means[b]), kind="stable") if i != b]  # nearest first
    tests = [paired_difference(per_seed(rows, cells.iloc[i], metric), mine) for i in others]
    adjusted = holm([t.p_value if t.significant is not None else math.nan for t in tests])
    for i, p in zip(others, adjusted):
        verdict = significant_after(p)
        if verdict is None:
            out.untested.append(cell_label(cells.iloc[i]))
        elif verdict:
            out.beaten += 1
        else:
            out.ties.append(cell_label(cells.iloc[i]))
    out.n_tests = int(np.isfinite(adjusted).sum())
    return out


def nfe_grid(nfes) -> list[int]:
    """The standard NFE budgets from the smallest NFE measured to the first budget covering the largest."""
    nfes = [n for n in nfes if math.isfinite(n)]
    if not nfes:
        return []
    lo, hi = min(nfes), max(nfes)
    above = [b for b in NFE_BUDGETS if b >= hi]
    return [b for b in NFE_BUDGETS if lo <= b < hi] + [above[0] if above else int(hi)]


def ms_grid(ms) -> list[float]:
    """A 1-2-5 log grid of ms/image budgets spanning the cells' times."""
    ms = [m for m in ms if math.isfinite(m) and m > 0]
    if not ms:
        return []
    lo, hi = min(ms), max(ms)
    start = 10 ** math.floor(math.log10(lo))
    grid, k = [], 0
    while True:
        value = start * (1, 2, 5)[k % 3] * 10 ** (k // 3)
        k += 1
        if value < lo * (1 - 1e-9):
            continue
        grid.append(float(f"{value:.3g}"))
        if value >= hi * (1 - 1e-9):
            return grid


def budget_table(summary: pd.DataFrame, rows: pd.DataFrame, budget_col: str) -> pd.DataFrame:
    """Best cell per axis at each budget of the grid (NFE or ms/image)."""
    cells = cells_of(summary, "ms_per_image", "fid") if budget_col != "nfe" else summary[summary["method"] != "real"]
    if cells.empty:
        return pd.DataFrame()
    values = _budget_values(cells, budget_col)
    grid = nfe_grid(values) if budget_col == "nfe" else ms_grid(values)
    records = []
    for budget in grid:
        record = {f"{BUDGETS[budget_col]} ≤": f"{budget:g}"}
        for metric, higher in AXES:
            if f"{metric}_mean" not in summary:
                continue
            best = best_within(summary, rows, budget_col, budget, metric, higher)
            title, pattern, _ = METRICS[metric]
            record[f"best {title} ({'higher' if higher else 'lower'})"] = "–" if best is None else best.text(pattern)
        records.append(record)
    return pd.DataFrame.from_records(records)


def fronts(summary: pd.DataFrame) -> list[str]:
    """The Pareto front of each axis against ms/image, as lines of text in increasing time."""
    lines = []
    for metric, higher in AXES:
        cells = cells_of(summary, "ms_per_image", metric)
        check_one_timing_run(cells)
        if cells.empty:
            continue
        x, y = cells["ms_per_image_mean"].to_numpy(float), cells[f"{metric}_mean"].to_numpy(float)
        mask = pareto_mask(x, y, min_y=not higher)
        title, pattern, _ = METRICS[metric]
        points = [f"{cell_label(cells.iloc[i])} ({x[i]:.3g} ms, {pattern.format(y[i])})"
                  for i in np.argsort(x, kind="stable") if mask[i]]
        lines.append(f"Pareto front, {title} against ms/image: " + " → ".join(points))
    return lines
