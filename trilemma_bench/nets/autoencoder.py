"""The first stage of latent diffusion: a convolutional KL-regularised autoencoder (Rombach et al. 2022, Sec. 3;
the Encoder/Decoder of CompVis/latent-diffusion's ``ldm/modules/diffusionmodules/model.py``).

The encoder maps an image to the mean and log-variance of a diagonal Gaussian over a latent of
``z_channels`` x (H / f) x (W / f); the decoder maps a latent back. As in the reference: residual blocks per
level, a stride-2 convolution between levels (f = 2^(levels - 1); one level is f = 1), a middle of
res-attention-res, GroupNorm-SiLU-conv at the ends, no tanh on the output, log-variance clamped to [-30, 20].
The reference's 1x1 ``quant_conv``/``post_quant_conv`` are folded into the 3x3 convs beside them (a 1x1 conv
after a 3x3 conv is one 3x3 conv). Sizes need not be powers of two: n goes down to ceil(n / 2) and comes
back through the UNet's cropping :class:`~.unet.Upsample`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .unet import Attention, Upsample, level_sizes, norm


class ResidualBlock(nn.Module):
    """The reference's ResnetBlock without a time input (``temb_channels=0``) and without dropout."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.body(x)


def _middle(c: int, attention: bool) -> nn.Sequential:
    return nn.Sequential(ResidualBlock(c, c), Attention(c) if attention else nn.Identity(), ResidualBlock(c, c))


def _head(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))


class Encoder(nn.Module):
    def __init__(self, in_channels: int, *, ch: int, ch_mult: Sequence[int], num_res_blocks: int, z_channels: int,
                 mid_attention: bool):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, ch, 3, padding=1)
        layers: list[nn.Module] = []
        c = ch
        for i, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                layers.append(ResidualBlock(c, ch * mult))
                c = ch * mult
            if i < len(ch_mult) - 1:
                layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.down = nn.Sequential(*layers)
        self.mid = _middle(c, mid_attention)
        self.head = _head(c, 2 * z_channels)  # mean and log-variance

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.mid(self.down(self.stem(x))))


class Decoder(nn.Module):
    def __init__(self, out_channels: int, *, image_size: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 z_channels: int, mid_attention: bool):
        super().__init__()
        self.sizes = level_sizes(image_size, len(ch_mult))
        c = ch * ch_mult[-1]
        self.stem = nn.Conv2d(z_channels, c, 3, padding=1)
        self.mid = _middle(c, mid_attention)
        self.levels, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(ch_mult))):
            blocks = []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResidualBlock(c, ch * ch_mult[i]))
                c = ch * ch_mult[i]
            self.levels.append(nn.Sequential(*blocks))
            self.upsample.append(Upsample(c) if i > 0 else nn.Identity())
        self.head = _head(c, out_channels)

    def forward(self, z: Tensor) -> Tensor:
        if tuple(z.shape[-2:]) != (self.sizes[-1],) * 2:
            raise ValueError(f"this decoder takes {self.sizes[-1]}x{self.sizes[-1]} latents, got {tuple(z.shape[-2:])}")
        h = self.mid(self.stem(z))
        for i, (level, up) in enumerate(zip(self.levels, self.upsample)):
            h = level(h)
            if isinstance(up, Upsample):  # level i of the reversed list returns to the size one level up
                size = self.sizes[len(self.sizes) - 2 - i]
                h = up(h, (size, size))
        return self.head(h)


class KLAutoencoder(nn.Module):
    """x -> q(z | x) = N(mean, exp(logvar)) -> x_hat. ``f = 2^(len(ch_mult) - 1)``; latents are
    ``z_channels`` x ceil(H / f) x ceil(W / f)."""

    def __init__(self, in_channels: int = 1, *, image_size: int, ch: int = 32, ch_mult: Sequence[int] = (1, 2),
                 num_res_blocks: int = 1, z_channels: int = 2, mid_attention: bool = True):
        super().__init__()
        if not ch_mult:
            raise ValueError("ch_mult needs at least one level (one level: f = 1, no downsampling)")
        self.encoder = Encoder(in_channels, ch=ch, ch_mult=ch_mult, num_res_blocks=num_res_blocks,
                               z_channels=z_channels, mid_attention=mid_attention)
        self.decoder = Decoder(in_channels, image_size=image_size, ch=ch, ch_mult=ch_mult,
                               num_res_blocks=num_res_blocks, z_channels=z_channels, mid_attention=mid_attention)
        self.f = 2 ** (len(ch_mult) - 1)
        side = level_sizes(image_size, len(ch_mult))[-1]
        self.latent_shape = (z_channels, side, side)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of the posterior, the log-variance clamped to [-30, 20] as in the reference."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(reconstruction of a posterior sample, mean, logvar); ``noise`` is the sample's N(0, I) draw."""
        mean, logvar = self.encode(x)
        noise = torch.randn_like(mean) if noise is None else noise
        return self.decode(mean + (0.5 * logvar).exp() * noise), mean, logvar


def kl_to_standard_normal(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per image, summed over latent elements (the reference's ``kl()``)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


def levels_for(f: int) -> int:
    """Number of resolution levels that downsample by ``f`` (a power of two)."""
    if f < 1 or f & (f - 1):
        raise ValueError(f"the downsampling factor f must be a power of two (1, 2, 4, ...), got {f}")
    return int(math.log2(f)) + 1
