"""``trilemma-bench report``: tables, plots and an HTML page, from the results table alone.

One section per setting (:mod:`.setting`: data, sample size, features, reference split, and the timing
condition: device, threads, dtype, compilation); timings of different conditions are never averaged.

<out>/summary.csv          one line per setting and cell: mean, std, 95% t half-width and n over seeds
<out>/report.md            per section: notes, the table with the real-data floor, significance on and
                           near the Pareto front, the trilemma view over budgets, the plots
<out>/plots/*.png|svg      FID vs NFE, FID vs ms/image, recall & coverage vs ms/image, precision vs recall
<out>/grids/...            copies of the sample grids, so the folder stands alone
<out>/index.html           all of it, readable from disk without a server, with a budget selector
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from ..benchmark.results import read_results, results_path
from ..report_utils import log
from .answer import answer_note, answer_table, headline
from .curves import curve_table, plot_curves, read_curves, training_status
from .front import comparison_table, front_comparisons
from .html import Section, lead_html, selector_data, write_index
from .notes import INTERVALS, mixed_conditions, modes_note, quality_note, real_note, timing_note
from .pairing import pairing_table
from .plots import plot_setting
from .schedules import plot_schedules, read_schedules, schedule_summary
from .setting import (
    REAL,
    current_rows,
    label_trainings,
    normalize,
    real_rows_for,
    setting_label,
    setting_slug,
)
from .tables import METRICS, display_table, markdown, summarize
from .trilemma import budget_table, fronts
from .trilemma_plot import trilemma_figure
from .variance import variance_table

__all__ = ["load_sections", "make_report", "read_rows"]

YOURS = " (yours)"  # the label of a user's own rows beside the reference's


def _grids(rows: pd.DataFrame, results_dir: Path, out: Path) -> dict[str, dict[int, str]]:
    """Copy the first seed's grid of each (method, NFE) into the report; method -> nfe -> relative path. A row's
    grid path is relative to the folder its table came from (``source_dir``; default ``results_dir``)."""
    found: dict[str, dict[int, str]] = {}
    if "grid" not in rows:
        return found
    first = rows.sort_values("seed").groupby(["method", "nfe"], as_index=False).first()
    for r in first.to_dict("records"):
        base = Path(r["source_dir"]) if isinstance(r.get("source_dir"), str) else results_dir
        if not isinstance(r["grid"], str) or not (base / r["grid"]).exists():
            continue
        target = out / r["grid"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(base / r["grid"], target)
        found.setdefault(r["method"], {})[int(r["nfe"])] = r["grid"]
    return found


def read_rows(results_dir: Path | str, reference: Path | str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Your rows (``results_dir``) beside the committed reference rows (``reference``; None or the same folder:
    one table alone), yours labelled ``<method> (yours)``: they were measured on another machine or day, so they
    are shown apart, never averaged with the reference's. Also the header note saying so."""
    results_dir = Path(results_dir)
    mine = read_results(results_dir).assign(source_dir=str(results_dir))
    if reference is None or Path(reference).resolve() == results_dir.resolve():
        return mine, [f"{len(mine)} rows from {results_path(results_dir)}."]
    ref = read_results(reference).assign(source_dir=str(reference))
    cells = mine["method"] != REAL
    mine.loc[cells, "method"] = mine.loc[cells, "method"] + YOURS
    rows = pd.concat([df for df in (ref, mine) if not df.empty], ignore_index=True) if len(ref) or len(mine) else ref
    note = f"{len(ref)} reference rows from {results_path(reference)}"
    if len(mine):
        note += (f" and {int(cells.sum())} of yours from {results_path(results_dir)}, labelled '{YOURS.strip()}': "
                 "measured on your machine, compared with the reference only where the timing condition matches.")
    return rows, [note + "."]


