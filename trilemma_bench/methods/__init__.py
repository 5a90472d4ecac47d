"""Methods: a trained model (what `train` makes) plus the sampler that turns it into images.

A method that is only a sampler (DDIM, later DPM-Solver++ and Heun) names the model it reuses, so the
DDPM network is trained once and shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import torch
from torch import Tensor, nn

from .. import samplers
from .ddpm import DDPM

# Trainable models by name: an explicit registry.
MODELS: dict[str, type[L.LightningModule]] = {"ddpm": DDPM}

SampleFn = Callable[[nn.Module, L.LightningModule, Tensor, int, torch.Generator | None], Tensor]


def _ddpm_ancestral(net: nn.Module, model: DDPM, x: Tensor, nfe: int, generator: torch.Generator | None) -> Tensor:
    T = model.hparams.num_train_timesteps
    steps = None if nfe == T else samplers.ddpm_respaced_timesteps(T, nfe)
    return samplers.ddpm_sample(net, model.alpha_bar, x, timesteps=steps, variance="fixedlarge", clip_x0=model.hparams.clip_x0,
                                generator=generator)


def _ddim(net: nn.Module, model: DDPM, x: Tensor, nfe: int, generator: torch.Generator | None) -> Tensor:
    # No x0 clipping, as in Song et al.'s code (generalized_steps): clipping x0 but stepping with the
    # unclipped eps moves x off the ODE path at every step, more so with more steps. On digits (seed 0,
    # 1000 samples) FID was 2.52 at 50 NFE and 4.13 at 100 with clipping, 1.34 and 1.17 without.
    return samplers.ddim_sample(net, model.alpha_bar, x, nfe=nfe, eta=0.0, skip="uniform",
                                clip_x0=False, generator=generator)


@dataclass(frozen=True)
class Method:
    name: str
    model: str                 # key of MODELS whose checkpoint it samples from
    sampler: str               # recorded in the results table
    sample_fn: SampleFn
    default_nfe: tuple[int, ...]
    description: str

    def sample(self, model: L.LightningModule, x_T: Tensor, nfe: int, *, net: nn.Module | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Draw samples from x_T with `nfe` network evaluations; pass `net` to wrap (count, compile) the network."""
        return self.sample_fn(net if net is not None else model.denoiser(), model, x_T, nfe, generator)


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("ddpm", "ddpm", "ancestral-fixedlarge", _ddpm_ancestral, (10, 20, 50, 100, 1000),
               "Ho et al. 2020 ancestral sampling, respaced below T steps (Nichol & Dhariwal 2021)"),
        Method("ddim", "ddpm", "ddim-eta0-uniform", _ddim, (10, 20, 50, 100),
               "Song et al. 2021 deterministic DDIM (eta=0, uniform skip) on the DDPM network"),
    ]
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}")
    return METHODS[name]
