"""A method made of a network, a solver and a schedule: ``bench --method ddim --solver heun --schedule logsnr`` runs
Heun on the logSNR times over the network ``ddim`` samples (the digits DDPM), ``--model`` a network of your own.

The network comes in through the model contract (``as_denoiser``, ``finish``: :class:`~trilemma_bench.weights.
ShipsWeights`), so every model that presents an eps denoiser (DDPM, VDM, the latent models, a diffusers UNet) takes
every solver on every schedule, and the method's decoder (latent models) stays as it was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import lightning as L
from torch import Tensor, nn

from ..denoisers import NoiseSource
from ..solver_schedule import SOLVERS, check_times, resolve_schedule, resolve_solver
from .base import Method, SampleFn

Ref = str | Callable[..., Any]  # a name, module:function, or (from Python) the function itself

COMPOSED_NFE = (5, 10, 20, 50)


def _label(ref: str) -> str:
    """A short name for a solver or schedule: its own name, or a plug-in's function name."""
    return ref.rpartition(":")[2].rpartition(".")[2]


def _sampler(solver: Ref, schedule: Ref | None) -> tuple[SampleFn, str, str]:
    solver_ref, walker = resolve_solver(solver)
    schedule_ref, times_of = resolve_schedule(schedule or walker.default_schedule)

    def sample(net: nn.Module, model: L.LightningModule, x: Tensor, nfe: int, noise: NoiseSource) -> Tensor:
        denoiser = model.as_denoiser(net)
        times = check_times(times_of(denoiser, walker.steps(nfe)), denoiser, schedule_ref)
        out = walker.walk(denoiser, x, times)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"solver {solver_ref!r} returned {got}: expected a tensor of x's shape {tuple(x.shape)}")
        return model.finish(out)

    return sample, solver_ref, schedule_ref


def solver_method(base: Method, solver: Ref | None, schedule: Ref | None) -> Method:
    """``base``'s network (its model, variant and decoder) sampled by ``solver`` on ``schedule`` (default: the
    solver's own, or ``base``'s solver on another schedule when only ``schedule`` is given)."""
    if solver is None:
        if not base.solver:
            raise ValueError(f"method {base.name!r} is not a solver on a schedule ({base.sampler}): give --solver too "
                             f"({', '.join(SOLVERS)})")
        solver = base.solver
    sample, solver_ref, schedule_ref = _sampler(solver, schedule)
    tag = base.spec_for(base.default_nfe[0]).tag
    prefix = "" if tag == "ddpm" else f"{tag}-"
    name = f"{prefix}{_label(solver_ref)}@{_label(schedule_ref)}"
    return dataclasses.replace(
        base, name=name, sampler=f"solver-{solver_ref}-schedule-{schedule_ref}", sample_fn=sample,
        default_nfe=COMPOSED_NFE, solver=solver_ref, schedule=schedule_ref, likelihood=None,
        description=f"solver {solver_ref} on schedule {schedule_ref}, over the network of `{base.name}`")


def model_method(label: str, solver: Ref | None, schedule: Ref | None) -> Method:
    """A network given from outside (``--model``): ``solver`` (default DDIM) on ``schedule``."""
    sample, solver_ref, schedule_ref = _sampler(solver or "ddim", schedule)
    return Method(f"{label}-{_label(solver_ref)}@{_label(schedule_ref)}", label,
                  f"solver-{solver_ref}-schedule-{schedule_ref}", sample, COMPOSED_NFE,
                  f"solver {solver_ref} on schedule {schedule_ref}, over the network {label}",
                  solver=solver_ref, schedule=schedule_ref)