def load_sections(results_dir: Path | str, reference: Path | str | None = None
                  ) -> tuple[list[tuple[dict, pd.DataFrame, pd.DataFrame]], list[str]]:
    """The results grouped by setting: [(setting key, the section's rows, its summary)], and header notes.

    A section's rows are its cells' rows and the real-data rows of its quality scope (their setting
    columns set to the section's, since real data carries no timing). ``reference``: see :func:`read_rows`."""
    rows, notes = read_rows(results_dir, reference)
    if rows.empty:
        raise ValueError(f"no results in {results_path(results_dir)}: run `trilemma-bench bench` first")
    rows, superseded = current_rows(rows)
    rows = label_trainings(rows)
    rows, setting, missing = normalize(rows)
    notes = [*notes, INTERVALS]
    if superseded:
        notes.append(f"{superseded} rows of older checkpoints (retrained since) are left out.")
    if missing:
        notes.append(f"Not recorded in this table (older rows): {', '.join(missing)}; read as 'unknown', so rows "
                     "that differ there cannot be told apart.")
    real = rows[rows["method"] == REAL]
    cells = rows[rows["method"] != REAL]
    notes += mixed_conditions(cells, setting)
    keys = cells[setting].drop_duplicates().to_dict("records")
    covered = {tuple(k[c] for c in ("dataset", "preset", "num_samples", "feature_extractor", "reference_split"))
               for k in keys}
    for k in real[setting].drop_duplicates().to_dict("records"):  # real data whose cells are missing
        scope = (k["dataset"], k["preset"], k["num_samples"], k["feature_extractor"], k["reference_split"])
        if scope not in covered:
            covered.add(scope)
            keys.append(k)
    sections = []
    for key in sorted(keys, key=lambda k: [k[c] for c in setting]):
        mine = cells
        for col in setting:
            mine = mine[mine[col] == key[col]]
        floor = real_rows_for(real, key).assign(**key)
        part = pd.concat([mine, floor], ignore_index=True)
        sections.append((key, part, summarize(part, setting)))
    return sections, notes


def _analysis(rows: pd.DataFrame, summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame, list[str]]]:
    """The significance tables on and near the front, and the trilemma view."""
    out = []
    for metric, min_y in (("fid", True), ("coverage", False)):
        if f"{metric}_mean" not in summary:
            continue
        comparisons, _ = front_comparisons(summary, rows, metric, min_y=min_y)
        if not comparisons:
            continue
        title, pattern, _ = METRICS[metric]
        out.append((
            f"Significance on and near the Pareto front: {title} against ms/image",
            comparison_table(comparisons, title, pattern, min_y=min_y),
            [("Paired by seed (same initial noise): per-seed differences cell − vs, their mean and 95% t interval "
             "(uncorrected), and the paired t test's p-value, raw and Holm-adjusted over all "
             f"{comparisons[0].n_tests} tests this table made (every front neighbour, every dominated cell against "
             "each front cell that dominates it); 'significant' means Holm p < 0.05 (family-wise error 5%). "
             "'front: next faster' compares each front cell with the front cell before it in time; a dominated "
             "cell is 'near' the front when no front cell that dominates it (as fast or faster, as good or better "
             "on the means) is significantly better, and is listed against each of them. Dominated cells "
             "significantly worse are not listed.")],
        ))
    for budget_col, what in (("nfe", "NFE (counted)"), ("ms_per_image", "ms/image (mean over seeds)")):
        table = budget_table(summary, rows, budget_col)
        if not table.empty:
            out.append((f"Trilemma view: the best cell within a budget of {what}", table,
                        [("Best = best mean among cells within the budget; 'tied with N' = not significantly "
                         "different from it (paired t test by seed, Holm-corrected over that answer's tests: each "
                         "other cell within the budget against the best), the nearest three named; 'better than k "
                         "of m' = significantly worse cells of the m tests.")]))
    table, n_tests = variance_table(summary, rows)
    if not table.empty:
        out.append(("Training variance: the same method on another training run", table,
                    [("Each model trained twice (train seeds 0 and k, same preset): per NFE both trainings' means ± 95% t "
                      "interval over sampling seeds, and their paired difference (same sampling seeds); 'differ' "
                      f"after Holm over the table's {n_tests} tests. A difference between methods smaller than "
                      "their trainings' difference is not the methods'. 'Pooled': the method's interval with the "
                      "training run as the unit (each run's mean over its seeds one observation, t with 1 df), so it "
                      "carries training and seed variance both.")]))
    for metric, pattern in (("fid", "{:.3g}"), ("coverage", "{:.3f}")):
        table = pairing_table(summary, metric, pattern)
        if not table.empty:
            out.append((f"Solver and schedule apart: {METRICS[metric][0]}", table,
                        [("One line per network, solver and NFE (up to 20), one column per schedule: along a line the "
                          "schedule changes and the solver stays, down a column the reverse. Mean ± 95% t interval over "
                          "seeds; the methods that are one walk appear under the pair they declare.")]))
    lines = fronts(summary)
    if lines:
        out.append(("Pareto fronts (mean over seeds, increasing time)", pd.DataFrame(), lines))
    return out


