"""Latent diffusion's methods: every sampler of the DDPM network (ancestral, DDIM, DPM-Solver++, Heun) on the
latent model, its latents then decoded (timed apart).

Each pixel-space DDPM method becomes a latent one with the same sampler function: no sampler code exists for
latents. The latent model says ``clip_x0=False``, which the ancestral samplers read from it (DDIM never clips).

One method per (f, sampler), ``ldm-f<f>-<sampler>``: rows of different f then stand apart in every table and
plot, which group by method, and the model column (``ldm-f<f>``) says it again. ``ldm-ddim`` and the others
without an f are short names for the default f (:data:`ALIASES`); their rows carry the full name.
"""

from __future__ import annotations

import dataclasses

from .base import Method, ModelSpec
from .ddpm_samplers import DDPM_METHODS
from .solvers import DDPM_SOLVER_METHODS

# Downsampling factor -> latent channels. Channels grow with f (the reference's f4 has 3, f8 4) but slower than
# f^2, so a larger f keeps fewer numbers per image: 1x, 1/2 and 1/4 of a 1-channel image's pixels.
FACTORS: dict[int, int] = {1: 1, 2: 2, 4: 4}
DEFAULT_F = 2


def latent_spec(f: int) -> ModelSpec:
    if f not in FACTORS:
        raise ValueError(f"no latent configuration for f={f}: choose one of {sorted(FACTORS)}")
    return ModelSpec("ldm", {"f": f, "channels": FACTORS[f]}, tag=f"ldm-f{f}")


def latent_methods(f: int, pixel_methods: list[Method]) -> list[Method]:
    """The latent counterpart of each pixel-space DDPM method, at downsampling factor ``f``."""
    spec = latent_spec(f)
    return [
        dataclasses.replace(
            m, name=f"ldm-f{f}-{m.name}", model="ldm", variant=lambda nfe, spec=spec: spec,
            decoder=lambda model: model.decoder(),
            likelihood=None,  # DDPM's bound here would be of latents, not of images: no bits/dim for latent models
            description=f"latent diffusion (Rombach et al. 2022), f={f}, {FACTORS[f]} latent channels, x0 not "
                        f"clipped, then decoded; sampler of `{m.name}`: {m.description}",
        )
        for m in pixel_methods
    ]


# The ancestral samplers, DDIM and the ODE solvers (DPM-Solver++, Heun): the latent model is a DDPM on latents.
PIXEL_METHODS: list[Method] = [*DDPM_METHODS, *DDPM_SOLVER_METHODS]
LDM_METHODS: list[Method] = [m for f in FACTORS for m in latent_methods(f, PIXEL_METHODS)]
ALIASES: dict[str, str] = {f"ldm-{m.name}": f"ldm-f{DEFAULT_F}-{m.name}" for m in PIXEL_METHODS}
