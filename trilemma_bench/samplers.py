"""Samplers as pure functions over one denoiser contract.

Contract (shared by every sampler, as in k-diffusion): ``sampler(model, x_T, *, ..., noise) -> x_0`` where
``model`` is a :class:`~trilemma_bench.denoisers.Denoiser`: ``model(x, t)`` predicts eps at index times
``t`` (shape ``[B]``, 0-based as in Ho et al.'s code) and ``model.alpha_bar`` is the float64 alpha-bar
table of its grid. Stochastic samplers draw through ``noise.randn_like(x)`` (per-image streams in
benchmarks, :mod:`trilemma_bench.noise`). Samplers never count network evaluations: wrap the network in
``CountingModel`` for that, so NFE is measured, not assumed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .denoisers import Denoiser, NoiseSource
from .schedules import posterior_coefficients_from_alpha_bar


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


Times = Sequence[float | None]  # index times, noisiest first; None is the data itself (alpha-bar = 1)


def uniform_times(num_train_steps: int, nfe: int, skip: str = "uniform") -> list[float | None]:
    """DDIM's schedule: its timestep subsequence, noisiest first, then the data (s = -1 in its code)."""
    return [*map(float, reversed(ddim_timesteps(num_train_steps, nfe, skip))), None]


def _alpha_bar(model: Denoiser, t: float | None) -> Tensor:
    return model.alpha_bar_at(t) if t is not None else torch.tensor(1.0, dtype=torch.float64)


@torch.no_grad()
def ddim_walk(model: Denoiser, x: Tensor, times: Times, *, eta: float = 0.0, clip_x0: bool = False,
              noise: NoiseSource | None = None) -> Tensor:
    """Song et al. 2021, Eq. 12: the generalized (eta) step from each time to the next; one call per step."""
    if eta > 0 and noise is None:
        raise ValueError("DDIM with eta > 0 is stochastic: pass a noise source")
    for t, s in itertools.pairwise(times):
        a_t, a_s = _alpha_bar(model, t), _alpha_bar(model, s)
        eps = model(x, _batch_time(t, x))
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        c1 = eta * ((1 - a_t / a_s) * (1 - a_s) / (1 - a_t)).sqrt()
        c2 = (1 - a_s - c1**2).clamp(min=0).sqrt()
        z = noise.randn_like(x) if eta > 0 else 0.0
        x = (a_s.sqrt() * x0 + c1 * z + c2 * eps).to(x.dtype)
    return x


def ddim_sample(model: Denoiser, x: Tensor, *, nfe: int, eta: float = 0.0, skip: str = "uniform",
                clip_x0: bool = False, noise: NoiseSource | None = None) -> Tensor:
    """DDIM as its paper's code runs it: :func:`ddim_walk` on :func:`uniform_times`."""
    if eta > 0 and noise is None:
        raise ValueError("DDIM with eta > 0 is stochastic: pass a noise source")
    return ddim_walk(model, x, uniform_times(model.num_steps, nfe, skip), eta=eta, clip_x0=clip_x0, noise=noise)


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
    post = posterior_coefficients_from_alpha_bar(a)
    a_prev, beta = torch.cat([a.new_ones(1), a[:-1]]), post["beta"]
    for i in reversed(range(len(steps))):
        eps = model(x, _batch_t(steps[i], x))
        x0 = (x - (1 - a[i]).sqrt() * eps) / a[i].sqrt()
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        # Posterior mean (Ho et al. Eq. 7) with one division of the sum, not post["x0"] * x0 + post["xt"] * x:
        # that rounds differently in x's dtype, and the samples are kept bit for bit.
        mean = (beta[i] * a_prev[i].sqrt() * x0 + (1 - a_prev[i]) * (1 - beta[i]).sqrt() * x) / (1 - a[i])
        if i == 0:
            x = mean.to(x.dtype)
            break
        var = beta[i] if variance == "fixedlarge" else post["variance"][i]
        x = (mean + var.sqrt() * noise.randn_like(x)).to(x.dtype)
    return x


def ddpm_respaced_timesteps(num_train_steps: int, nfe: int) -> list[int]:
    """Evenly spaced subsequence ending at T-1 for ancestral sampling with fewer steps."""
    if not 1 <= nfe <= num_train_steps:
        raise ValueError(f"nfe must be between 1 and {num_train_steps}, got {nfe}")
    return sorted({round(v) for v in np.linspace(0, num_train_steps - 1, nfe)})


