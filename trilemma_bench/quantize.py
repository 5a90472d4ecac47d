"""Images as a saved file holds them: rounded to the data's grid of levels. Samples and autoencoder
reconstructions are scored after this, so both meet the metrics as the same kind of image."""

from __future__ import annotations

from torch import Tensor


def quantize(x: Tensor, levels: int | None) -> Tensor:
    """Images in [-1, 1] rounded to the nearest of ``levels`` evenly spaced values (as uint8 PNGs hold
    256); None leaves the input as it is (points)."""
    import torch

    if levels is None:
        return x
    step = (levels - 1) / 2
    return (torch.round((x.clamp(-1, 1) + 1) * step) / step - 1).to(x.dtype)
