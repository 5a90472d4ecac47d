"""The ODE solvers users pick today, as methods on any trained eps model: DPM-Solver++ (2M as diffusers runs
it, 3M with logSNR spacing as the official code recommends for unconditional models) and EDM's Heun.

Samplers are written once (:mod:`trilemma_bench.samplers`) on the Denoiser contract; a model gets them by
naming itself and how its network becomes a Denoiser: ``solver_methods("vdm", vdm_denoiser, prefix="vdm-",
discrete=False)``. Every setting a row depends on is in its ``sampler`` string.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from torch import Tensor, nn

from .. import samplers
from ..denoisers import Denoiser, NoiseSource, eps_denoiser
from .base import Method, SampleFn

DenoiserFn = Callable[[nn.Module, L.LightningModule], Denoiser]
FinishFn = Callable[[L.LightningModule, Tensor], Tensor]

# Budgets users compare these solvers at (the DPM-Solver papers report 10 to 20 NFE; 50 is near convergence).
# Heun makes 2N - 1 calls: 9 and 11 bracket 10, 19 and 21 bracket 20, 35 is EDM's N = 18.
DPMPP_NFE = (5, 10, 15, 20, 50)
HEUN_NFE = (5, 9, 11, 19, 21, 35, 49)
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0


def _with(denoiser_fn: DenoiserFn, run: Callable[[Denoiser, Tensor, int], Tensor], finish: FinishFn | None) -> SampleFn:
    def sample(net: nn.Module, model: L.LightningModule, x: Tensor, nfe: int, noise: NoiseSource) -> Tensor:
        out = run(denoiser_fn(net, model), x, nfe)  # deterministic: the noise source is never drawn from
        return out if finish is None else finish(model, out)

    return sample


def solver_methods(model_name: str, denoiser_fn: DenoiserFn, *, prefix: str = "", discrete: bool = True,
                   finish: FinishFn | None = None) -> list[Method]:
    """DPM-Solver++(2M), DPM-Solver++(3M, logSNR) and EDM Heun on ``model_name``'s network.

    ``finish(model, x0)`` maps the solver's end point to samples where the model has a last step of its own
    (VDM's decoder takes the most likely pixel level).

    ``discrete``: the network was trained on the integer timesteps of its grid, so Heun evaluates each noise
    level at the nearest one (iDDPMPrecond); a continuous-time model is evaluated at the exact time instead.
    The DPM-Solver++ variants follow their references: 2M on diffusers' integer timesteps, 3M at the
    fractional times of its logSNR grid (the official code feeds discrete models fractional times too).
    """
    t_rule = "nearest-t" if discrete else "exact-t"

    def heun(model: Denoiser, x: Tensor, nfe: int) -> Tensor:
        return samplers.heun_sample(model, x, nfe=nfe, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, rho=RHO, snap=discrete)

    return [
        Method(f"{prefix}dpmpp-2m", model_name, "dpmpp-2m-midpoint-linspace-lof-sigma0",
               _with(denoiser_fn, lambda m, x, nfe: samplers.dpmpp_2m_sample(m, x, nfe=nfe), finish), DPMPP_NFE,
               "DPM-Solver++(2M) (Lu et al. 2022) as diffusers' DPMSolverMultistepScheduler runs it by default: "
               "midpoint, linspace timesteps from T-1, first and last steps first order, final sigma 0",
               solver="dpmpp-2m", schedule="linspace"),
        Method(f"{prefix}dpmpp-3m-logsnr", model_name, "dpmpp-3m-logsnr-lof10-end-t0",
               _with(denoiser_fn, lambda m, x, nfe: samplers.dpmpp_3m_sample(m, x, nfe=nfe), finish), DPMPP_NFE,
               "multistep DPM-Solver++ of order 3, logSNR spacing, lower orders at the end below 10 steps, "
               "ending at the grid's first timestep (t = 1/K) as the official dpm-solver code does",
               solver="dpmpp-3m", schedule="logsnr"),
        Method(f"{prefix}heun", model_name, f"heun-edm-rho{RHO:g}-sigma{SIGMA_MIN:g}-{SIGMA_MAX:g}-clamped-churn0-{t_rule}",
               _with(denoiser_fn, heun, finish), HEUN_NFE,
               "EDM (Karras et al. 2022) Algorithm 1, deterministic Heun, rho = 7, sigma 0.002..80 clamped to the "
               "network's range, through the VP preconditioning of iDDPMPrecond; NFE = 2N - 1 (odd only)",
               solver="heun", schedule="edm"),
    ]


def _ddpm_denoiser(net: nn.Module, model: L.LightningModule) -> Denoiser:
    return eps_denoiser(net, model.alpha_bar)


DDPM_SOLVER_METHODS: list[Method] = solver_methods("ddpm", _ddpm_denoiser)