# ------------------------------------------------------------------------------------------------
# ODE solvers: DPM-Solver++ (Lu et al. 2022) and EDM's Heun (Karras et al. 2022), on the same contract.
# Both need the schedule between grid points (fractional t) and its inverse; they use only
# ``model.alpha_bar_at``, so a continuous-time Denoiser that overrides it gets the same samplers.


def _batch_time(t: float, x: Tensor) -> Tensor:
    """t for every image: an integer index as DDPM was trained on (int64), a fractional one in float64."""
    if float(t).is_integer():
        return torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
    return torch.full((x.shape[0],), float(t), device=x.device, dtype=torch.float64)


def _alpha_sigma(model: Denoiser, t: float | None) -> tuple[float, float]:
    """(alpha, sigma) of x_t = alpha x0 + sigma eps at index time t; None is the data itself (1, 0)."""
    if t is None:
        return 1.0, 0.0
    a = float(model.alpha_bar_at(t))
    return a**0.5, (1 - a) ** 0.5


def time_at_alpha_bar(model: Denoiser, alpha_bar: Tensor | float) -> Tensor:
    """The index time where ``model.alpha_bar_at`` takes each value (clamped to the grid's ends).

    Uses only alpha_bar_at (all a Denoiser subclass provides), which decreases in t: the grid brackets each
    value between two timesteps, then regula falsi on log alpha_bar, which is exact in one step for the
    base Denoiser (log-linear between grid points) and converges fast for a smooth continuous schedule.
    """
    target = torch.as_tensor(alpha_bar, dtype=torch.float64).log()
    log_grid = model.alpha_bar_at(torch.arange(model.num_steps, dtype=torch.float64)).log()
    lo = ((log_grid >= target[..., None]).sum(-1) - 1).clamp(0, model.num_steps - 2).double()
    hi = lo + 1
    f_lo, f_hi = log_grid[lo.long()], log_grid[hi.long()]
    for _ in range(6):
        t = lo + ((f_lo - target) / (f_lo - f_hi)).nan_to_num(0.0).clamp(0, 1) * (hi - lo)
        f_t = model.alpha_bar_at(t).log()
        before = f_t >= target  # t is not yet as noisy as the answer
        lo, f_lo = torch.where(before, t, lo), torch.where(before, f_t, f_lo)
        hi, f_hi = torch.where(before, hi, t), torch.where(before, f_hi, f_t)
    return t


def _dpmpp_multistep(model: Denoiser, x: Tensor, times: Sequence[float | None], orders: Sequence[int]) -> Tensor:
    """Multistep DPM-Solver++ (Lu et al. 2022, arXiv:2211.01095) from times[0] to times[-1] (None: sigma = 0).

    With lambda = log(alpha / sigma), h = lambda_t - lambda_s and m_k the x0 predictions of the latest calls,
    step i of order orders[i] is x_t = (sigma_t / sigma_s) x_s - alpha_t (e^-h - 1) D, where D = m0 (order 1,
    DDIM), D = m0 + (m0 - m1) / (2 r0) (order 2, their Algorithm 2; r0 = h_prev / h), or for order 3 the
    official code's quadratic fit in lambda through m2, m1, m0, integrated exactly (phi_2, phi_3 terms).
    The last time is not evaluated: NFE = number of steps.
    """
    vp = [_alpha_sigma(model, t) for t in times]
    lam = [math.log(a / s) if s > 0 else math.inf for a, s in vp]
    m: list[Tensor] = []  # x0 predictions, newest last
    for i, order in enumerate(orders):
        if not 1 <= order <= min(i + 1, 3):
            raise ValueError(f"step {i} cannot be of order {order}: DPM-Solver++ orders are 1 to 3, at most i + 1")
        (a_s, s_s), (a_t, s_t) = vp[i], vp[i + 1]
        m = [*m[-2:], (x - s_s * model(x, _batch_time(times[i], x))) / a_s]
        if s_t == 0:
            if order != 1:
                raise ValueError("only a first-order step can reach sigma = 0")
            x = m[-1].to(x.dtype)  # the first-order step's limit: sigma_t / sigma_s -> 0, e^-h -> 0
            continue
        h = lam[i + 1] - lam[i]
        phi1 = math.expm1(-h)
        x_next = (s_t / s_s) * x - (a_t * phi1) * m[-1]
        if order >= 2:
            r0 = (lam[i] - lam[i - 1]) / h
            d1_0 = (m[-1] - m[-2]) / r0
        if order == 2:
            x_next = x_next - (0.5 * a_t * phi1) * d1_0
        elif order == 3:
            r1 = (lam[i - 1] - lam[i - 2]) / h
            d1_1 = (m[-2] - m[-3]) / r1
            d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            phi2 = phi1 / h + 1
            phi3 = phi2 / h - 0.5
            x_next = x_next + (a_t * phi2) * d1 - (a_t * phi3) * d2
        x = x_next.to(x.dtype)
    return x


