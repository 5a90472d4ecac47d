"""StackedMNIST: three MNIST digits as the three channels of one image, 1,000 modes (VEEGAN, PacGAN, DDGAN)."""

from __future__ import annotations

import torch
from torch import Tensor

from .common import Source, check_split

SIZES = {"train": 50_000, "val": 10_000, "test": 10_000}
SEEDS = {"train": 2_000, "val": 2_001, "test": 2_002}


def stack_indices(n: int, pool: int, seed: int) -> Tensor:
    """(n, 3) indices into a pool of MNIST digits, drawn uniformly with replacement."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, pool, (n, 3), generator=g)


def stack_digits(x: Tensor, y: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Stack single-channel digits ``x`` (N, 1, H, W): returns images (n, 3, H, W), the mode label
    100*d0 + 10*d1 + d2, and the (n, 3) indices used (so that tests can check the labels)."""
    idx = stack_indices(n, len(x), seed)
    images = x[idx, 0]  # (n, 3, H, W): channel c is digit idx[:, c]
    digits = y[idx]
    labels = 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2]
    return images, labels.to(torch.int64), idx


def stacked_source(mnist: Source) -> Source:
    """StackedMNIST built from whichever MNIST source was chosen; train draws from MNIST train,
    val and test from MNIST val and test, so no digit crosses splits."""

    def load(root, split: str) -> tuple[Tensor, Tensor]:
        check_split(split)
        x, y = mnist.load(root, split)
        images, labels, _ = stack_digits(x, y, SIZES[split], SEEDS[split])
        return images, labels

    return Source(
        label=f"stacked from {mnist.label}",
        is_available=mnist.is_available,
        load=load,
        missing=mnist.missing,
        fetch=mnist.fetch,
    )
