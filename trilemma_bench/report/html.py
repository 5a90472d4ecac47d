"""A self-contained ``index.html``: every path is relative to the report folder, so the page opens from
disk (file://) with no server, and the folder can be moved or zipped whole."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:nth-child(-n+2) { text-align: left; }
img.plot { max-width: 48%; margin: 0.5%; border: 1px solid #eee; }
.grids td { text-align: center; vertical-align: top; } .grids img { width: 180px; image-rendering: pixelated; }
.note { color: #666; font-size: 13px; }
"""


@dataclass
class Section:
    title: str
    table: pd.DataFrame
    plots: dict[str, str]  # name -> relative PNG path
    grids: dict[str, dict[int, str]] = field(default_factory=dict)  # method -> nfe -> relative PNG path
    notes: list[str] = field(default_factory=list)


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
    return (
        f'<h3>Samples (first seed)</h3><table class="grids"><tr><th></th>{head}</tr>{"".join(rows)}</table>'
    )


def write_index(out: Path, sections: list[Section], header_notes: list[str]) -> Path:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>trilemma-bench report</title>",
        f"<style>{STYLE}</style></head><body><h1>trilemma-bench: speed, quality and diversity</h1>",
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
        parts.append(_grid_table(s.grids))
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
