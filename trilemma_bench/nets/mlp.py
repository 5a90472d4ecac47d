"""MLP denoiser for 2-D toy data: same (x, t[, z]) contract as the UNet."""

from __future__ import annotations

from torch import Tensor, nn

from .embeddings import ConditionEmbedding


class MLPDenoiser(nn.Module):
    def __init__(self, dim: int = 2, *, hidden: int = 256, depth: int = 4, z_dim: int = 0, out_dim: int | None = None):
        super().__init__()
        self.embed = ConditionEmbedding(64, hidden, z_dim)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, out_dim or dim))

    def forward(self, x: Tensor, t: Tensor, z: Tensor | None = None) -> Tensor:
        emb = self.embed(t, z)
        h = self.inp(x)
        for block in self.blocks:
            # Residual blocks with the condition added at every depth: the time signal must reach the output.
            h = h + block(h + emb)
        return self.out(h)
