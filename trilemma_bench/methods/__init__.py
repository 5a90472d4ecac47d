"""Methods: a trained model (what `train` makes) plus the sampler that turns it into images.

A method that is only a sampler (DDIM, later DPM-Solver++ and Heun) names the model it reuses, so the
DDPM network is trained once and shared. A method whose NFE is a property of the model (DDGAN: one
generator per number of denoising steps T) maps each NFE to a variant of its model, trained and
checkpointed on its own (:meth:`Method.spec_for`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightning as L
from torch import Tensor, nn

from .. import samplers
from ..denoisers import NoiseSource, eps_denoiser
from .ddpm import DDPM

# Trainable models by name: an explicit registry.
MODELS: dict[str, type[L.LightningModule]] = {"ddpm": DDPM}

SampleFn = Callable[[nn.Module, L.LightningModule, Tensor, int, NoiseSource], Tensor]


def _ancestral(variance: str) -> SampleFn:
    def sample(net: nn.Module, model: DDPM, x: Tensor, nfe: int, noise: NoiseSource) -> Tensor:
        T = model.hparams.num_train_timesteps
        steps = None if nfe == T else samplers.ddpm_respaced_timesteps(T, nfe)
        return samplers.ddpm_sample(eps_denoiser(net, model.alpha_bar), x, timesteps=steps, variance=variance,
                                    clip_x0=model.hparams.clip_x0, noise=noise)

    return sample


def _ddim(net: nn.Module, model: DDPM, x: Tensor, nfe: int, noise: NoiseSource) -> Tensor:
    # No x0 clipping, as in Song et al.'s code (generalized_steps): clipping x0 but stepping with the
    # unclipped eps moves x off the ODE path at every step, more so with more steps. On digits (seed 0,
    # 1000 samples) FID was 2.52 at 50 NFE and 4.13 at 100 with clipping, 1.34 and 1.17 without.
    return samplers.ddim_sample(eps_denoiser(net, model.alpha_bar), x, nfe=nfe, eta=0.0, skip="uniform",
                                clip_x0=False, noise=noise)


@dataclass(frozen=True)
class ModelSpec:
    """A trainable model and the options that make a variant of it (DDGAN's T); ``tag`` names its checkpoint."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    tag: str = ""

    def __post_init__(self) -> None:
        if not self.tag:
            object.__setattr__(self, "tag", self.name)

    def __hash__(self) -> int:
        return hash(self.tag)


@dataclass(frozen=True)
class Method:
    name: str
    model: str                 # key of MODELS whose checkpoint it samples from
    sampler: str               # recorded in the results table
    sample_fn: SampleFn
    default_nfe: tuple[int, ...]
    description: str
    # NFE -> the model variant that samples at it; None: one model serves every NFE.
    variant: Callable[[int], ModelSpec] | None = None

    def spec_for(self, nfe: int) -> ModelSpec:
        return self.variant(nfe) if self.variant is not None else ModelSpec(self.model)

    def sample(self, model: L.LightningModule, x_T: Tensor, nfe: int, *, noise: NoiseSource,
               net: nn.Module | None = None) -> Tensor:
        """Draw samples from x_T with `nfe` network evaluations, stochastic steps drawing from `noise`;
        pass `net` to wrap (count, compile) the network."""
        return self.sample_fn(net if net is not None else model.denoiser(), model, x_T, nfe, noise)


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("ddpm-fixedlarge", "ddpm", "ancestral-fixedlarge", _ancestral("fixedlarge"), (10, 20, 50, 100, 1000),
               "Ho et al. 2020 ancestral sampling, sigma^2 = beta (their CIFAR-10 choice), respaced below T steps "
               "(Nichol & Dhariwal 2021): the DDIM paper's sigma-hat row, noisy at few steps"),
        Method("ddpm-fixedsmall", "ddpm", "ancestral-fixedsmall", _ancestral("fixedsmall"), (10, 20, 50, 100, 1000),
               "Ho et al. 2020 ancestral sampling, sigma^2 = the posterior variance beta-tilde, respaced below T "
               "steps: the fair few-step ancestral baseline (DDIM with eta = 1 on the same subsequence, x0 clipped)"),
        Method("ddim", "ddpm", "ddim-eta0-uniform", _ddim, (10, 20, 50, 100),
               "Song et al. 2021 deterministic DDIM (eta=0, uniform skip) on the DDPM network"),
    ]
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        hint = ""
        if name in MODELS:
            samplers_of = [m.name for m in METHODS.values() if m.model == name]
            hint = f" ({name!r} is a model; its methods are {', '.join(samplers_of)})"
        raise ValueError(f"unknown method {name!r}{hint}: choose one of {', '.join(METHODS)}")
    return METHODS[name]
