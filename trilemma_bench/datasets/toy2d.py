"""A 2-D mixture of 25 Gaussians on a 5x5 grid: every sample's mode is known exactly."""

from __future__ import annotations

import torch
from torch import Tensor

from .common import check_split

# Component k sits at (GRID[k // 5], GRID[k % 5]).
_GRID = (-2.0, -1.0, 0.0, 1.0, 2.0)
TOY2D_CENTERS: Tensor = torch.tensor([[a, b] for a in _GRID for b in _GRID], dtype=torch.float32)
TOY2D_STD: float = 0.05
SIZES = {"train": 50_000, "val": 5_000, "test": 5_000}
SEEDS = {"train": 1_000, "val": 1_001, "test": 1_002}


def sample_toy2d(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` points and their component index.

    Components get equal counts (up to n mod 25) in a random order rather than multinomial counts: the
    same mixture with less sampling noise, so the mode metrics' reference really is uniform.
    """
    g = torch.Generator().manual_seed(seed)
    k = len(TOY2D_CENTERS)
    y = (torch.arange(n) % k)[torch.randperm(n, generator=g)]
    x = TOY2D_CENTERS[y] + TOY2D_STD * torch.randn(n, 2, generator=g)
    return x, y.to(torch.int64)


def load(split: str) -> tuple[Tensor, Tensor]:
    check_split(split)
    return sample_toy2d(SIZES[split], SEEDS[split])
