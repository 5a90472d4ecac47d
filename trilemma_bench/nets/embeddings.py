"""Conditioning embeddings shared by every network."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer sinusoidal embedding of (possibly fractional) timesteps, as in Ho et al.'s UNet."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return nn.functional.pad(emb, (0, dim % 2))


def fourier_features(x: Tensor, exponents: tuple[int, ...]) -> Tensor:
    """VDM (Kingma et al. 2021, App. B): sin/cos(2^n * 2pi * x) per channel, for the fine detail of the likelihood.

    ``x`` is [B, C, ...] (images, or points [B, C]); the features are [B, 2 * C * len(exponents), ...]."""
    if not exponents:
        return x.new_zeros(x.shape[0], 0, *x.shape[2:])
    w = (2.0 ** torch.tensor(exponents, device=x.device, dtype=x.dtype)) * 2 * math.pi
    h = (x[:, :, None] * w.view(1, 1, -1, *([1] * (x.dim() - 2)))).flatten(1, 2)
    return torch.cat([torch.sin(h), torch.cos(h)], dim=1)


class ConditionEmbedding(nn.Module):
    """Time embedding: sinusoidal features of t through a two-layer MLP (Ho et al.'s UNet)."""

    def __init__(self, base_dim: int, emb_dim: int):
        super().__init__()
        self.base_dim = base_dim
        self.time = nn.Sequential(nn.Linear(base_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.time(timestep_embedding(t, self.base_dim))


class PixelNorm(nn.Module):
    """x / sqrt(mean(x^2) + 1e-8) over features (Karras et al. 2018): the mapping network's first layer."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class LatentMapping(nn.Module):
    """DDGAN's z mapping (official ``z_transform``): PixelNorm, then ``1 + n_mlp`` linear layers with SiLU."""

    def __init__(self, z_dim: int, emb_dim: int, n_mlp: int):
        super().__init__()
        layers: list[nn.Module] = [PixelNorm(), nn.Linear(z_dim, emb_dim), nn.SiLU()]
        for _ in range(n_mlp):
            layers += [nn.Linear(emb_dim, emb_dim), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        self.z_dim = z_dim

    def forward(self, z: Tensor | None) -> Tensor:
        if z is None or z.dim() != 2 or z.shape[1] != self.z_dim:
            got = "none" if z is None else f"shape {tuple(z.shape)}"
            raise ValueError(f"this network was built with z_dim={self.z_dim}: pass a latent z of shape "
                             f"[B, {self.z_dim}], got {got}")
        return self.net(z)


class FiLM(nn.Module):
    """Per-channel scale and shift predicted from a style vector (Perez et al. 2018), initialised to the identity
    (scale 1, shift 0, as DDGAN's AdaptiveGroupNorm). Works on [B, C, ...]."""

    def __init__(self, channels: int, style_dim: int):
        super().__init__()
        self.style = nn.Linear(style_dim, 2 * channels)
        with torch.no_grad():
            self.style.bias[:channels] = 1.0
            self.style.bias[channels:] = 0.0

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        scale, shift = self.style(style).view(x.shape[0], 2, x.shape[1], *([1] * (x.dim() - 2))).unbind(1)
        return scale * x + shift


class AdaGroupNorm(nn.Module):
    """Adaptive group norm (DDGAN's ``AdaptiveGroupNorm``): group-normalise without affine, then a FiLM scale
    and shift from the mapped latent."""

    def __init__(self, groups: int, channels: int, style_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, affine=False, eps=1e-6)
        self.film = FiLM(channels, style_dim)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        return self.film(self.norm(x), style)
