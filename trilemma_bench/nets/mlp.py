"""MLP denoiser for 2-D toy data: same (x, t[, z]) contract as the UNet."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .embeddings import ConditionEmbedding, FiLM, LatentMapping, fourier_features


class MLPDenoiser(nn.Module):
    """Residual MLP conditioned on t at every depth. ``z_dim`` > 0 makes it DDGAN's toy generator: z goes
    through the same mapping network as the UNet's (PixelNorm, MLP) into a FiLM scale and shift of the hidden
    vector before every block, never into the time embedding. Not normalised first, unlike the UNet's AdaGN:
    normalising a vector made linearly from a 2-D point discards how far the point lies, which the
    generator needs to place it.
    ``fourier`` appends sin/cos(2^n 2pi x) of the input coordinates (a positional encoding: a coordinate MLP
    learns sharp functions of its input slowly, Tancik et al. 2020). ``skip`` returns x plus the MLP's output,
    so an untrained network starts from the identity."""

    def __init__(self, dim: int = 2, *, hidden: int = 256, depth: int = 4, z_dim: int = 0, z_emb_dim: int = 128,
                 n_mlp: int = 2, out_dim: int | None = None, fourier: tuple[int, ...] = (), skip: bool = False):
        super().__init__()
        if skip and out_dim not in (None, dim):
            raise ValueError(f"skip adds the input to the output: out_dim must be {dim}, got {out_dim}")
        self.fourier = tuple(fourier)
        self.skip = skip
        self.embed = ConditionEmbedding(64, hidden)
        self.inp = nn.Linear(dim * (1 + 2 * len(self.fourier)), hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, out_dim or dim))
        # Built last, and only with a latent: the eps MLP's parameters and initialisation stay as they were.
        self.mapping = LatentMapping(z_dim, z_emb_dim, n_mlp) if z_dim else None
        self.films = nn.ModuleList(FiLM(hidden, z_emb_dim) for _ in range(depth)) if z_dim else None

    def forward(self, x: Tensor, t: Tensor, z: Tensor | None = None) -> Tensor:
        emb = self.embed(t)
        h = self.inp(torch.cat([x, fourier_features(x, self.fourier)], dim=1) if self.fourier else x)
        if self.mapping is None:
            for block in self.blocks:
                # Residual blocks with the condition added at every depth: the time signal must reach the output.
                h = h + block(h + emb)
        else:
            zemb = self.mapping(z)
            for block, film in zip(self.blocks, self.films):
                h = h + block(film(h, zemb) + emb)
        return x + self.out(h) if self.skip else self.out(h)
