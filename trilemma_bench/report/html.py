"""A self-contained ``index.html``: every path is relative to the report folder, so the page opens from
disk (file://) with no server, and the folder can be moved or zipped whole. A small dependency-free script
answers the trilemma question for any budget the reader types, from tests computed here."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .front import cell_label, cells_of, per_seed
from .setting import check_one_timing_run
from .stats import paired_difference
from .tables import METRICS
from .trilemma import AXES

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:nth-child(-n+2) { text-align: left; }
img.plot { max-width: 48%; margin: 0.5%; border: 1px solid #eee; }
img.trilemma { max-width: 100%; border: 1px solid #eee; }
table.answer-table td { text-align: left; } table.answer-table { font-size: 14px; }
.grids td { text-align: center; vertical-align: top; } .grids img { width: 180px; image-rendering: pixelated; }
.note { color: #555; font-size: 13px; margin: 0.3em 0; }
.budget input { width: 7em; } .budget { background: #f7f7fb; padding: 0.6em 1em; border: 1px solid #dde; }
"""

# Best mean within the budget per axis; a cell whose paired test against the best holds 0 is a tie.
SCRIPT = """
function trilemmaAnswer(box) {
  const d = JSON.parse(box.querySelector('script[type="application/json"]').textContent);
  const nfe = parseFloat(box.querySelector('.b-nfe').value), ms = parseFloat(box.querySelector('.b-ms').value);
  const fits = d.cells.map(c => (isNaN(nfe) || c.nfe <= nfe) && (isNaN(ms) || c.ms <= ms * (1 + 1e-9)));
  const lines = d.axes.map(a => {
    let best = -1;
    d.cells.forEach((c, i) => {
      const v = c[a.metric];
      if (!fits[i] || v === null) return;
      if (best < 0 || (a.higher ? v > d.cells[best][a.metric] : v < d.cells[best][a.metric])) best = i;
    });
    if (best < 0) return `<tr><th>${a.title}</th><td>no cell within this budget</td></tr>`;
    // Holm over this answer's tests (each fitting cell against the best), nearest cells named first.
    const tests = [];
    let untested = 0;
    d.cells.forEach((c, i) => {
      if (i === best || !fits[i] || c[a.metric] === null) return;
      const p = a.p[i][best];
      if (p === null) untested++; else tests.push({p, i, gap: Math.abs(c[a.metric] - d.cells[best][a.metric])});
    });
    tests.sort((x, y) => x.p - y.p);
    let running = 0;
    tests.forEach((t, k) => { running = Math.max(running, Math.min(1, (tests.length - k) * t.p)); t.adj = running; });
    const ties = tests.filter(t => t.adj >= 0.05).sort((x, y) => x.gap - y.gap).map(t => d.cells[t.i].label);
    const b = d.cells[best], half = b[a.metric + '_ci95'];
    let text = `${b.label} (${b[a.metric].toPrecision(3)}${half === null ? '' : ' ± ' + half.toPrecision(2)})`;
    if (ties.length) text += `; tied with ${ties.length} (${ties.slice(0, 3).join(', ')}${ties.length > 3 ? ', …' : ''})`;
    if (tests.length) text += `; better than ${tests.length - ties.length} of ${tests.length} (Holm)`;
    if (untested) text += `; ${untested} untested (fewer than 2 shared seeds)`;
    return `<tr><th>${a.title}</th><td>${text}</td></tr>`;
  });
  box.querySelector('.answer').innerHTML = lines.join('');
}
if (typeof document !== 'undefined')
  document.addEventListener('DOMContentLoaded', () => document.querySelectorAll('.budget').forEach(trilemmaAnswer));
"""


@dataclass
class Section:
    title: str
    table: pd.DataFrame
    plots: dict[str, str]  # name -> relative PNG path
    grids: dict[str, dict[int, str]] = field(default_factory=dict)  # method -> nfe -> relative PNG path
    notes: list[str] = field(default_factory=list)
    extra: list[tuple[str, pd.DataFrame, list[str]]] = field(default_factory=list)  # (heading, table, notes)
    selector: dict | None = None


def _num(v) -> float | None:
    return float(v) if v is not None and isinstance(v, (int, float)) and math.isfinite(v) else None


