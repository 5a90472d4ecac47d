"""One way to draw samples: image i of seed s starts from its own x_T and draws every later noise from its own
streams (:mod:`.noise`), in batches that do not change it, then the method's decoder where it samples latents.

The CLI's ``sample``, ``diagnose`` and the study scripts call this; the bench cell and ``retime`` call the same two
stages (``Method.sample``, then ``Method.decoder``) under the timing protocol, which times each stage apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .noise import ImageNoise, initial_noise

if TYPE_CHECKING:  # the models' oracles (diagnose) call generate: a run-time import would close a circle
    from .methods import Method


def generate(method: Method, model: nn.Module, nfe: int, *, seed: int, images: range | int, shape: tuple[int, ...],
             net: nn.Module | None = None, batch_size: int | None = None, decode: bool = True) -> Tensor:
    """Samples of ``images`` (a range, or n for the first n) of ``seed`` at ``nfe``; ``net`` wraps or replaces the
    model's network (a counter, an oracle); ``decode=False`` keeps a latent method's latents."""
    images = range(images) if isinstance(images, int) else images
    device = next(model.parameters()).device
    step = batch_size or max(1, len(images))
    decoder = method.decoder(model) if decode and method.decoder is not None else None
    out = []
    with torch.no_grad():
        for start in range(0, len(images), step):
            idx = images[start:start + step]
            x_T = initial_noise(shape, seed, idx, device)
            x = method.sample(model, x_T, nfe, net=net, noise=ImageNoise(seed, idx))
            out.append(decoder(x) if decoder is not None else x)
    return torch.cat(out)
