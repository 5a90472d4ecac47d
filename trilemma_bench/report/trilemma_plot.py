"""The one trilemma figure: quality against diversity, speed as colour, one small panel per method family.

Every panel shares both axes and the colour scale, so a cell's place says its FID and coverage and its
colour its ms/image (one timing run); the other families' cells stay in the background in grey, so each
panel reads against the whole field. Best is the lower right (high coverage, low FID).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from .front import cells_of
from .plots import DPI, FAMILY_NAMES, MARKERS, _plain_log_ticks, family_of, save_figure
from .setting import REAL, check_one_timing_run
from .tables import is_matched


def trilemma_figure(summary: pd.DataFrame, title: str, out: Path, svg: bool = False) -> Path | None:
    """Write ``out`` (PNG, and SVG beside it if ``svg``); None when the cells lack FID, coverage or time."""
    check_one_timing_run(summary)
    cells = cells_of(cells_of(summary, "ms_per_image", "fid"), "coverage", "fid")
    if cells.empty:
        return None
    families = sorted({family_of(m) for m in cells["method"]}, key=list(FAMILY_NAMES).index)
    ncols = min(2, len(families))
    nrows = math.ceil(len(families) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows + 0.6), dpi=DPI, sharex=True,
                             sharey=True, squeeze=False, layout="constrained")
    ms = cells["ms_per_image_mean"].to_numpy(float)
    norm = LogNorm(vmin=ms.min(), vmax=max(ms.max(), ms.min() * 1.01))
    cov, fid = cells["coverage_mean"].to_numpy(float), cells["fid_mean"].to_numpy(float)
    real = [line for line in summary[summary["method"] == REAL].to_dict("records") if is_matched(line)]
    for ax, family in zip(axes.flat, families):
        mine = np.array([family_of(m) == family for m in cells["method"]])
        ax.scatter(cov[~mine], fid[~mine], s=14, color="0.85", zorder=1, label="other families")
        for i, method in enumerate(sorted(cells.loc[mine, "method"].unique())):
            part = cells[cells["method"] == method]
            sc = ax.scatter(part["coverage_mean"], part["fid_mean"], c=part["ms_per_image_mean"], cmap="viridis",
                            norm=norm, marker=MARKERS[i % len(MARKERS)], s=46, edgecolors="black", linewidths=0.5,
                            zorder=3, label=method)
        if real:  # the floor: what real images score at this sample size
            line = real[0]
            ax.scatter([line["coverage_mean"]], [line["fid_mean"]], marker="*", s=120, color="gold",
                       edgecolors="black", linewidths=0.6, zorder=4, label="real data (floor)")
        ax.set_title(FAMILY_NAMES[family], fontsize=9)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6.5, loc="upper left", frameon=False)
    for ax in axes.flat[len(families):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("coverage (diversity), higher is better")
    for ax in axes[:, 0]:
        ax.set_ylabel("FID (quality), lower is better")
        _plain_log_ticks(ax.yaxis)
    fig.suptitle(f"The trilemma: quality vs diversity, colour = ms/image\n{title}", fontsize=9)
    bar = fig.colorbar(sc, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02)
    bar.set_label("sampling time per image (ms, log scale)")
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, out, svg)
