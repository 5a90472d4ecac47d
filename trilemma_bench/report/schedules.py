"""The noise schedules of the benched models, log-SNR against t: VDM's learned one beside DDPM's fixed one.

The bench writes ``<results>/schedules/<checkpoint>.csv`` (:func:`~trilemma_bench.benchmark.results.write_schedule`) for every model that has a schedule of its own to
show (:meth:`~trilemma_bench.methods.vdm.VDM.schedule_table`: columns ``t``, ``logsnr_vdm``,
``logsnr_ddpm_linear``); the report draws them all on one axis, so the folder stays the report's only input.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..benchmark.results import SCHEDULES


def read_schedules(results_dir: Path) -> dict[str, pd.DataFrame]:
    folder = Path(results_dir) / SCHEDULES
    return {p.stem: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))} if folder.is_dir() else {}


def schedule_summary(schedules: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per checkpoint: log-SNR at t = 0, 0.5 and 1 (the learned endpoints and midpoint), DDPM's beside them."""
    rows = []
    for name, table in schedules.items():
        at = {t: table.iloc[(table["t"] - t).abs().argmin()] for t in (0.0, 0.5, 1.0)}
        rows.append({"checkpoint": name, **{f"log-SNR at t={t:g}": round(float(r["logsnr_vdm"]), 3) for t, r in at.items()}})
    if schedules:
        table = next(iter(schedules.values()))
        at = {t: table.iloc[(table["t"] - t).abs().argmin()] for t in (0.001, 0.5, 1.0)}
        rows.append({"checkpoint": "DDPM linear betas (fixed)",
                     **{f"log-SNR at t={t:g}": round(float(at[t2]["logsnr_ddpm_linear"]), 3)
                        for t, t2 in zip((0.0, 0.5, 1.0), at)}})
    return pd.DataFrame(rows)


def plot_schedules(schedules: dict[str, pd.DataFrame], path: Path) -> Path | None:
    if not schedules:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, table in schedules.items():
        ax.plot(table["t"], table["logsnr_vdm"], label=f"{name} (learned)")
    first = next(iter(schedules.values()))
    ax.plot(first["t"], first["logsnr_ddpm_linear"], ls="--", color="k", label="DDPM linear betas, T = 1000 (fixed)")
    ax.set(xlabel="t", ylabel="log SNR", title="Noise schedules of the benched models")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