def dpmpp_2m_timesteps(num_train_steps: int, nfe: int) -> list[int]:
    """diffusers' "linspace" spacing: round(linspace(0, K-1, nfe + 1)), reversed, the 0 dropped."""
    if not 1 <= nfe < num_train_steps:
        raise ValueError(f"nfe must be between 1 and {num_train_steps - 1} (distinct grid timesteps), got {nfe}")
    return [int(t) for t in np.linspace(0, num_train_steps - 1, nfe + 1).round()[::-1][:-1]]


def multistep_orders(times: Times, order: int) -> list[int]:
    """Orders of a multistep DPM-Solver++ walk: warming up (at most i + 1), lower orders at the end below 10 steps
    (the official ``lower_order_final``), and first order on a last step to sigma = 0 (its only possible one)."""
    steps = len(times) - 1
    orders = [min(i + 1, order, steps - i if steps < 10 else order) for i in range(steps)]
    if times[-1] is None:
        orders[-1] = 1
    return orders


@torch.no_grad()
def dpmpp_walk(model: Denoiser, x: Tensor, times: Times, *, order: int = 2) -> Tensor:
    """Multistep DPM-Solver++ of ``order`` (Lu et al. 2022) along ``times``; one call per step."""
    return _dpmpp_multistep(model, x, times, multistep_orders(times, order))


