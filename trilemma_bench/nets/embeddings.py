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
    """VDM (Kingma et al. 2021, App. B): sin/cos(2^n * 2pi * x) per channel, for the fine detail of the likelihood."""
    if not exponents:
        return x.new_zeros(x.shape[0], 0, *x.shape[2:])
    w = (2.0 ** torch.tensor(exponents, device=x.device, dtype=x.dtype)) * 2 * math.pi
    h = (x[:, :, None] * w[None, None, :, None, None]).flatten(1, 2)
    return torch.cat([torch.sin(h), torch.cos(h)], dim=1)


class ConditionEmbedding(nn.Module):
    """Time embedding MLP, plus an optional latent z added to it (DDGAN's generator takes z this way)."""

    def __init__(self, base_dim: int, emb_dim: int, z_dim: int = 0):
        super().__init__()
        self.base_dim = base_dim
        self.time = nn.Sequential(nn.Linear(base_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.z = nn.Sequential(nn.Linear(z_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)) if z_dim else None

    def forward(self, t: Tensor, z: Tensor | None = None) -> Tensor:
        emb = self.time(timestep_embedding(t, self.base_dim))
        if self.z is not None:
            if z is None:
                raise ValueError("this network was built with z_dim > 0: pass a latent z of shape [B, z_dim]")
            emb = emb + self.z(z)
        return emb
