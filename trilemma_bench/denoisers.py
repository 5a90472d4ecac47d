"""The one denoiser every sampler sees, and the adapters that present each model as one.

A sampler never knows which method trained the network (k-diffusion's ``external.py`` in spirit): it
gets a :class:`Denoiser`, a variance-preserving model x_t = sqrt(a(t)) x0 + sqrt(1 - a(t)) eps that
predicts eps, on an index time grid t = 0..K-1 whose alpha-bar table (float64, noise increasing with
t) it carries. A discrete-time eps network (DDPM, latent DDPM) is that contract as it stands; other
models adapt to it here (a network that predicts x0, as DDGAN's generator, converts its output to eps
in float64; a continuous-time model lays its schedule on a grid and overrides
:meth:`Denoiser.alpha_bar_at`).

Fractional times (DPM-Solver's log-SNR spacing, EDM's sigma grid) reach the network as they are; the
schedule between grid points interpolates log alpha linearly in t, as the official DPM-Solver's
``NoiseScheduleVP('discrete')`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn

Net = Callable[..., Tensor]


class NoiseSource(Protocol):
    """Where a stochastic sampler takes its noise: :class:`trilemma_bench.noise.ImageNoise` in benchmarks."""

    def randn_like(self, x: Tensor, purpose: str = "step") -> Tensor: ...


class GeneratorNoise:
    """One torch generator for the whole batch: for comparing against references that draw that way
    (diffusers' schedulers); a sample then depends on its batch, so benchmarks use ImageNoise."""

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def randn_like(self, x: Tensor, purpose: str = "step") -> Tensor:
        return torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)


class Denoiser(nn.Module):
    """eps(x, t) of a VP diffusion on the index grid of ``alpha_bar`` (``prediction``: what ``net`` returns)."""

    # Trained on the grid's integer times: a schedule of noise levels (EDM's) evaluates each at the nearest one.
    discrete = True

    def __init__(self, net: Net, alpha_bar: Tensor, *, prediction: str = "eps"):
        super().__init__()
        if prediction not in ("eps", "x0"):
            raise ValueError(f"unknown prediction {prediction!r}: use 'eps' or 'x0'")
        self.net = net
        self.alpha_bar = alpha_bar.detach().double().cpu()  # float64 always: samplers cast per step
        self.prediction = prediction

    @property
    def num_steps(self) -> int:
        return len(self.alpha_bar)

    def alpha_bar_at(self, t: float | Tensor) -> Tensor:
        """a(t) in float64 for t in [0, K-1]: the table at grid points, log a linear in t between them."""
        t = torch.as_tensor(t, dtype=torch.float64).clamp(0, self.num_steps - 1)
        if self.num_steps == 1:
            return self.alpha_bar[0].expand_as(t).clone()
        lo = t.floor().long().clamp(max=self.num_steps - 2)
        w = t - lo
        log_a = self.alpha_bar.log()
        between = (log_a[lo] * (1 - w) + log_a[lo + 1] * w).exp()
        return torch.where(w == 0, self.alpha_bar[lo], torch.where(w == 1, self.alpha_bar[lo + 1], between))

    def net_time(self, t: Tensor) -> Tensor:
        """What the network is conditioned on at index time t (the index itself for DDPM)."""
        return t

    def forward(self, x: Tensor, t: Tensor, **kwargs) -> Tensor:
        out = self.net(x, self.net_time(t), **kwargs)
        if self.prediction == "eps":
            return out
        # In float64, returned as such: samplers recover x0 = (x - sqrt(1-a) eps) / sqrt(a), which in float32
        # would divide x's rounding by sqrt(a), 0.0066 at DDGAN's T = 1 (7.8e-5 off G's x0 instead of 1e-7).
        a = self.alpha_bar_at(t.double().cpu()).to(x.device).view(-1, *([1] * (x.dim() - 1)))
        return (x.double() - a.sqrt() * out.double()) / (1 - a).sqrt()


def eps_denoiser(net: Net, alpha_bar: Tensor) -> Denoiser:
    """A discrete-time eps network trained on ``alpha_bar`` (DDPM, and DDPM on latents)."""
    return Denoiser(net, alpha_bar, prediction="eps")
