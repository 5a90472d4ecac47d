"""``trilemma-bench report``: tables, plots and an HTML page, from the results table alone.

<out>/summary.csv          one line per setting, method, NFE: mean and std over seeds
<out>/report.md            the same as Markdown tables, with the plots
<out>/plots/*.png|svg      FID vs NFE, FID vs ms/image, recall & coverage vs ms/image, precision vs recall
<out>/grids/...            copies of the sample grids, so the folder stands alone
<out>/index.html           all of it, readable from disk without a server
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from ..bench.results import read_results, results_path
from ..report_utils import log
from .html import Section, write_index
from .plots import plot_setting
from .tables import SETTING, current_rows, display_table, markdown, setting_label, setting_slug, summarize

__all__ = ["make_report"]


def _grids(rows: pd.DataFrame, results_dir: Path, out: Path) -> dict[str, dict[int, str]]:
    """Copy the first seed's grid of each (method, NFE) into the report; method -> nfe -> relative path."""
    found: dict[str, dict[int, str]] = {}
    if "grid" not in rows:
        return found
    first = rows.sort_values("seed").groupby(["method", "nfe"], as_index=False).first()
    for r in first.itertuples(index=False):
        if not isinstance(r.grid, str) or not (results_dir / r.grid).exists():
            continue
        target = out / r.grid
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(results_dir / r.grid, target)
        found.setdefault(r.method, {})[int(r.nfe)] = r.grid
    return found


def _notes(rows: pd.DataFrame, extractors: list[str]) -> list[str]:
    """What a reader needs to trust one setting's numbers: hardware, sample sizes, features, data."""

    def values(col: str) -> str:
        return ", ".join(map(str, sorted(rows[col].dropna().unique()))) if col in rows else "?"

    accuracy = rows["extractor_accuracy"].dropna() if "extractor_accuracy" in rows else pd.Series(dtype=float)
    return [
        f"device: {values('device_name')}; torch {values('torch_version')}; commit {values('git_commit')}",
        (
            f"samples per cell: {values('num_samples')}; fixed batch: {values('batch_size')}; ms/image is the "
            "median over timed batches (warm-up excluded); error bars and ± are the std over seeds"
        ),
        f"features: {', '.join(extractors)}"
        + (f" (classifier test accuracy {accuracy.iloc[-1]:.4f})" if len(accuracy) else "")
        + f"; FID against the {values('reference_split')} split; data: {values('dataset_source')}; "
        f"checkpoint: {values('checkpoint')}",
    ]


def make_report(results_dir: Path | str, out_dir: Path | str) -> Path:
    """Build the report of every row in ``<results_dir>/results.csv`` into ``out_dir``; returns index.html."""
    results_dir, out = Path(results_dir), Path(out_dir)
    rows = read_results(results_dir)
    if rows.empty:
        raise ValueError(f"no results in {results_path(results_dir)}: run `trilemma-bench bench` first")
    rows, superseded = current_rows(rows)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    summary.to_csv(out / "summary.csv", index=False)

    notes = [f"{len(rows)} rows from {results_path(results_dir)}; mean ± sample std over seeds."]
    if superseded:
        notes.append(f"{superseded} rows of older checkpoints (retrained since) are left out.")
    md = ["# trilemma-bench report", "", *notes, ""]
    sections = []
    for key, part in summary.groupby(SETTING, sort=True, dropna=False):
        cell_rows = rows.merge(part[SETTING].drop_duplicates(), on=SETTING)
        title, slug = setting_label(key), setting_slug(key)
        part = part.copy()
        extractors = sorted(cell_rows["feature_extractor"].dropna().astype(str).unique())
        part.attrs["extractor"] = ", ".join(extractors)
        pngs = plot_setting(part, title, slug, out / "plots")
        plots = {name: str(p.relative_to(out)) for name, p in pngs.items()}
        section_notes = _notes(cell_rows, extractors)
        table = display_table(part)
        sections.append(Section(title, table, plots, _grids(cell_rows, results_dir, out), section_notes))
        md += [f"## {title}", "", *[f"{n}  " for n in section_notes], "", markdown(table), ""]
        md += [f"![{name}]({p})" for name, p in plots.items()] + [""]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    index = write_index(out, sections, notes)
    log(f"report of {len(rows)} rows ({len(summary)} cells) -> {index}")
    return index
