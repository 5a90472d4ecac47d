"""What every method is: a model to train (or reuse) and a sampler over it, with the model variant per NFE."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightning as L
from torch import Tensor, nn

from ..denoisers import NoiseSource

SampleFn = Callable[[nn.Module, L.LightningModule, Tensor, int, NoiseSource], Tensor]


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
    # For methods that sample in a latent space: model -> the network that maps samples to images. The
    # harness times it apart from the sampler, by the same protocol, and counts its FLOPs.
    decoder: Callable[[L.LightningModule], nn.Module] | None = None
    # The variational bound the method's model and decoder define ("vdm", or DDPM's "fixedlarge"/"fixedsmall"
    # discretized decoder): its bits/dim join the rows. None: the method has no likelihood.
    likelihood: str | None = None
    # The solver and schedule it pairs (``trilemma_bench.solver_schedule``), where its sampler is one walk along a
    # schedule's times; "" for the ancestral samplers and DDGAN, whose steps are their own.
    solver: str = ""
    schedule: str = ""

    def spec_for(self, nfe: int) -> ModelSpec:
        return self.variant(nfe) if self.variant is not None else ModelSpec(self.model)

    def sample(self, model: L.LightningModule, x_T: Tensor, nfe: int, *, noise: NoiseSource,
               net: nn.Module | None = None) -> Tensor:
        """Draw samples from x_T with `nfe` network evaluations, stochastic steps drawing from `noise`;
        pass `net` to wrap (count, compile) the network. Latent methods return latents (see ``decoder``)."""
        return self.sample_fn(net if net is not None else model.denoiser(), model, x_T, nfe, noise)
