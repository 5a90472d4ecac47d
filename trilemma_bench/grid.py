"""Sample grids: images in [-1, 1] tiled into one PNG; 2-D points as a scatter plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def image_grid(x: Tensor, nrow: int | None = None, pad: int = 1, upscale: int = 1) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (rows*H, cols*W, C) uint8 with `pad` pixels of white between tiles."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    n, c, h, w = x.shape
    cols = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = (
            x[i].permute(1, 2, 0).numpy()
        )
    if upscale > 1:
        grid = grid.repeat(upscale, 0).repeat(upscale, 1)
    return grid


def save_samples(x: Tensor, path: Path | str, *, title: str = "") -> Path:
    """Write a PNG of samples: an image grid, or a scatter plot for 2-D points."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if x.dim() == 2:
        _scatter(x, path, title)
        return path
    # Small images are upscaled so that 8x8 digits are legible in a README.
    upscale = max(1, 128 // x.shape[-1] // 2)
    grid = image_grid(x, upscale=upscale)
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)
    return path


def _scatter(points: Tensor, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = points.detach().float().cpu().numpy()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.5)
    ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", xlabel="x1", ylabel="x2", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
