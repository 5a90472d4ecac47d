"""Noise schedules: DDPM beta schedules, alpha-bar and log-SNR helpers; VDM's gamma schedules.

Schedules are built in float64 (as in Ho et al.'s code) because 1 - alpha_bar near t=0 and
alpha_bar near t=T lose digits in float32; samplers cast per step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


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


# ------------------------------------------------------------------------------------------------
# VDM's noise schedules (Kingma et al. 2021): gamma(t) = -log SNR(t) on t in [0, 1], increasing, with
# sigma^2 = sigmoid(gamma) and alpha^2 = sigmoid(-gamma). The three kinds of google-research/vdm's
# model_vdm.py; the learnable ones are trained by the bound itself, endpoints included (the code's choice,
# not the paper's App. I.2 normalisation between separately learned endpoints).

GAMMA_MIN, GAMMA_MAX = -13.3, 5.0  # the official configs' initial endpoints: SNR from e^13.3 down to e^-5
GAMMA_TYPES = ("fixed", "learnable_scalar", "learnable_nnet")


class FixedLinearGamma(nn.Module):
    """gamma(t) = gamma_min + (gamma_max - gamma_min) t, nothing learned."""

    def __init__(self, gamma_min: float = GAMMA_MIN, gamma_max: float = GAMMA_MAX):
        super().__init__()
        self.gamma_min, self.gamma_max = float(gamma_min), float(gamma_max)

    def forward(self, t: Tensor) -> Tensor:
        return self.gamma_min + (self.gamma_max - self.gamma_min) * t


class LearnableScalarGamma(nn.Module):
    """gamma(t) = b + |w| t, initialised at the endpoints: the official CIFAR-10 run's schedule."""

    def __init__(self, gamma_min: float = GAMMA_MIN, gamma_max: float = GAMMA_MAX):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([gamma_max - gamma_min]))
        self.b = nn.Parameter(torch.tensor([gamma_min]))

    def forward(self, t: Tensor) -> Tensor:
        return (self.b + self.w.abs() * t).reshape(t.shape)


class MonotoneLinear(nn.Linear):
    """A dense layer whose weights are used through abs(): non-decreasing in every input."""

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight.abs(), self.bias)


class LearnableNNetGamma(nn.Module):
    """gamma(t) = l1(t) + l3(phi(l2(2t - 1))) / n with phi = 2 sigmoid - 1 and every weight through abs().

    l1 (1 -> 1) starts as the fixed linear schedule; l2 (1 -> n, with bias) and l3 (n -> 1, no bias) start
    from N(0, 0.01^2) weights (flax's default ``normal()``), so the learned shape starts near-linear.
    """

    def __init__(self, gamma_min: float = GAMMA_MIN, gamma_max: float = GAMMA_MAX, n_features: int = 1024):
        super().__init__()
        self.n_features = n_features
        self.l1 = MonotoneLinear(1, 1)
        self.l2 = MonotoneLinear(1, n_features)
        self.l3 = MonotoneLinear(n_features, 1, bias=False)
        with torch.no_grad():
            self.l1.weight.fill_(gamma_max - gamma_min)
            self.l1.bias.fill_(gamma_min)
            nn.init.normal_(self.l2.weight, std=0.01)
            nn.init.zeros_(self.l2.bias)
            nn.init.normal_(self.l3.weight, std=0.01)

    def forward(self, t: Tensor) -> Tensor:
        flat = t.reshape(-1, 1).to(self.l1.weight.dtype)
        h = 2 * torch.sigmoid(self.l2(2 * flat - 1)) - 1  # phi = 2 sigmoid - 1 on inputs scaled to [-1, 1]
        return (self.l1(flat) + self.l3(h) / self.n_features).reshape(t.shape)


def make_gamma(kind: str, gamma_min: float = GAMMA_MIN, gamma_max: float = GAMMA_MAX) -> nn.Module:
    """VDM's gamma schedule by name (``fixed``, ``learnable_scalar`` or ``learnable_nnet``)."""
    if kind == "fixed":
        return FixedLinearGamma(gamma_min, gamma_max)
    if kind == "learnable_scalar":
        return LearnableScalarGamma(gamma_min, gamma_max)
    if kind == "learnable_nnet":
        return LearnableNNetGamma(gamma_min, gamma_max)
    raise ValueError(f"unknown VDM gamma schedule {kind!r}: use one of {', '.join(GAMMA_TYPES)}")

