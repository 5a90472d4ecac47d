"""Samplers as pure functions over one denoiser contract.

Contract (shared by every sampler, as in k-diffusion): ``sampler(model, x_T, *, ..., noise) -> x_0`` where
``model`` is a :class:`~trilemma_bench.denoisers.Denoiser`: ``model(x, t)`` predicts eps at index times
``t`` (shape ``[B]``, 0-based as in Ho et al.'s code) and ``model.alpha_bar`` is the float64 alpha-bar
table of its grid. Stochastic samplers draw through ``noise.randn_like(x)`` (per-image streams in
benchmarks, :mod:`trilemma_bench.noise`). Samplers never count network evaluations: wrap the network in
``CountingModel`` for that, so NFE is measured, not assumed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .denoisers import Denoiser, NoiseSource


class CountingModel(nn.Module):
    """Wraps a network and counts its forward calls (one call on a batch = one NFE)."""

    def __init__(self, model: Callable[..., Tensor]):
        super().__init__()
        self.model = model
        self.nfe = 0

    def forward(self, *args, **kwargs) -> Tensor:
        self.nfe += 1
        return self.model(*args, **kwargs)


def ddim_timesteps(num_train_steps: int, nfe: int, skip: str = "uniform") -> list[int]:
    """Timestep subsequence of the DDIM paper's code: 'uniform' strides T // nfe, 'quad' spaces sqrt(t) evenly.

    'quad' can repeat small timesteps at large NFE, as in the reference code; a repeated step is an identity
    update (a_t = a_s) that still costs a network call, and the call counter reports it.
    """
    if not 1 <= nfe <= num_train_steps:
        raise ValueError(f"nfe must be between 1 and {num_train_steps}, got {nfe}")
    if skip == "uniform":
        return list(range(0, num_train_steps, num_train_steps // nfe))
    if skip == "quad":
        return [int(s) for s in np.linspace(0, np.sqrt(num_train_steps * 0.8), nfe) ** 2]
    raise ValueError(f"unknown skip type {skip!r}: use 'uniform' or 'quad'")


def _batch_t(t: int, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)


@torch.no_grad()
def ddim_sample(
    model: Denoiser,
    x: Tensor,
    *,
    nfe: int,
    eta: float = 0.0,
    skip: str = "uniform",
    clip_x0: bool = False,
    noise: NoiseSource | None = None,
) -> Tensor:
    """Song et al. 2021, Eq. 12: the generalized (eta) step from t to s = previous timestep, s=-1 meaning a_s=1."""
    a = model.alpha_bar.to(x.device)
    seq = ddim_timesteps(len(a), nfe, skip)
    if eta > 0 and noise is None:
        raise ValueError("DDIM with eta > 0 is stochastic: pass a noise source")
    for t, s in zip(reversed(seq), reversed([-1, *seq[:-1]])):
        a_t, a_s = a[t], (a[s] if s >= 0 else a.new_tensor(1.0))
        eps = model(x, _batch_t(t, x))
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        c1 = eta * ((1 - a_t / a_s) * (1 - a_s) / (1 - a_t)).sqrt()
        c2 = (1 - a_s - c1**2).clamp(min=0).sqrt()
        z = noise.randn_like(x) if eta > 0 else 0.0
        x = (a_s.sqrt() * x0 + c1 * z + c2 * eps).to(x.dtype)
    return x


@torch.no_grad()
def ddpm_sample(
    model: Denoiser,
    x: Tensor,
    *,
    timesteps: Sequence[int] | None = None,
    variance: str = "fixedlarge",
    clip_x0: bool = True,
    noise: NoiseSource | None = None,
) -> Tensor:
    """Ho et al. 2020, Algorithm 2, via the posterior q(x_{t-1} | x_t, x0_hat) as in their code.

    ``timesteps`` (increasing) respaces the chain onto a subsequence (Nichol & Dhariwal 2021, Sec. 4):
    the betas between kept steps are recomputed from alpha_bar, so the full chain is the special case.
    ``variance``: 'fixedlarge' (sigma^2 = beta_t) or 'fixedsmall' (the posterior variance beta_tilde_t).
    """
    if variance not in ("fixedlarge", "fixedsmall"):
        raise ValueError(f"unknown variance {variance!r}: use 'fixedlarge' or 'fixedsmall'")
    if noise is None:
        raise ValueError("ancestral sampling is stochastic: pass a noise source")
    a_full = model.alpha_bar.to(x.device)
    steps = list(range(len(a_full))) if timesteps is None else list(timesteps)
    a = a_full[steps]
    a_prev = torch.cat([a.new_ones(1), a[:-1]])
    beta = 1 - a / a_prev
    for i in reversed(range(len(steps))):
        eps = model(x, _batch_t(steps[i], x))
        x0 = (x - (1 - a[i]).sqrt() * eps) / a[i].sqrt()
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        # Posterior mean coefficients (Ho et al. Eq. 7).
        mean = (beta[i] * a_prev[i].sqrt() * x0 + (1 - a_prev[i]) * (1 - beta[i]).sqrt() * x) / (1 - a[i])
        if i == 0:
            x = mean.to(x.dtype)
            break
        var = beta[i] if variance == "fixedlarge" else beta[i] * (1 - a_prev[i]) / (1 - a[i])
        x = (mean + var.sqrt() * noise.randn_like(x)).to(x.dtype)
    return x


def ddpm_respaced_timesteps(num_train_steps: int, nfe: int) -> list[int]:
    """Evenly spaced subsequence ending at T-1 for ancestral sampling with fewer steps."""
    if not 1 <= nfe <= num_train_steps:
        raise ValueError(f"nfe must be between 1 and {num_train_steps}, got {nfe}")
    return sorted({round(v) for v in np.linspace(0, num_train_steps - 1, nfe)})