def dpmpp_2m_sample(model: Denoiser, x: Tensor, *, nfe: int) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) as diffusers' DPMSolverMultistepScheduler runs it by
    default: midpoint, linspace timesteps, final sigma 0; first and last steps first order (the last one
    returns the x0 prediction at round((K-1)/nfe)); NFE = nfe."""
    return dpmpp_walk(model, x, [*dpmpp_2m_timesteps(model.num_steps, nfe), None], order=2)


def logsnr_times(model: Denoiser, nfe: int) -> list[float]:
    """The official DPM-Solver's 'logSNR' skip type: lambda uniform from the grid's last index to its first
    (t = 1 down to t = 1/K in its discrete schedule's continuous time), mapped back to index times."""
    ends = model.alpha_bar_at(torch.tensor([model.num_steps - 1.0, 0.0]))
    lam = torch.linspace(*(0.5 * (ends.log() - (-ends).log1p())).tolist(), nfe + 1, dtype=torch.float64)
    t = time_at_alpha_bar(model, torch.sigmoid(2 * lam)).tolist()
    return [float(model.num_steps - 1), *t[1:-1], 0.0]  # the ends exactly, not as the bisection finds them


def dpmpp_3m_sample(model: Denoiser, x: Tensor, *, nfe: int) -> Tensor:
    """Multistep DPM-Solver++ of order 3 with logSNR spacing (Lu et al. 2022; the official dpm_solver_pytorch
    ``sample(method='multistep', order=3, skip_type='logSNR', lower_order_final=True)``): orders 1, 2, then 3;
    below 10 steps the last steps drop to order 2 then 1. Ends at index 0 (t = 1/K), not sigma 0; NFE = nfe."""
    if nfe < 3:
        raise ValueError(f"DPM-Solver++(3M) needs at least 3 steps (its order), got nfe={nfe}")
    return dpmpp_walk(model, x, logsnr_times(model, nfe), order=3)


def _sigma(alpha_bar: Tensor) -> Tensor:
    """EDM's noise level of a VP marginal: x / alpha = x0 + sigma n, sigma = sqrt((1 - alpha_bar) / alpha_bar)."""
    return ((1 - alpha_bar) / alpha_bar).sqrt()


def edm_sigmas(model: Denoiser, steps: int, *, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
               snap: bool = True) -> tuple[list[float], list[float | None]]:
    """Karras et al. 2022, Eq. 5: ``steps`` noise levels from sigma_max to sigma_min, then 0, the ends clamped
    to the network's own range (sigma at index 0 and K-1), as edm_sampler clamps to net.sigma_min/max.

    ``snap``: each level moves to the nearest sigma of the index grid and is evaluated at that timestep, as
    iDDPMPrecond's round_sigma does for a discrete network; otherwise the exact fractional time of each
    level (for continuous-time models, whose schedule between grid points is exact). Returns the levels
    and their index times (None for sigma = 0).
    """
    if steps < 2:
        raise ValueError(f"EDM's schedule needs at least 2 noise levels, got {steps}")
    lo, hi = _sigma(model.alpha_bar_at(torch.tensor([0.0, model.num_steps - 1.0]))).tolist()
    s_min, s_max = max(sigma_min, lo), min(sigma_max, hi)
    ramp = torch.arange(steps, dtype=torch.float64) / (steps - 1)
    sigmas = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    if snap:
        grid = _sigma(model.alpha_bar_at(torch.arange(model.num_steps, dtype=torch.float64)))
        idx = (sigmas[:, None] - grid[None]).abs().argmin(dim=1)
        sigmas, times = grid[idx], idx.double()
    else:
        times = time_at_alpha_bar(model, 1 / (1 + sigmas**2))
    return [*sigmas.tolist(), 0.0], [*times.tolist(), None]


def heun_sample(model: Denoiser, x: Tensor, *, nfe: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                rho: float = 7.0, snap: bool = True) -> Tensor:
    """Karras et al. 2022, Algorithm 1 (deterministic Heun, S_churn = 0) on EDM's schedule (:func:`edm_sigmas`).

    N noise levels make 2N - 1 calls (no correction on the last step, to sigma = 0), so ``nfe`` must be odd.
    """
    if nfe < 3 or nfe % 2 == 0:
        raise ValueError(f"Heun makes 2N - 1 network calls for N noise levels (N >= 2): ask for an odd NFE of "
                         f"at least 3 (e.g. {max(3, nfe - 1)} or {max(5, nfe + 1)}), got {nfe}")
    sigmas, times = edm_sigmas(model, (nfe + 1) // 2, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho, snap=snap)
    return heun_walk(model, x, times, sigmas=sigmas)


@torch.no_grad()
def heun_walk(model: Denoiser, x: Tensor, times: Times, *, sigmas: Sequence[float] | None = None) -> Tensor:
    """Karras et al. 2022, Algorithm 1 (deterministic Heun, S_churn = 0) along ``times``, on the eps network
    through the VP preconditioning D(x; sigma) = x - sigma eps(x / sqrt(1 + sigma^2), t(sigma)) of EDM's
    iDDPMPrecond; 2 calls per step but the last (no correction). ``sigmas``: the levels where the schedule
    knows them exactly (else each time's own). x is the standard normal x_T; Algorithm 1 starts from sigma_0 x_T.
    """
    if sigmas is None:
        sigmas = [float(_sigma(model.alpha_bar_at(t))) if t is not None else 0.0 for t in times]

    def slope(x: Tensor, i: int) -> Tensor:
        """dx/dsigma = (x - D(x; sigma_i)) / sigma_i, which the VP preconditioning makes eps itself."""
        return model(x / (1 + sigmas[i] ** 2) ** 0.5, _batch_time(times[i], x))

    x = x * sigmas[0]
    last = len(sigmas) - 2
    for i in range(len(sigmas) - 1):
        d = slope(x, i)
        x_next = x + (sigmas[i + 1] - sigmas[i]) * d  # Euler step
        if i < last:  # Heun's correction, except on the last step
            x_next = x + (sigmas[i + 1] - sigmas[i]) * (0.5 * d + 0.5 * slope(x_next, i + 1))
        x = x_next.to(x.dtype)
    return x
