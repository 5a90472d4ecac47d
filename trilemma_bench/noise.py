"""Per-image random streams: image i of seed s draws the same numbers whatever the batch it sits in.

Every random draw of a benchmark comes from a stream keyed by (seed, image index, purpose), as EDM's
``generate.py`` keys one generator per image; the keys are mixed by NumPy's ``SeedSequence``, so the
streams of neighbouring images or of two purposes share no draws (the initial noise of image i and
the ancestral noise of image i are different streams). Purposes: ``"init"`` for x_T, ``"step"`` for the
noise a stochastic sampler adds, ``"latent"`` for a generator's z (DDGAN), ``"likelihood"`` for the draws of a
bits/dim estimate of test image i.

Drawing image by image costs one generator call per image; a stream therefore draws ``CHUNK`` steps
at once for each image and hands them out one step at a time. The stream is defined by that rule,
so it is the same for every batch size, batch position and number of steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

PURPOSES = ("init", "step", "latent", "likelihood")
CHUNK = 32  # steps drawn per image and per generator call


def stream_seed(seed: int, image: int, purpose: str) -> int:
    """A 63-bit generator seed for (seed, image, purpose), mixed so that nearby keys are unrelated."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown noise purpose {purpose!r}: use one of {', '.join(PURPOSES)}")
    if seed < 0 or image < 0:
        raise ValueError(f"seed and image index must be non-negative, got seed={seed}, image={image}")
    state = np.random.SeedSequence([seed, image, PURPOSES.index(purpose)]).generate_state(2, np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def initial_noise(shape: Sequence[int], seed: int, images: Sequence[int], device: str | torch.device = "cpu") -> Tensor:
    """x_T of the listed images: N(0, I) of ``shape`` each, drawn on the CPU from each image's "init" stream."""
    out = torch.empty((len(images), *shape))
    for row, i in enumerate(images):
        out[row] = torch.randn(tuple(shape), generator=torch.Generator().manual_seed(stream_seed(seed, int(i), "init")))
    return out.to(device)


class ImageNoise:
    """The noise a stochastic sampler draws for one batch of images, one stream per image and purpose.

    ``randn_like(x)`` returns noise shaped and placed like ``x``: row b is the next draw of image
    ``images[b]``'s stream. Streams run on the CPU, so a sample does not depend on the device either.
    Each purpose has one shape: a second shape for the same purpose would replay the same stream.
    """

    def __init__(self, seed: int, images: Sequence[int]):
        self.seed, self.images = int(seed), [int(i) for i in images]
        self._streams: dict[str, _Stream] = {}

    def __len__(self) -> int:
        return len(self.images)

    def randn(self, shape: Sequence[int], purpose: str = "step", *, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32) -> Tensor:
        """The next [B, *shape] draw of every image's ``purpose`` stream."""
        shape = tuple(int(s) for s in shape)
        stream = self._streams.get(purpose)
        if stream is None:
            stream = self._streams[purpose] = _Stream(self.seed, self.images, purpose, shape)
        elif stream.shape != shape:
            raise ValueError(f"the {purpose!r} stream draws {stream.shape}, not {shape}: one shape per purpose")
        return stream.next().to(device, dtype)

    def randn_like(self, x: Tensor, purpose: str = "step") -> Tensor:
        if x.shape[0] != len(self.images):
            raise ValueError(f"noise for {len(self.images)} images asked for a batch of {x.shape[0]}")
        return self.randn(x.shape[1:], purpose, device=x.device, dtype=x.dtype)


class _Stream:
    """CHUNK draws per image per generator call, handed out one step at a time."""

    def __init__(self, seed: int, images: list[int], purpose: str, shape: tuple[int, ...]):
        self.generators = [torch.Generator().manual_seed(stream_seed(seed, i, purpose)) for i in images]
        self.shape = shape
        self.buffer = torch.empty((len(images), CHUNK, *shape))
        self.used = CHUNK

    def next(self) -> Tensor:
        if self.used == CHUNK:
            for row, g in enumerate(self.generators):
                torch.randn((CHUNK, *self.shape), generator=g, out=self.buffer[row])
            self.used = 0
        self.used += 1
        return self.buffer[:, self.used - 1]
