"""Trade-off plots of one setting: each method a line over its NFE grid (mean over seeds, bars the 95% t
interval), the legend saying how many seeds each method's points average, the Pareto front as the
attainable staircase, the real data's value (the floor of FID at the cells' sample size) as a line with
its interval as a band, and NFE labels placed so that none overlaps another."""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from .front import cells_of, pareto_mask, staircase
from .labels import Label, place_labels
from .setting import REAL, check_one_timing_run
from .tables import is_matched

MARKERS = "osD^vP*Xh<>p"
DPI = 130
LEGEND_TITLE = "mean ± 95% t interval over seeds"


# One hue per method family (the model it samples from), one shade per sampler within it: a reader sees the families
# first, then which sampler; no two series share a colour.
FAMILY_MAPS = {"ddpm": "Blues", "vdm": "Greens", "ddgan": "Reds", "ldm": "Purples", "other": "Greys"}
FAMILY_NAMES = {"ddpm": "DDPM network (DDIM, DDPM, DPM-Solver++, Heun)", "vdm": "VDM", "ddgan": "DDGAN",
                "ldm": "latent diffusion", "other": "other"}
_DDPM_SAMPLERS = ("ddim", "ddpm", "dpmpp", "heun")


def family_of(method: str) -> str:
    """The family of a method by its registered name (your rows' ' (yours)' suffix aside)."""
    base = method.removesuffix(" (yours)")
    for family in ("ldm", "vdm", "ddgan"):
        if base.startswith(family):
            return family
    return "ddpm" if base.startswith(_DDPM_SAMPLERS) else "other"


def method_styles(methods: list[str]) -> dict[str, dict]:
    """Colour and marker per method, fixed by sorted name so a method looks the same on every plot: the family's
    hue, shades spread from mid to dark (light shades vanish on white), markers distinct within the family."""
    styles: dict[str, dict] = {}
    by_family: dict[str, list[str]] = {}
    for m in sorted(methods):
        by_family.setdefault(family_of(m), []).append(m)
    for family, members in by_family.items():
        cmap = plt.get_cmap(FAMILY_MAPS[family])
        shades = np.linspace(0.5, 0.95, len(members)) if len(members) > 1 else [0.8]
        for i, m in enumerate(members):
            styles[m] = {"color": cmap(shades[i]), "marker": MARKERS[i % len(MARKERS)]}
    return styles


MAX_SERIES = 8  # methods per axes; past it, one panel per family (small multiples sharing both axes)


def series_groups(methods: list[str]) -> list[list[str]]:
    """The methods of each panel: all in one up to MAX_SERIES; else the largest family alone (split if it is over
    MAX_SERIES) and the other families packed together in order, no panel over MAX_SERIES."""
    methods = sorted(methods)
    if len(methods) <= MAX_SERIES:
        return [methods]
    by_family: dict[str, list[str]] = {}
    for m in methods:
        by_family.setdefault(family_of(m), []).append(m)
    order = sorted(by_family, key=lambda f: (-len(by_family[f]), list(FAMILY_MAPS).index(f)))
    first = by_family[order[0]]
    groups = [first[i:i + MAX_SERIES] for i in range(0, len(first), MAX_SERIES)]
    rest: list[list[str]] = []
    for family in order[1:]:
        members = by_family[family]
        if rest and len(rest[-1]) + len(members) <= MAX_SERIES:
            rest[-1] += members
        else:
            rest += [members[i:i + MAX_SERIES] for i in range(0, len(members), MAX_SERIES)]
    return groups + rest


def _panel_title(group: list[str]) -> str:
    families = list(dict.fromkeys(family_of(m) for m in group))
    return " + ".join(FAMILY_NAMES[f].split(" (")[0] for f in families)


def seeds_text(n_seeds) -> str:
    """'3 seeds', '1 seed', or '2–3 seeds' when a method's points average different numbers."""
    lo, hi = int(min(n_seeds)), int(max(n_seeds))
    count = str(lo) if lo == hi else f"{lo}–{hi}"
    return f"{count} seed{'' if hi == 1 else 's'}"


def _ci(part: pd.DataFrame, col: str) -> np.ndarray | None:
    half = part.get(f"{col}_ci95")
    return None if half is None or half.isna().all() else half.fillna(0).to_numpy(float)


def _mean(part: pd.DataFrame, col: str) -> np.ndarray:
    if col == "nfe":
        return part["nfe"].to_numpy(float)
    return pd.to_numeric(part[f"{col}_mean"], errors="coerce").to_numpy(float)


