"""VDM's continuous schedule as the project's one Denoiser: what every solver walks on a VDM network."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..denoisers import Denoiser

if TYPE_CHECKING:  # the model presents this denoiser; importing it at run time would close an import circle
    from .vdm import VDM

EMBED_SCALE = 1000.0  # the official get_timestep_embedding multiplies its [0, 1] input by 1000


def net_time(g: Tensor, gamma_min: float, gamma_max: float) -> Tensor:
    """What the network is conditioned on: gamma normalised by the configured endpoints, times 1000."""
    return EMBED_SCALE * (g - gamma_min) / (gamma_max - gamma_min)


GRID = 1000  # index grid of the Denoiser: t_k = (k + 1)/K, K = 1000 (the DDPM-like grid other samplers step on)


def _alpha_bar(gamma64: nn.Module, t: Tensor) -> Tensor:
    return torch.sigmoid(-gamma64(t))


class VDMDenoiser(Denoiser):
    """VDM's continuous gamma on the grid t_k = (k + 1)/K: alpha-bar = sigmoid(-gamma(t)) exactly (float64) at any
    index time, grid point or fractional; the network sees the normalised gamma (:func:`net_time`)."""

    discrete = False  # exact at fractional times: schedules place times freely (EDM levels are not snapped)

    def __init__(self, net: nn.Module, gamma: nn.Module, *, num_steps: int = GRID, gamma_min: float, gamma_max: float):
        if num_steps < 1:
            raise ValueError(f"the grid needs at least one point, got num_steps={num_steps}")
        gamma64 = copy.deepcopy(gamma).double().requires_grad_(False)
        with torch.no_grad():
            table = _alpha_bar(gamma64, torch.arange(1, num_steps + 1, dtype=torch.float64) / num_steps)
        super().__init__(net, table, prediction="eps")
        self.gamma64 = gamma64
        self.gamma_min, self.gamma_max = gamma_min, gamma_max

    def time(self, t: float | Tensor) -> Tensor:
        """Continuous time in [1/K, 1] of index time t in [0, K-1], float64 on the CPU."""
        t = torch.as_tensor(t, dtype=torch.float64).cpu().clamp(0, self.num_steps - 1)
        return (t + 1) / self.num_steps

    @torch.no_grad()
    def alpha_bar_at(self, t: float | Tensor) -> Tensor:
        return _alpha_bar(self.gamma64, self.time(t))

    @torch.no_grad()
    def net_time(self, t: Tensor) -> Tensor:
        s = net_time(self.gamma64(self.time(t)), self.gamma_min, self.gamma_max)
        return s.to(device=t.device, dtype=torch.float32)


def vdm_denoiser(net: nn.Module, model: VDM, num_steps: int = GRID) -> VDMDenoiser:
    """``net`` (the score network, counted and wrapped by the harness) with the EMA schedule it was averaged with."""
    h = model.hparams
    return VDMDenoiser(net, model.gamma(ema=True), num_steps=num_steps, gamma_min=h.gamma_min, gamma_max=h.gamma_max)


