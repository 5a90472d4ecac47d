"""Noise schedules: DDPM beta schedules, alpha-bar and log-SNR helpers.

Schedules are built in float64 (as in Ho et al.'s code) because 1 - alpha_bar near t=0 and
alpha_bar near t=T lose digits in float32; samplers cast per step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """Ho et al. 2020, Sec. 4: betas linear from 1e-4 to 0.02 over T=1000 steps."""
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


def cosine_betas(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Nichol & Dhariwal 2021, Eq. 17: alpha_bar(t) = cos^2((t/T + s)/(1 + s) * pi/2), betas clipped at 0.999."""
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


def make_betas(kind: str, num_steps: int = 1000) -> Tensor:
    if kind == "linear":
        return linear_betas(num_steps)
    if kind == "cosine":
        return cosine_betas(num_steps)
    raise ValueError(f"unknown beta schedule {kind!r}: use 'linear' or 'cosine'")


def alphas_cumprod(betas: Tensor) -> Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s), in float64."""
    return torch.cumprod(1 - betas.double(), dim=0)


def betas_from_alphas_cumprod(alpha_bar: Tensor) -> Tensor:
    """Inverse of `alphas_cumprod`; used to respace a schedule onto a subsequence of timesteps."""
    alpha_bar = alpha_bar.double()
    prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
    return 1 - alpha_bar / prev


def log_snr(alpha_bar: Tensor) -> Tensor:
    """lambda = log(alpha^2 / sigma^2) = log(alpha_bar / (1 - alpha_bar)); VDM's gamma is -lambda."""
    alpha_bar = alpha_bar.double()
    return torch.log(alpha_bar) - torch.log1p(-alpha_bar)


def vp_sde_alpha_bar(t: Tensor, beta_min: float = 0.1, beta_max: float = 20.0) -> Tensor:
    """Song et al. 2021 VP-SDE: alpha_bar(t) = exp(-int_0^t beta(s) ds), t in [0, 1] (DDGAN's schedule)."""
    t = t.double()
    return torch.exp(-(beta_min * t + 0.5 * (beta_max - beta_min) * t**2))
