"""The answer first: which cell to use at a budget of NFE or of milliseconds, and what it gives up.

The top of the report holds, for the headline setting (the reference table's largest section: one dataset,
one timing run), the best cell by quality (FID) and by diversity (coverage) within each budget, with its
interval, how many cells tie with it (Holm-corrected, :mod:`.trilemma`), and how far it is from the best cell
at any budget: the price of the budget. ms budgets are quantiles of the section's cells' times, so they
always fall inside what was measured.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .front import cells_of
from .setting import REAL
from .tables import fmt
from .trilemma import Best, best_within

NFE_BUDGETS = (1, 2, 4, 10, 20, 50)
MS_QUANTILES = (0.1, 0.25, 0.5, 0.75)
YOURS = " (yours)"


def headline(sections: list[tuple[dict, pd.DataFrame, pd.DataFrame]]) -> int | None:
    """Index of the headline section: the most reference (not your) cells; None when there are no cells."""
    counts = []
    for _key, rows, _summary in sections:
        cells = rows[(rows["method"] != REAL) & ~rows["method"].astype(str).str.endswith(YOURS)]
        counts.append(len(cells))
    return int(np.argmax(counts)) if counts and max(counts) > 0 else None


def _round2(x: float) -> float:
    """Two significant digits: a budget a reader can type."""
    return float(f"{x:.2g}")


def ms_budgets(summary: pd.DataFrame) -> list[float]:
    cells = cells_of(summary, "ms_per_image", "fid")
    ms = cells["ms_per_image_mean"].to_numpy(float)
    if len(ms) == 0:
        return []
    return sorted({_round2(float(np.quantile(ms, q))) for q in MS_QUANTILES})


NOT_CONVERGED, NOT_MEASURED = "†", "‡"


def cell_training(rows: pd.DataFrame, status: Mapping[tuple[str, int, int], bool]) -> dict[str, str]:
    """Cell label -> a mark for its model's training: NOT_CONVERGED where the training-compute curve
    (:func:`.curves.training_status`) still improved in FID at that checkpoint, NOT_MEASURED where no curve passes
    through it (another training seed, an untracked run), "" where it had flattened."""
    marks = {}
    for (method, nfe), part in rows[rows["method"] != REAL].groupby(["method", "nfe"], sort=False):
        line = part.iloc[0]
        model = re.sub(r"-[0-9a-f]{10}$", "", str(line.get("checkpoint", "")))
        seed, steps = pd.to_numeric(pd.Series([line.get("train_seed"), line.get("train_steps")]), errors="coerce")
        key = (model, int(seed) if math.isfinite(seed) else 0, int(steps) if math.isfinite(steps) else -1)
        marks[f"{method}@{int(nfe)}"] = NOT_MEASURED if key not in status else "" if status[key] else NOT_CONVERGED
    return marks


def _cell_text(best: Best | None, metric: str, pattern: str, marks: Mapping[str, str]) -> str:
    if best is None:
        return "no cell within the budget"
    tied = f" (tied: {len(best.ties)})" if best.ties else ""
    return f"{best.cell}{marks.get(best.cell, '')}: {fmt(best.mean, best.half, pattern)}{tied}"


def _given_up(best: Best | None, overall: Best | None, pattern: str, higher: bool) -> str:
    """How much worse than the best cell at any budget (0 when it is that cell or ties with it)."""
    if best is None or overall is None:
        return "–"
    if best.cell == overall.cell or best.cell in overall.ties:
        return "nothing (ties the best)"
    gap = (overall.mean - best.mean) if higher else (best.mean - overall.mean)
    return f"{pattern.format(gap)} vs {overall.cell}"


def answer_table(summary: pd.DataFrame, rows: pd.DataFrame,
                 status: Mapping[tuple[str, int, int], bool] | None = None) -> pd.DataFrame:
    """Per budget (NFE, then ms/image quantiles): the best cell by FID and by coverage, and what each gives up;
    with ``status`` (training-compute curves), each cell marked by whether its model's training had converged."""
    marks = cell_training(rows, status) if status else {}
    cells = rows[rows["method"] != REAL]
    summary = summary[summary["method"] != REAL]
    if summary.empty or "fid_mean" not in summary:
        return pd.DataFrame()
    has_cov = "coverage_mean" in summary and summary["coverage_mean"].notna().any()
    top_fid = best_within(summary, cells, "nfe", math.inf, "fid", higher=False)
    top_cov = best_within(summary, cells, "nfe", math.inf, "coverage", higher=True) if has_cov else None
    budgets = [("nfe", float(b), f"NFE ≤ {b}") for b in NFE_BUDGETS if (summary["nfe"] <= b).any()]
    budgets += [("ms_per_image", b, f"≤ {b:g} ms/image") for b in ms_budgets(summary)]
    records = []
    for col, budget, label in budgets:
        fid = best_within(summary, cells, col, budget, "fid", higher=False)
        record = {"budget": label, "best quality (FID, lower)": _cell_text(fid, "fid", "{:.3g}", marks),
                  "FID given up": _given_up(fid, top_fid, "{:.2g}", higher=False)}
        if has_cov:
            cov = best_within(summary, cells, col, budget, "coverage", higher=True)
            record["best diversity (coverage, higher)"] = _cell_text(cov, "coverage", "{:.3f}", marks)
            record["coverage given up"] = _given_up(cov, top_cov, "{:.3f}", higher=True)
        records.append(record)
    return pd.DataFrame.from_records(records)


ANSWER_NOTE = ("Best = best mean over seeds within the budget (± 95% t interval); 'tied: k' = k other cells not "
               "significantly different (paired by seed, Holm-corrected); 'given up' = the gap to the best cell at any "
               "budget (nothing when tied with it). ms budgets are quantiles of this section's times, all from one "
               "timing run. Trained models are single training runs at the preset's budget: see 'Quality against "
               "training compute' for which have converged.")
MARKS_NOTE = (f"{NOT_CONVERGED} its model's FID was still improving at this point of its training (the "
              f"training-compute curve's next doubling); {NOT_MEASURED} no training-compute curve passes through this "
              "training. A marked cell is a method at a training budget, not the method's result.")


def marks_note(answer: pd.DataFrame) -> str:
    """" " + what the marks mean, where a cell of ``answer`` carries one; else ""."""
    text = " ".join(answer.astype(str).to_numpy().ravel()) if not answer.empty else ""
    return f" {MARKS_NOTE}" if NOT_CONVERGED in text or NOT_MEASURED in text else ""


def answer_note(answer: pd.DataFrame) -> str:
    """The answer's note, with the marks' meaning where a cell carries one."""
    return ANSWER_NOTE + marks_note(answer)
