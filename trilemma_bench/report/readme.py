"""The numbers in the README, generated from the committed results so no claim goes stale.

``trilemma-bench readme`` rewrites the blocks between ``<!-- generated:NAME begin -->`` and
``<!-- generated:NAME end -->`` markers in README.md and docs/results.md from ``results/results.csv``;
``--check`` writes nothing and fails when a block differs from what the results give (a test runs it, so a
hand-edited number, or results committed without regenerating, fails the suite).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..paths import REFERENCE_DIR
from .answer import answer_table, headline, marks_note
from .curves import read_curves, training_status
from .setting import REAL, UNKNOWN
from .tables import display_table, fmt, is_matched, markdown

RETIME_COMMAND = "trilemma-bench retime --results results --preset digits --threads 1"


def _section(results_dir: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    from . import load_sections

    sections, _ = load_sections(results_dir)
    top = headline(sections)
    if top is None:
        raise ValueError(f"no model rows in {results_dir}: nothing to write into the README")
    return sections[top]


def _timing_sentence(key: dict, rows: pd.DataFrame) -> str:
    cells = rows[rows["method"] != REAL]
    run = key.get("timing_run", UNKNOWN)
    if run in (UNKNOWN, "not recorded"):
        return "These rows carry no timing run: their times are not comparable with each other."
    before = pd.to_numeric(cells.get("timing_load_before"), errors="coerce").dropna()
    after = pd.to_numeric(cells.get("timing_load_after"), errors="coerce").dropna()
    load = f", load average {_span(before)} before and {_span(after)} after" if len(before) else ""
    order = ", ".join(sorted(set(cells["timing_order"].dropna().astype(str)))) if "timing_order" in cells else "?"
    return (f"Every time in this table comes from one timing run, `{run}` ({key['device_name']}, "
            f"{key['threads']} thread{'s' if key['threads'] != '1' else ''}, {order}{load}), made with "
            f"`{RETIME_COMMAND}`.")


def _span(values: pd.Series) -> str:
    low, high = f"{values.min():.2f}", f"{values.max():.2f}"
    return low if low == high else f"{low}-{high}"


def _trainings_note(cells: pd.DataFrame) -> str:
    second = sorted({m.split(" (training")[0] for m in cells["method"] if "(training" in m})
    if not second:
        return "mean ± 95% t interval over seeds; one training run per model"
    return (f"mean ± 95% t interval over the sampling seeds of one training; {' and '.join(second)} trained a "
            "second time, rows marked `(training 1)`")


def _floor_sentence(rows: pd.DataFrame, summary: pd.DataFrame) -> str:
    real = [line for line in summary[summary["method"] == REAL].to_dict("records") if is_matched(line)]
    if not real or "fid_mean" not in real[0]:
        return ""
    line = real[0]
    return (f"The floor, {int(line['real_n'])} real images scored the same way ({line['sampler']}): FID "
            f"{fmt(line['fid_mean'], line['fid_ci95'], '{:.3g}')}, coverage "
            f"{fmt(line['coverage_mean'], line['coverage_ci95'], '{:.3f}')}.")


def answer_block(results_dir: Path = REFERENCE_DIR) -> str:
    """The README's block: the best cell per budget, the timing run and the floor."""
    key, rows, summary = _section(results_dir)
    table = answer_table(summary, rows, training_status(read_curves(results_dir)))
    cells = rows[rows["method"] != REAL]
    n_methods = cells["method"].str.replace(r" \(training \d+\)$", "", regex=True).nunique()
    scope = (f"`{key['dataset']}` (preset {key['preset']}), {key['num_samples']} samples per cell, "
             f"{key['feature_extractor']} features; {len(cells)} rows, {n_methods} methods, seeds "
             f"{', '.join(str(int(s)) for s in sorted(cells['seed'].unique()))}")
    return "\n".join([
        f"Which method at my budget, on {scope} ({_trainings_note(cells)}):",
        "", markdown(table, left=5), "",
        ("'tied: k' = k other cells not significantly different (paired by seed, Holm-corrected); 'given up' = the "
         "gap to the best cell at any budget." + marks_note(table)),
        _timing_sentence(key, rows), _floor_sentence(rows, summary),
    ]).rstrip() + "\n"


def table_block(results_dir: Path = REFERENCE_DIR) -> str:
    """docs/results.md's block: every cell of the headline setting."""
    _key, _rows, summary = _section(results_dir)
    table = display_table(summary)
    keep = [c for c in ("method", "sampler", "NFE", "seeds", "ms/image", "FID", "precision", "recall", "coverage",
                        "bits/dim", "recon FID (ceiling)") if c in table]
    table = table[keep].drop(columns="sampler")
    return markdown(table, left=1) + "\n"


BLOCKS: dict[str, tuple[str, Callable[[Path], str]]] = {
    "answer": ("README.md", answer_block),
    "results-table": ("docs/results.md", table_block),
}


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated:{name} begin[^>]*-->\n)(.*?)(<!-- generated:{name} end -->)", re.DOTALL)


def render(root: Path, results_dir: Path) -> dict[Path, tuple[str, str]]:
    """{file: (its text now, its text with every block regenerated)}."""
    out: dict[Path, tuple[str, str]] = {}
    for name, (rel, make) in BLOCKS.items():
        path = root / rel
        now = out.get(path, (path.read_text(encoding="utf-8"),) * 2)
        pattern = _pattern(name)
        if not pattern.search(now[1]):
            raise ValueError(f"{rel} has no '<!-- generated:{name} begin -->' ... '<!-- generated:{name} end -->' block")
        block = make(results_dir)
        out[path] = (now[0], pattern.sub(lambda m, b=block: m.group(1) + b + m.group(3), now[1]))
    return out


def stale_blocks(root: Path = Path("."), results_dir: Path | None = None) -> list[str]:
    """The files whose generated blocks differ from what the results give (empty: all current)."""
    rendered = render(root, results_dir or root / REFERENCE_DIR)
    return [str(p.relative_to(root)) for p, (now, new) in rendered.items() if now != new]


def write_blocks(root: Path = Path("."), results_dir: Path | None = None) -> list[str]:
    """Regenerate every block; returns the files that changed."""
    changed = []
    for path, (now, new) in render(root, results_dir or root / REFERENCE_DIR).items():
        if now != new:
            path.write_text(new, encoding="utf-8")
            changed.append(str(path.relative_to(root)))
    return changed
