"""Samplers as pure functions over an eps-prediction network and a beta schedule.

Contract (shared by every sampler, as in k-diffusion): ``sampler(eps_model, alpha_bar, x_T, ...) -> x_0``
where ``eps_model(x, t)`` takes integer timesteps ``t`` (shape ``[B]``, 0-based as in Ho et al.'s code) and
``alpha_bar`` is the float64 cumulative product of the training schedule. Samplers never count
network evaluations: wrap the network in ``CountingModel`` for that, so NFE is measured, not assumed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

EpsModel = Callable[[Tensor, Tensor], Tensor]


class CountingModel(nn.Module):
    """Wraps a network and counts its forward calls (one call on a batch = one NFE)."""

    def __init__(self, model: Callable[..., Tensor]):
        super().__init__()
        self.model = model
        self.nfe = 0

    def forward(self, *args, **kwargs) -> Tensor:
        self.nfe += 1
        return self.model(*args, **kwargs)


def per_image_noise(shape: Sequence[int], seeds: Sequence[int], device: torch.device | str = "cpu") -> Tensor:
    """One generator per image (as in EDM's generate.py), so image i is the same whatever the batch size."""
    out = torch.empty((len(seeds), *shape))
    for i, seed in enumerate(seeds):
        out[i] = torch.randn(tuple(shape), generator=torch.Generator().manual_seed(int(seed)))
    return out.to(device)


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
    eps_model: EpsModel,
    alpha_bar: Tensor,
    x: Tensor,
    *,
    nfe: int,
    eta: float = 0.0,
    skip: str = "uniform",
    clip_x0: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Song et al. 2021, Eq. 12: the generalized (eta) step from t to s = previous timestep, s=-1 meaning a_s=1."""
    a = alpha_bar.double().to(x.device)
    seq = ddim_timesteps(len(a), nfe, skip)
    for t, s in zip(reversed(seq), reversed([-1, *seq[:-1]])):
        a_t, a_s = a[t], (a[s] if s >= 0 else a.new_tensor(1.0))
        eps = eps_model(x, _batch_t(t, x))
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        c1 = eta * ((1 - a_t / a_s) * (1 - a_s) / (1 - a_t)).sqrt()
        c2 = (1 - a_s - c1**2).clamp(min=0).sqrt()
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) if eta > 0 else 0.0
        x = (a_s.sqrt() * x0 + c1 * z + c2 * eps).to(x.dtype)
    return x


@torch.no_grad()
def ddpm_sample(
    eps_model: EpsModel,
    alpha_bar: Tensor,
    x: Tensor,
    *,
    timesteps: Sequence[int] | None = None,
    variance: str = "fixedlarge",
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Ho et al. 2020, Algorithm 2, via the posterior q(x_{t-1} | x_t, x0_hat) as in their code.

    ``timesteps`` (increasing) respaces the chain onto a subsequence (Nichol & Dhariwal 2021, Sec. 4):
    the betas between kept steps are recomputed from alpha_bar, so the full chain is the special case.
    ``variance``: 'fixedlarge' (sigma^2 = beta_t) or 'fixedsmall' (the posterior variance beta_tilde_t).
    """
    a_full = alpha_bar.double().to(x.device)
    steps = list(range(len(a_full))) if timesteps is None else list(timesteps)
    a = a_full[steps]
    a_prev = torch.cat([a.new_ones(1), a[:-1]])
    beta = 1 - a / a_prev
    for i in reversed(range(len(steps))):
        eps = eps_model(x, _batch_t(steps[i], x))
        x0 = (x - (1 - a[i]).sqrt() * eps) / a[i].sqrt()
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        # Posterior mean coefficients (Ho et al. Eq. 7).
        mean = (beta[i] * a_prev[i].sqrt() * x0 + (1 - a_prev[i]) * (1 - beta[i]).sqrt() * x) / (1 - a[i])
        if i == 0:
            x = mean.to(x.dtype)
            break
        if variance == "fixedlarge":
            var = beta[i]
        elif variance == "fixedsmall":
            var = beta[i] * (1 - a_prev[i]) / (1 - a[i])
        else:
            raise ValueError(f"unknown variance {variance!r}: use 'fixedlarge' or 'fixedsmall'")
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = (mean + var.sqrt() * z).to(x.dtype)
    return x


def ddpm_respaced_timesteps(num_train_steps: int, nfe: int) -> list[int]:
    """Evenly spaced subsequence ending at T-1 for ancestral sampling with fewer steps."""
    if not 1 <= nfe <= num_train_steps:
        raise ValueError(f"nfe must be between 1 and {num_train_steps}, got {nfe}")
    return sorted({round(v) for v in np.linspace(0, num_train_steps - 1, nfe)})
