"""VDM's continuous schedule as the project's one Denoiser, its ancestral sampler as a method, its schedule on disk.

VDM's ancestral step (model_vdm.py ``sample``), from t to s < t,

    z_s = sqrt(alpha_s^2 / alpha_t^2) (z_t - sigma_t c eps_hat) + sqrt((1 - alpha_s^2) c) eps,  c = -expm1(gamma_s - gamma_t),

is DDPM's posterior q(z_s | z_t, x0_hat) with the beta-tilde variance (with a = alpha^2 and beta = 1 - a_t/a_s,
c = beta / (1 - a_t), so (1 - a_s) c = beta-tilde), so it runs as ``samplers.ddpm_sample(variance="fixedsmall",
clip_x0=False)`` on a subsequence uniform in t of the index grid t_k = (k + 1)/K (tests/test_vdm.py checks this
step by step against the formula). The last step differs: the official sampler steps to t = 0 (noise of
std sigma_0 sqrt(c) ~ 1.3e-3 at gamma_0 = -13.3) and takes the decoder's argmax; ``ddpm_sample`` steps to
alpha = 1, returning x0_hat at t = 1/T, and the decoder's argmax follows. The two differ by
sigma_t (SNR_t / SNR_0) eps_hat / alpha_t plus that noise, below the decoder's resolution (a bin is 2/V wide).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from .. import samplers
from ..denoisers import NoiseSource
from .base import Method
from .solvers import solver_methods
from .vdm import VDM
from .vdm_denoiser import GRID, vdm_denoiser


def ancestral_steps(nfe: int) -> tuple[int, list[int]]:
    """(K, index steps) for T = nfe ancestral steps uniform in t: t = i/T, i = 1..T, on a grid of K >= 1000 points
    that T divides (K = 1000 for every T that divides 1000)."""
    if nfe < 1:
        raise ValueError(f"VDM's ancestral sampler takes T >= 1 steps (NFE = T), got nfe={nfe}")
    num_steps = nfe * math.ceil(GRID / nfe)
    stride = num_steps // nfe
    return num_steps, list(range(stride - 1, num_steps, stride))


def _ancestral(net: nn.Module, model: VDM, x: Tensor, nfe: int, noise: NoiseSource) -> Tensor:
    num_steps, steps = ancestral_steps(nfe)
    x0 = samplers.ddpm_sample(vdm_denoiser(net, model, num_steps), x, timesteps=steps, variance="fixedsmall",
                              clip_x0=False, noise=noise)
    return model.decode(x0)


VDM_METHODS: list[Method] = [
    Method("vdm", "vdm", "ancestral-fixedsmall-uniform-t-argmax", _ancestral, (10, 20, 50, 100, 1000),
           "Kingma et al. 2021 ancestral sampling from the learned gamma, T steps uniform in t (DDPM's posterior "
           "with the beta-tilde variance), the last to alpha = 1, then the decoder's most likely level", likelihood="vdm"),
    # The ODE solvers on VDM's network, at exact continuous times; they end at the x0 prediction, which the
    # decoder maps to its most likely level (VDM's samples are bin centres, not the data's own encoding).
    *solver_methods("vdm", lambda net, model: vdm_denoiser(net, model), prefix="vdm-", discrete=False,
                    finish=lambda model, x: model.decode(x)),
]