def _draw_front(ax: plt.Axes, x: np.ndarray, y: np.ndarray, *, min_x: bool, min_y: bool) -> None:
    """The attainable frontier: a grey staircase behind the methods' lines; front points ringed."""
    if not np.isfinite(x).any():
        return
    extend = np.nanmax(x) if min_x else np.nanmin(x)
    sx, sy = staircase(x, y, min_x=min_x, min_y=min_y, extend=extend)
    if len(sx) == 0:
        return
    ax.plot(sx, sy, color="0.55", lw=5, alpha=0.35, solid_joinstyle="miter", zorder=0,
            label="Pareto front (attainable)")
    mask = pareto_mask(x, y, min_x=min_x, min_y=min_y)
    ax.scatter(x[mask], y[mask], s=170, facecolors="none", edgecolors="0.3", lw=1.2, zorder=3)


def matched_real(real: pd.DataFrame, col: str) -> list[dict]:
    """The real-data lines scored at the cells' sample size with a value of ``col``."""
    return [r for r in real.to_dict("records") if is_matched(r) and math.isfinite(r.get(f"{col}_mean", math.nan))]


def _real_text(line: dict, word: str) -> str:
    n = line.get("real_n")
    n_text = int(n) if isinstance(n, (int, float)) and math.isfinite(n) else "?"
    return f"real data at n={n_text} ({word}, {seeds_text([line['n_seeds']])}; {line['sampler']})"


def _draw_real(ax: plt.Axes, lines: list[dict], col: str, word: str) -> None:
    """Each real-data line's mean as a dashed horizontal line, its 95% interval as a grey band."""
    for line in lines:
        mean, half = line[f"{col}_mean"], line.get(f"{col}_ci95", math.nan)
        ax.axhline(mean, color="black", ls="--", lw=1, zorder=1, label=_real_text(line, word))
        if math.isfinite(half) and half > 0:
            lo = max(mean - half, 0.0)  # every metric drawn (FID, recall, coverage) is >= 0
            if ax.get_yscale() == "log":
                # A band reaching 0 would fill the log axis below the floor: clipped at a quarter of the mean,
                # which the legend says.
                lo = max(lo, mean / 4)
            ax.axhspan(lo, mean + half, color="black", alpha=0.08, lw=0, zorder=0)


def _draw_ceilings(ax: plt.Axes, cells: pd.DataFrame, styles: dict) -> None:
    """A latent model's autoencoder reconstruction FID, dotted in its methods' colour: no sampler on that model
    can score below what its decoder gives back from the true latents (Rombach et al.'s rFID)."""
    if "recon_fid_mean" not in cells:
        return
    with_ceiling = cells[cells["recon_fid_mean"].notna()]
    for value, group in with_ceiling.groupby("recon_fid_mean"):
        methods = sorted(group["method"].unique())
        family = re.match(r"(ldm-f\d+)-", methods[0])
        name = family.group(1) if family else methods[0]
        colour = styles.get(methods[0], {}).get("color", "0.4")
        ax.axhline(float(value), color=colour, ls=":", lw=1.2, zorder=1,
                   label=f"{name}: autoencoder reconstruction (ceiling)")


def _ceiling_values(cells: pd.DataFrame) -> list[float]:
    return [] if "recon_fid_mean" not in cells else [float(v) for v in cells["recon_fid_mean"].dropna().unique()]


def _band(lines: list[dict], col: str) -> list[float]:
    out = []
    for line in lines:
        mean, half = line[f"{col}_mean"], line.get(f"{col}_ci95", math.nan)
        out += [mean] + ([mean - half, mean + half] if math.isfinite(half) else [])
    return out


def _trade_off(ax: plt.Axes, cells: pd.DataFrame, xcol: str, ycol: str, styles: dict, *, min_x: bool,
               min_y: bool, label_nfe: bool, front_of: pd.DataFrame | None = None) -> list[Label]:
    """Each method's points and bars, the front (of ``front_of``: every cell of the setting, where a panel shows
    some); returns the NFE labels to place once the layout is final."""
    labels = []
    for method, part in cells.groupby("method", sort=True):
        part = part.sort_values("nfe")
        x, y = _mean(part, xcol), _mean(part, ycol)
        ax.errorbar(x, y, xerr=_ci(part, xcol), yerr=_ci(part, ycol), capsize=2, lw=1.4, ms=6,
                    label=f"{method} ({seeds_text(part['n_seeds'])})", **styles[method])
        if label_nfe:
            color = styles[method]["color"]
            labels += [Label(xi, yi, str(int(n)), color) for xi, yi, n in zip(x, y, part["nfe"])]
    whole = cells if front_of is None else front_of
    _draw_front(ax, _mean(whole, xcol), _mean(whole, ycol), min_x=min_x, min_y=min_y)
    return labels


