"""DDGAN's time-conditioned discriminators: D(x_{t-1}, x_t, t) judges a denoising step, not an image.

The image discriminator follows the official ``Discriminator_small`` (NVlabs/denoising-diffusion-gan,
score_sde/models/discriminator.py): the pair concatenated on channels, a 1x1 stem, residual down blocks
with the time embedding added after the first convolution and FIR [1, 3, 3, 1] downsampling, a
minibatch standard-deviation channel, a last convolution, a sum over pixels and a linear logit. The MLP
discriminator is the same recipe for 2-D points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .embeddings import fourier_features, timestep_embedding

SLOPE = 0.2  # LeakyReLU slope of the official discriminators


def minibatch_stddev(h: Tensor, group: int = 4) -> Tensor:
    """Append one feature: the standard deviation across a group of samples, averaged over features and
    pixels (Karras et al. 2018; StyleGAN2's grouping, samples b, b + B/G, ... forming a group). The group
    shrinks to the largest divisor of the batch not above ``group``, so any batch size works."""
    b = h.shape[0]
    g = next(k for k in range(min(group, b), 0, -1) if b % k == 0)
    grouped = h.view(g, b // g, *h.shape[1:])
    # The variance by hand: Tensor.var over the leading dimension is ~30x slower on the CPU (torch 2.13).
    std = ((grouped - grouped.mean(dim=0)).pow(2).mean(dim=0) + 1e-8).sqrt()
    std = std.mean(dim=tuple(range(1, std.dim())))  # one value per member of a group: [B / G]
    feature = std.repeat(g).view(b, 1, *([1] * (h.dim() - 2))).expand(b, 1, *h.shape[2:])
    return torch.cat([h, feature], dim=1)


class TimeEmbedding(nn.Module):
    """Sinusoidal features of the step index through Linear, LeakyReLU, Linear, then LeakyReLU."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.LeakyReLU(SLOPE), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        emb = timestep_embedding(t, self.dim).to(self.net[0].weight.dtype)
        return F.leaky_relu(self.net(emb), SLOPE)


def fir_downsample(x: Tensor) -> Tensor:
    """Halve the resolution with the separable [1, 3, 3, 1] low-pass filter (StyleGAN2, DDGAN's ``fir``)."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], device=x.device, dtype=x.dtype)
    k = (k[:, None] * k[None, :]) / 64
    c = x.shape[1]
    return F.conv2d(x, k.expand(c, 1, 4, 4), stride=2, padding=1, groups=c)


class DownBlock(nn.Module):
    """act, conv, + time, act, [downsample], conv (zero-initialised), plus a 1x1 skip; sum scaled by 1/sqrt 2."""

    def __init__(self, c_in: int, c_out: int, t_dim: int, down: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.down = down
        nn.init.zeros_(self.conv2.weight)  # the official init_scale=0: each block starts as its skip path
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.leaky_relu(x, SLOPE)) + self.time(temb)[:, :, None, None]
        h = F.leaky_relu(h, SLOPE)
        if self.down:
            h, x = fir_downsample(h), fir_downsample(x)
        return (self.conv2(h) + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """D(x_{t-1}, x_t, t) -> logit [B] for images of ``in_channels`` channels (the pair has twice that).

    ``ch`` and ``ch_mult`` set the widths of the down blocks; the first keeps the resolution, each later one
    halves it. The official CIFAR-10/StackedMNIST discriminator is ch=128 (2 ngf), ch_mult=(1, 2, 4, 4),
    t_dim=256."""

    def __init__(self, in_channels: int = 3, *, ch: int = 128, ch_mult: Sequence[int] = (1, 2, 4, 4),
                 t_dim: int = 256, stddev_group: int = 4):
        super().__init__()
        self.t_embed = TimeEmbedding(t_dim)
        self.stem = nn.Conv2d(2 * in_channels, ch, 1)
        widths = [ch * m for m in ch_mult]
        self.blocks = nn.ModuleList(
            DownBlock(c_in, c_out, t_dim, down=i > 0) for i, (c_in, c_out) in enumerate(zip([ch, *widths], widths))
        )
        c = widths[-1]
        self.final = nn.Conv2d(c + 1, c, 3, padding=1)
        nn.init.zeros_(self.final.weight)
        nn.init.zeros_(self.final.bias)
        self.head = nn.Linear(c, 1)
        self.stddev_group = stddev_group

    def forward(self, x_prev: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        temb = self.t_embed(t)
        h = self.stem(torch.cat([x_prev, x_t], dim=1))
        for block in self.blocks:
            h = block(h, temb)
        h = F.leaky_relu(self.final(minibatch_stddev(h, self.stddev_group)), SLOPE)
        return self.head(h.sum(dim=(2, 3))).squeeze(1)


class MLPDiscriminator(nn.Module):
    """D(x_{t-1}, x_t, t) -> logit [B] for points: the pair concatenated, residual LeakyReLU layers with the
    time embedding added at every depth, a minibatch standard-deviation feature, a linear logit. ``fourier``
    appends sin/cos(2^n 2pi x) of the pair's coordinates, as :class:`~trilemma_bench.nets.MLPDenoiser`'s."""

    def __init__(self, dim: int = 2, *, hidden: int = 128, depth: int = 3, t_dim: int = 64, stddev_group: int = 4,
                 fourier: tuple[int, ...] = ()):
        super().__init__()
        self.fourier = tuple(fourier)
        self.t_embed = TimeEmbedding(t_dim)
        self.inp = nn.Linear(2 * dim * (1 + 2 * len(self.fourier)), hidden)
        self.time = nn.ModuleList(nn.Linear(t_dim, hidden) for _ in range(depth))
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.head = nn.Linear(hidden + 1, 1)
        self.stddev_group = stddev_group

    def forward(self, x_prev: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        temb = self.t_embed(t)
        pair = torch.cat([x_prev, x_t], dim=1)
        h = self.inp(torch.cat([pair, fourier_features(pair, self.fourier)], dim=1))
        for layer, time in zip(self.layers, self.time):
            h = (h + layer(F.leaky_relu(h + time(temb), SLOPE))) / math.sqrt(2)
        return self.head(minibatch_stddev(F.leaky_relu(h, SLOPE), self.stddev_group)).squeeze(1)
