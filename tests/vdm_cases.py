"""Cases the VDM and likelihood tests share: a tiny network, bent schedules, exact denoisers, recorded noise."""

from __future__ import annotations

import torch

from trilemma_bench.denoisers import GeneratorNoise
from trilemma_bench.methods.vdm import bin_centres
from trilemma_bench.schedules import make_gamma

TINY_NET = {"type": "unet", "in_channels": 1, "image_size": 8, "ch": 8, "ch_mult": (1, 2), "num_res_blocks": 1,
            "attn_resolutions": (), "dropout": 0.0, "fourier": (6, 7)}


def randomised(kind: str, seed: int = 0) -> torch.nn.Module:
    """A schedule of ``kind`` with parameters far from their init (negative raw weights included), in float64."""
    gamma = make_gamma(kind).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in gamma.named_parameters():
            if name == "w":
                p.fill_(-9.0)  # used through abs(): still increasing
            elif name == "l2.weight":
                p.copy_(3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            elif name == "l2.bias":
                p.copy_(2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            elif name == "l3.weight":
                p.copy_(20 * torch.randn(p.shape, generator=g, dtype=p.dtype))  # a bend of a few units
    return gamma


def uniform_score(levels: int, gamma_min: float, gamma_max: float):
    """The exact eps(z_t) for data uniform over VDM's V bin centres."""
    c = bin_centres(torch.arange(levels), levels).double()

    def score(z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        g = (gamma_min + s / 1000 * (gamma_max - gamma_min)).view(-1, *([1] * (z.dim() - 1)))
        a, v = torch.sigmoid(-g).sqrt(), torch.sigmoid(g).sqrt()
        post = torch.softmax(-0.5 * ((z[..., None] - a[..., None] * c) / v[..., None]) ** 2, dim=-1)
        return (z - a * (post * c).sum(-1)) / v

    return score


class Recording(GeneratorNoise):
    def __init__(self, seed: int):
        super().__init__(torch.Generator().manual_seed(seed))
        self.draws: list[torch.Tensor] = []

    def randn_like(self, x: torch.Tensor, purpose: str = "step") -> torch.Tensor:
        self.draws.append(super().randn_like(x, purpose))
        return self.draws[-1]
