"""VDM's learned noise schedule as a table and a plot: what the report and the checkpoint's artefacts show."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..schedules import alphas_cumprod, linear_betas, log_snr

if TYPE_CHECKING:  # the model calls these; importing it here at run time would close an import circle
    from .vdm import VDM

GRID = 1000  # t = k / GRID, k = 0..GRID


def schedule_table(model: VDM) -> dict[str, list[float]]:
    """log-SNR = -gamma(t) of the model's (EMA) schedule at t = k/1000, k = 0..1000, beside DDPM's linear schedule
    (1e-4..0.02, T = 1000) read on the same axis: its index k - 1 at t = k/T, as on VDM's grid (alpha = 1 at t = 0)."""
    t = torch.arange(GRID + 1, dtype=torch.float64) / GRID
    with torch.no_grad():
        vdm = -copy.deepcopy(model.gamma(ema=True)).double()(t)
    ddpm = log_snr(alphas_cumprod(linear_betas(GRID)))
    return {"t": t.tolist(), "logsnr_vdm": vdm.tolist(), "logsnr_ddpm_linear": [math.nan, *ddpm.tolist()]}


def save_schedule(model: VDM, csv: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.DataFrame(schedule_table(model))
    table.to_csv(csv, index=False)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(table["t"], table["logsnr_vdm"], label=f"VDM, gamma {model.hparams.gamma_type}")
    ax.plot(table["t"], table["logsnr_ddpm_linear"], label="DDPM linear betas, T = 1000", ls="--")
    ax.set(xlabel="t", ylabel="log SNR = -gamma(t)", title=png.stem)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