def selector_data(summary: pd.DataFrame, rows: pd.DataFrame) -> dict | None:
    """What the budget script needs: each cell's NFE, ms/image and means, and per axis whether each pair
    of cells differs significantly (paired by seed; None where no test is possible)."""
    cells = cells_of(summary, "ms_per_image", "ms_per_image")
    check_one_timing_run(cells)
    if cells.empty:
        return None
    records = cells.to_dict("records")
    data = {"cells": [], "axes": []}
    for line in records:
        item = {"label": cell_label(line), "nfe": int(line["nfe"]), "ms": _num(line["ms_per_image_mean"])}
        for metric, _ in AXES:
            item[metric] = _num(line.get(f"{metric}_mean"))
            item[f"{metric}_ci95"] = _num(line.get(f"{metric}_ci95"))
        data["cells"].append(item)
    for metric, higher in AXES:
        if f"{metric}_mean" not in cells:
            continue
        seeds = [per_seed(rows, line, metric) for line in records]
        tests = [[paired_difference(a, b) for b in seeds] for a in seeds]
        p = [[t.p_value if t.significant is not None else None for t in row] for row in tests]
        data["axes"].append({"metric": metric, "higher": higher, "p": p,
                             "title": f"best {METRICS[metric][0]} ({'higher' if higher else 'lower'})"})
    return data


def _selector(data: dict) -> str:
    blob = json.dumps(data).replace("</", "<\\/")
    return (
        "<div class='budget'><b>Trilemma at your budget</b> (leave a box empty for no limit): "
        "NFE ≤ <input class='b-nfe' type='number' min='1' oninput='trilemmaAnswer(this.closest(\".budget\"))'> "
        "ms/image ≤ <input class='b-ms' type='number' min='0' step='any' "
        "oninput='trilemmaAnswer(this.closest(\".budget\"))'>"
        f"<script type='application/json'>{blob}</script><table class='answer'></table></div>"
    )


def _grid_table(grids: dict[str, dict[int, str]]) -> str:
    if not grids:
        return ""
    nfes = sorted({n for by_nfe in grids.values() for n in by_nfe})
    head = "".join(f"<th>NFE {n}</th>" for n in nfes)
    rows = []
    for method, by_nfe in sorted(grids.items()):
        cells = "".join(
            f'<td><a href="{html.escape(by_nfe[n])}"><img src="{html.escape(by_nfe[n])}" alt="{method} NFE {n}"></a></td>'
            if n in by_nfe
            else "<td></td>"
            for n in nfes
        )
        rows.append(f"<tr><th>{html.escape(method)}</th>{cells}</tr>")
    return f'<h3>Samples (first seed)</h3><table class="grids"><tr><th></th>{head}</tr>{"".join(rows)}</table>'


def lead_html(title: str, table: pd.DataFrame, note: str, figure: str | None) -> str:
    """The answer at the top of the page: the budget table, then the trilemma figure."""
    parts = [f"<h2>{html.escape(title)}</h2>", table.to_html(index=False, border=0, escape=True, classes="answer-table"),
             f"<p class='note'>{html.escape(note)}</p>"]
    if figure:
        parts.append(f'<a href="{html.escape(figure)}"><img class="trilemma" src="{html.escape(figure)}" '
                     'alt="quality vs diversity, colour = ms/image"></a>')
    return "\n".join(parts)


def write_index(out: Path, sections: list[Section], header_notes: list[str], lead: str = "") -> Path:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>trilemma-bench report</title>",
        f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>",
        "<h1>trilemma-bench: speed, quality and diversity</h1>",
        lead,
    ]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in header_notes]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        parts += [f"<p class='note'>{html.escape(n)}</p>" for n in s.notes]
        parts.append(s.table.to_html(index=False, border=0, escape=True))
        parts += [
            f'<a href="{html.escape(p)}"><img class="plot" src="{html.escape(p)}" alt="{html.escape(name)}"></a>'
            for name, p in s.plots.items()
        ]
        if s.selector:
            parts.append(_selector(s.selector))
        for heading, table, notes in s.extra:
            parts.append(f"<h3>{html.escape(heading)}</h3>")
            parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]
            if not table.empty:
                parts.append(table.to_html(index=False, border=0, escape=True))
        parts.append(_grid_table(s.grids))
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
