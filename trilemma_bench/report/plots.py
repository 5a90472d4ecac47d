"""Trade-off plots of one setting: each method a line over its NFE grid, error bars over seeds, and the
Pareto front across all methods' points marked (dashed line, ringed points)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

MARKERS = "osD^vP*Xh<>p"


def method_styles(methods: list[str]) -> dict[str, dict]:
    """Colour and marker per method, fixed by sorted name so a method looks the same on every plot."""
    colors = plt.get_cmap("tab10").colors
    return {
        m: {"color": colors[i % 10], "marker": MARKERS[i % len(MARKERS)]}
        for i, m in enumerate(sorted(methods))
    }


def pareto_mask(x: np.ndarray, y: np.ndarray, *, min_x: bool = True, min_y: bool = True) -> np.ndarray:
    """True for the points no other point beats on both axes (ties allowed, one strict)."""
    sx, sy = (1 if min_x else -1) * np.asarray(x, float), (1 if min_y else -1) * np.asarray(y, float)
    ok = np.isfinite(sx) & np.isfinite(sy)
    mask = np.zeros(len(sx), bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (sx <= sx[i]) & (sy <= sy[i]) & ((sx < sx[i]) | (sy < sy[i]))
        mask[i] = not dominated.any()
    return mask


def _draw_front(ax: plt.Axes, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> None:
    """A wide grey band under the methods' lines through the non-dominated points, which are ringed."""
    if mask.sum() == 0:
        return
    order = np.argsort(x[mask])
    ax.plot(
        x[mask][order],
        y[mask][order],
        color="0.6",
        lw=7,
        alpha=0.35,
        solid_capstyle="round",
        zorder=0,
        label="Pareto front (all methods)",
    )
    ax.scatter(x[mask], y[mask], s=190, facecolors="none", edgecolors="0.3", lw=1.3, zorder=3)


def _err(summary: pd.DataFrame, col: str) -> np.ndarray | None:
    std = summary.get(f"{col}_std")
    return None if std is None or std.isna().all() else std.fillna(0).to_numpy()


def _trade_off(
    ax: plt.Axes,
    summary: pd.DataFrame,
    xcol: str,
    ycol: str,
    styles: dict,
    *,
    min_x: bool,
    min_y: bool,
    label_nfe: bool,
) -> None:
    for method, part in summary.groupby("method", sort=True):
        part = part.sort_values("nfe")
        x, y = part[f"{xcol}_mean"].to_numpy(float), part[f"{ycol}_mean"].to_numpy(float)
        if np.isnan(y).all():
            continue
        ax.errorbar(
            x,
            y,
            xerr=_err(part, xcol),
            yerr=_err(part, ycol),
            label=method,
            capsize=2,
            lw=1.4,
            ms=6,
            **styles[method],
        )
        if label_nfe:
            for xi, yi, n in zip(x, y, part["nfe"]):
                ax.annotate(
                    f"{n}",
                    (xi, yi),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color=styles[method]["color"],
                )
    x, y = summary[f"{xcol}_mean"].to_numpy(float), summary[f"{ycol}_mean"].to_numpy(float)
    _draw_front(ax, x, y, pareto_mask(x, y, min_x=min_x, min_y=min_y))


def _log_if_wide(ax: plt.Axes, values: pd.Series, axis: str) -> None:
    v = values.dropna()
    v = v[v > 0]
    if len(v) and v.max() / v.min() > 10:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def _save(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    fig.tight_layout()
    fig.savefig(paths[0], dpi=130)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def plot_setting(summary: pd.DataFrame, title: str, slug: str, out: Path) -> dict[str, Path]:
    """The four trade-off plots of one setting; returns {plot name: PNG path}."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summary.assign(nfe_mean=summary["nfe"].astype(float))  # NFE as an axis like the metrics
    styles = method_styles(list(summary["method"].unique()))
    extractor = summary.attrs.get("extractor", "")
    fid_label = f"FID ({extractor} features)" if extractor else "FID"
    made: dict[str, Path] = {}

    fid_plots = [  # (x column, x label, title, NFE labels on points, file name)
        ("nfe", "network evaluations per sample (NFE, log scale)", "Quality vs NFE", False, "fid_vs_nfe"),
        ("ms_per_image", "sampling time per image (ms, log scale; labels: NFE)", "Quality vs speed", True,
         "fid_vs_ms"),
    ]
    for x, xlabel, heading, label_nfe, name in fid_plots:
        fig, ax = plt.subplots(figsize=(6, 4.2))
        _trade_off(ax, summary, x, "fid", styles, min_x=True, min_y=True, label_nfe=label_nfe)
        ax.set_xscale("log")
        _log_if_wide(ax, summary["fid_mean"], "y")
        ax.set(xlabel=xlabel, ylabel=f"{fid_label}, lower is better", title=f"{heading}\n{title}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        made[name] = _save(fig, out, f"{slug}-{name}")[0]

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True)
    for ax, col in zip(axes, ("recall", "coverage")):
        _trade_off(ax, summary, "ms_per_image", col, styles, min_x=True, min_y=False, label_nfe=True)
        ax.set_xscale("log")
        ax.set(
            xlabel="sampling time per image (ms, log scale; labels: NFE)",
            ylabel=f"{col}, higher is better",
            title=f"Diversity vs speed: {col}",
        )
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    made["diversity_vs_ms"] = _save(fig, out, f"{slug}-diversity_vs_ms")[0]

    fig, ax = plt.subplots(figsize=(5.5, 4.6))
    _trade_off(ax, summary, "recall", "precision", styles, min_x=False, min_y=False, label_nfe=True)
    ax.set(
        xlabel="recall (diversity), higher is better",
        ylabel="precision (fidelity), higher is better",
        title=f"Precision vs recall (labels: NFE)\n{title}",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    made["precision_vs_recall"] = _save(fig, out, f"{slug}-precision_vs_recall")[0]
    return made