# DDGAN's discrete VP schedule (Xiao et al. 2022, official train_ddgan.py get_sigma_schedule): T steps on the
# time grid t_k = t_min + (1 - t_min) k / T, k = 0..T, with t_min = 1e-3 (their eps_small).
DDGAN_T_MIN = 1e-3
DDGAN_MAX_STEPS = 1000


def ddgan_time_grid(num_steps: int, t_min: float = DDGAN_T_MIN) -> Tensor:
    """t_k = t_min + (1 - t_min) k / T for k = 0..T, in float64."""
    check_ddgan_steps(num_steps)
    return t_min + (1 - t_min) * torch.arange(num_steps + 1, dtype=torch.float64) / num_steps


def check_ddgan_steps(num_steps: object) -> int:
    """T must be an integer in [1, DDGAN_MAX_STEPS]. The schedule itself is sound for any positive T (betas
    stay representable in float32 until T ~ 1e6), but past the paper's T <= 8 each step's denoising
    distribution is nearly Gaussian, so the GAN buys nothing over an ancestral sampler while costing T calls
    per image and a model per T; the cap is the largest T of the project's diffusion models (DDPM's 1000),
    for which the shared networks' integer time embedding is built."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or not 1 <= num_steps <= DDGAN_MAX_STEPS:
        raise ValueError(
            f"DDGAN's number of denoising steps T (= its NFE) must be an integer from 1 to {DDGAN_MAX_STEPS}, "
            f"got {num_steps!r}; the paper trains T = 1, 2, 4 (its default) or 8"
        )
    return num_steps


def ddgan_betas(num_steps: int, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = DDGAN_T_MIN) -> Tensor:
    """beta_k = 1 - alpha_bar(t_k) / alpha_bar(t_{k-1}) of the VP-SDE on DDGAN's grid, k = 1..T, cast to
    float32 as the official code does (its extra 1e-8 beta at k = 0 only pads the table)."""
    a = vp_sde_alpha_bar(ddgan_time_grid(num_steps, t_min), beta_min, beta_max)
    return (1 - a[1:] / a[:-1]).float()


def posterior_coefficients(betas: Tensor) -> dict[str, Tensor]:
    """q(x_{t-1} | x_t, x_0) = N(c0 x_0 + ct x_t, var) per step t = 0..T-1 (Ho et al. 2020, Eqs. 6-7),
    in float64 from ``betas``: ``x0`` (c0), ``xt`` (ct), ``variance`` (beta-tilde) and ``beta`` (the betas, as
    float64); step 0 returns x_0."""
    beta = betas.double()
    a = torch.cumprod(1 - beta, dim=0)
    # The betas as given, not recovered from alpha_bar: 1 - a_t / a_{t-1} differs from them in the last bits.
    return _posterior(beta, a, _previous(a))


def posterior_coefficients_from_alpha_bar(alpha_bar: Tensor) -> dict[str, Tensor]:
    """:func:`posterior_coefficients` of a chain given by its alpha_bar (float64, on ``alpha_bar``'s device),
    beta_t = 1 - a_t / a_{t-1}: a respaced subsequence's betas (Nichol & Dhariwal 2021, Sec. 4) are only
    defined so."""
    a = alpha_bar.double()
    a_prev = _previous(a)
    return _posterior(1 - a / a_prev, a, a_prev)


def _previous(a: Tensor) -> Tensor:
    """a_{t-1} per step; a_{-1} = 1 (x_{-1} is x_0)."""
    return torch.cat([a.new_ones(1), a[:-1]])


def _posterior(beta: Tensor, a: Tensor, a_prev: Tensor) -> dict[str, Tensor]:
    # Ho et al. Eqs. 6-7 in one place: DDGAN's training, DDPM's sampler and its likelihood bound must agree on them.
    return {
        "x0": beta * a_prev.sqrt() / (1 - a),
        "xt": (1 - a_prev) * (1 - beta).sqrt() / (1 - a),
        "variance": beta * (1 - a_prev) / (1 - a),
        "beta": beta,
    }