def _log_range(ax: plt.Axes, cells: pd.DataFrame, col: str, extra: list[float]) -> None:
    """Log scale where the values span more than a decade, with limits over points, bars and floor. A lower bar
    reaching near 0 (an interval wider than its mean) would stretch a log axis over decades of nothing: the lower
    limit stops at a third of the smallest mean or floor, and such a bar runs off the axes."""
    mean, half = _mean(cells, col), _ci(cells, col)
    centres = np.concatenate([mean, extra])
    centres = centres[np.isfinite(centres) & (centres > 0)]
    values = np.concatenate([centres, mean + half if half is not None else []])
    values = values[np.isfinite(values) & (values > 0)]
    if len(values) and values.max() / values.min() > 10:
        ax.set_yscale("log")
        lows = np.concatenate([mean - half if half is not None else mean, extra])
        lows = lows[np.isfinite(lows) & (lows > 0)]
        bottom = max(lows.min() if len(lows) else centres.min(), centres.min() / 3)
        ax.set_ylim(bottom / 1.3, values.max() * 1.3)


NFE_TICKS = (1, 2, 4, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


def _plain_log_ticks(axis, values=None) -> None:
    """Log-axis ticks as plain numbers (0.2, 5, 100); where ``values`` (the NFEs measured) are given, at the round
    NFEs of their range, so that neighbours (9, 10, 11) never print over each other."""
    if values is not None:
        values = [v for v in values if math.isfinite(v) and v > 0]
        lo, hi = (min(values), max(values)) if values else (1, 1000)
        ticks = [t for t in NFE_TICKS if lo <= t <= hi] or sorted(set(values))
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))


def finish(fig: plt.Figure, label_sets: list[tuple[plt.Axes, list[Label]]], legend_from: plt.Axes | list) -> int:
    """One legend under the axes (it never hides a point; the entries of every panel once), the layout, then the
    NFE labels placed; returns how many labels found no free place."""
    found: dict[str, object] = {}
    for ax in legend_from if isinstance(legend_from, list) else [legend_from]:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            found.setdefault(text, handle)
    handles, texts = list(found.values()), list(found)
    legend = fig.legend(handles, texts, loc="lower center", ncol=2, fontsize=7, title=LEGEND_TITLE,
                        title_fontsize=7, frameon=False)
    # The figure grows by the legend's height, so that twenty methods do not squash the axes that one leaves.
    legend_inches = legend.get_window_extent(fig.canvas.get_renderer()).height / fig.dpi
    width, asked_inches = fig.get_size_inches()  # what the axes, titles and labels were drawn for
    fig.set_size_inches(width, asked_inches + legend_inches)
    fig.tight_layout(rect=(0, legend_inches / (asked_inches + legend_inches) + 0.01, 1, 1))
    left_out = 0
    for ax, labels in label_sets:
        left_out += place_labels(ax, labels)[1]
    return left_out


