"""``trilemma-bench report --budget-nfe N --budget-ms M``: the trilemma answer at one budget, on the console."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from .setting import REAL, setting_label
from .tables import METRICS
from .trilemma import AXES, best_within


def budget_answers(results_dir: Path | str, budget_nfe: float | None, budget_ms: float | None,
                   reference: Path | str | None = None) -> list[Table]:
    """Per setting, the best cell on each axis among those within both budgets (None: no limit)."""
    from . import load_sections

    if budget_nfe is None and budget_ms is None:
        raise ValueError("give a budget: --budget-nfe N and/or --budget-ms M")
    for name, value in (("--budget-nfe", budget_nfe), ("--budget-ms", budget_ms)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    sections, _ = load_sections(results_dir, reference)
    limits = " and ".join(([f"NFE ≤ {budget_nfe:g}"] if budget_nfe is not None else [])
                          + ([f"ms/image ≤ {budget_ms:g}"] if budget_ms is not None else []))
    tables = []
    for key, rows, summary in sections:
        cells, summary = rows[rows["method"] != REAL], summary[summary["method"] != REAL]
        if budget_nfe is not None:
            summary = summary[summary["nfe"] <= budget_nfe]
        table = Table(title=f"{setting_label(key)}\nwithin {limits} (mean ± 95% t interval over seeds)",
                      title_justify="left")
        table.add_column("axis")
        table.add_column("best cell (ties: not significantly different, paired by seed)")
        for metric, higher in AXES:
            if f"{metric}_mean" not in summary:
                continue
            title, pattern, _ = METRICS[metric]
            if budget_ms is not None:
                best = best_within(summary, cells, "ms_per_image", budget_ms, metric, higher)
            else:
                best = best_within(summary, cells, "nfe", budget_nfe, metric, higher)
            table.add_row(f"{title} ({'higher' if higher else 'lower'} is better)",
                          "no cell within the budget" if best is None else best.text(pattern))
        tables.append(table)
    return tables


def print_budget(results_dir: Path | str, budget_nfe: float | None, budget_ms: float | None,
                 reference: Path | str | None = None) -> None:
    console = Console(width=140)
    for table in budget_answers(results_dir, budget_nfe, budget_ms, reference):
        console.print(table)