def make_report(results_dir: Path | str, out_dir: Path | str, reference: Path | str | None = None,
                svg: bool = False) -> Path:
    """Build the report of every row in ``<results_dir>/results.csv`` (beside ``reference``'s, see
    :func:`read_rows`) into ``out_dir``; returns index.html. ``svg``: each plot as SVG too, beside its PNG."""
    results_dir, out = Path(results_dir), Path(out_dir)
    sections_data, notes = load_sections(results_dir, reference)
    out.mkdir(parents=True, exist_ok=True)
    md = ["# trilemma-bench report", ""]
    lead = ""
    top = headline(sections_data)
    if top is not None:  # the answer first: the headline setting's best cells per budget, and the trilemma figure
        key, rows, summary = sections_data[top]
        title = f"Which method at my budget? {setting_label(key)}"
        answer = answer_table(summary, rows, training_status(read_curves(results_dir, reference)))
        png = trilemma_figure(summary, setting_label(key, sep="\n"), out / "plots" / "trilemma.png", svg)
        figure = str(png.relative_to(out)) if png else None
        lead = lead_html(title, answer, answer_note(answer), figure)
        md += [f"## {title}", "", markdown(answer, left=5), "", answer_note(answer), ""]
        md += [f"![trilemma]({figure})", ""] if figure else []
    md += [*[f"{n}  " for n in notes], ""]
    sections, summaries = [], []
    for key, rows, summary in sections_data:
        title, slug = setting_label(key), setting_slug(key)
        summaries.append(summary.assign(section=slug))
        cells = rows[rows["method"] != REAL]
        real_summary = summary[summary["method"] == REAL]
        summary.attrs["extractor"] = key["feature_extractor"]
        pngs = plot_setting(summary, setting_label(key, sep="\n"), slug, out / "plots", svg)
        plots = {name: str(p.relative_to(out)) for name, p in pngs.items()}
        section_notes = [*timing_note(cells, key), *quality_note(cells if len(cells) else rows, key),
                         *real_note(real_summary, key["num_samples"]), *modes_note(cells, key)]
        table = display_table(summary)
        extra = _analysis(cells, summary)
        sections.append(Section(title, table, plots, _grids(cells, results_dir, out), section_notes, extra,
                                selector_data(summary, cells)))
        md += [f"## {title}", "", *[f"{n}  " for n in section_notes], "", markdown(table), ""]
        for heading, extra_table, extra_notes in extra:
            md += [f"### {heading}", "", *[f"{n}  " for n in extra_notes], ""]
            md += [markdown(extra_table, left=3), ""] if not extra_table.empty else []
        md += [f"![{name}]({p})" for name, p in plots.items()] + [""]
    schedules = read_schedules(results_dir)
    if schedules:
        png = plot_schedules(schedules, out / "plots" / "schedules.png")
        table = schedule_summary(schedules)
        note = "log-SNR = -gamma(t) of each benched model that learns its schedule (EMA weights), beside DDPM's fixed one."
        sections.append(Section("Noise schedules", table, {"schedules": str(png.relative_to(out))}, notes=[note]))
        md += ["## Noise schedules", "", note, "", markdown(table), "", f"![schedules]({png.relative_to(out)})", ""]
    curves = read_curves(results_dir, reference)
    if not curves.empty:
        table = curve_table(curves)
        pngs = {name: str(p.relative_to(out)) for name, p in plot_curves(curves, out / "plots").items()}
        note = ("Each model's checkpoints kept on a log-spaced schedule during one training run (250, 500, 1k, "
                "... steps), benched at one NFE (mean ± 95% t interval over seeds); a run longer than its preset's "
                "(`--steps N`) is its own line, '<model>-<preset>-<N>steps'. Converged: the last doubling "
                "of training changed the metric by no more than its paired interval; still changing: the model's "
                "rows describe its training budget, not its method.")
        sections.append(Section("Quality against training compute", table, pngs, notes=[note]))
        md += ["## Quality against training compute", "", note, "", markdown(table), ""]
        md += [f"![{name}]({p})" for name, p in pngs.items()] + [""]
    pd.concat(summaries, ignore_index=True).to_csv(out / "summary.csv", index=False)
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    index = write_index(out, sections, notes, lead)
    log(f"report of {sum(len(s[1]) for s in sections_data)} rows in {len(sections)} sections -> {index}")
    return index