def quality_figure(summary: pd.DataFrame, xcol: str, title: str, fid_label: str) -> plt.Figure:
    """FID against NFE (``xcol="nfe"``) or ms/image, with the floor; one panel per group of series_groups."""
    cells, real = cells_of(summary, xcol, "fid"), summary[summary["method"] == REAL]
    modelled = summary[summary["method"] != REAL]
    styles = method_styles(list(modelled["method"].unique()))
    groups = series_groups(list(cells["method"].unique())) or [[]]
    ncols = min(2, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.4 * ncols, 4.6 * nrows), dpi=DPI, sharex=True, sharey=True,
                             squeeze=False)
    by_ms = xcol != "nfe"
    floors = matched_real(real, "fid")
    xlabel = ("sampling time per image (ms, log scale; labels: NFE)" if by_ms
              else "network evaluations per sample (NFE, log scale)")
    heading = "Quality vs speed" if by_ms else "Quality vs NFE"
    sets = []
    for ax, group in zip(axes.flat, groups):
        mine = cells[cells["method"].isin(group)]
        sets.append((ax, _trade_off(ax, mine, xcol, "fid", styles, min_x=True, min_y=True, label_nfe=by_ms,
                                    front_of=cells)))
        ax.set_xscale("log")
        # The limits take in the ceilings too: a ceiling under the lowest point would leave the axes unseen.
        _log_range(ax, cells, "fid", _band(floors, "fid") + _ceiling_values(modelled))
        _draw_real(ax, floors, "fid", "floor")
        _draw_ceilings(ax, modelled[modelled["method"].isin(group)], styles)
        ax.set(xlabel=xlabel, ylabel=f"{fid_label}, lower is better")
        ax.set_title(f"{heading}: {_panel_title(group)}" if len(groups) > 1 else f"{heading}\n{title}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        _plain_log_ticks(ax.xaxis, None if by_ms else cells["nfe"].astype(float))
        if ax.get_yscale() == "log":
            _plain_log_ticks(ax.yaxis)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    if len(groups) > 1:
        fig.suptitle(title, fontsize=9)
    fig.left_out = finish(fig, sets, [ax for ax, _ in sets])
    return fig


def diversity_figure(summary: pd.DataFrame, title: str) -> plt.Figure:
    """Recall and coverage against ms/image, with the real data's values."""
    real = summary[summary["method"] == REAL]
    styles = method_styles(list(summary.loc[summary["method"] != REAL, "method"].unique()))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), dpi=DPI, sharex=True)
    sets = []
    for ax, col in zip(axes, ("recall", "coverage")):
        cells = cells_of(summary, "ms_per_image", col)
        sets.append((ax, _trade_off(ax, cells, "ms_per_image", col, styles, min_x=True, min_y=False,
                                    label_nfe=True)))
        _draw_real(ax, matched_real(real, col), col, "real images")
        ax.set_xscale("log")
        ax.set(xlabel="sampling time per image (ms, log scale; labels: NFE)", ylabel=f"{col}, higher is better")
        ax.set_title(f"Diversity vs speed: {col}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        _plain_log_ticks(ax.xaxis)
    fig.suptitle(title, fontsize=9)
    fig.left_out = finish(fig, sets, axes[0])
    return fig


def precision_recall_figure(summary: pd.DataFrame, title: str) -> plt.Figure:
    cells, real = cells_of(summary, "recall", "precision"), summary[summary["method"] == REAL]
    styles = method_styles(list(summary.loc[summary["method"] != REAL, "method"].unique()))
    fig, ax = plt.subplots(figsize=(5.8, 4.8), dpi=DPI)
    labels = _trade_off(ax, cells, "recall", "precision", styles, min_x=False, min_y=False, label_nfe=True)
    for line in matched_real(real, "precision"):
        one = pd.DataFrame([line])
        ax.errorbar([line["recall_mean"]], [line["precision_mean"]], xerr=_ci(one, "recall"),
                    yerr=_ci(one, "precision"), color="black", marker="*", ms=11, capsize=2, ls="none",
                    label=_real_text(line, "real images"))
    ax.set(xlabel="recall (diversity), higher is better", ylabel="precision (fidelity), higher is better")
    ax.set_title(f"Precision vs recall (labels: NFE)\n{title}", fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.left_out = finish(fig, [(ax, labels)], ax)
    return fig


def save_figure(fig: plt.Figure, png: Path, svg: bool = False) -> Path:
    """The PNG the page shows; an SVG beside it only when asked (drawing it doubles a report's plotting time)."""
    fig.savefig(png, dpi=DPI)
    if svg:
        fig.savefig(png.with_suffix(".svg"))
    plt.close(fig)
    return png


def plot_setting(summary: pd.DataFrame, title: str, slug: str, out: Path, svg: bool = False) -> dict[str, Path]:
    """The four trade-off plots of one setting (model cells and real-data lines); {plot name: PNG path}."""
    check_one_timing_run(summary)  # the ms axes below hold one timing run's cells only
    out.mkdir(parents=True, exist_ok=True)
    extractor = summary.attrs.get("extractor", "")
    fid_label = f"FID ({extractor} features)" if extractor else "FID"
    figures = {
        "fid_vs_nfe": quality_figure(summary, "nfe", title, fid_label),
        "fid_vs_ms": quality_figure(summary, "ms_per_image", title, fid_label),
        "diversity_vs_ms": diversity_figure(summary, title),
        "precision_vs_recall": precision_recall_figure(summary, title),
    }
    return {name: save_figure(fig, out / f"{slug}-{name}.png", svg) for name, fig in figures.items()}
