"""Methods: a trained model (what `train` makes) plus the sampler that turns it into images.

A method that is only a sampler (DDIM, DPM-Solver++, Heun) names the model it reuses, so the
DDPM network is trained once and shared. A method whose NFE is a property of the model (DDGAN: one
generator per number of denoising steps T) maps each NFE to a variant of its model, trained and
checkpointed on its own (:meth:`Method.spec_for`). Each model's module lists its methods; this file
only collects them.
"""

from __future__ import annotations

import lightning as L

from .autoencoder import Autoencoder
from .base import Method, ModelSpec, SampleFn
from .ddgan import DDGAN, DDGAN_METHODS
from .ddpm import DDPM
from .ddpm_samplers import DDPM_METHODS
from .latent import LatentDiffusion
from .latent_samplers import ALIASES as LDM_ALIASES
from .latent_samplers import LDM_METHODS
from .plugins import load_plugins
from .plugins import register_method as _register
from .solvers import DDPM_SOLVER_METHODS
from .vdm import VDM
from .vdm_samplers import VDM_METHODS

__all__ = ["METHODS", "MODELS", "PLUGINS", "Method", "ModelSpec", "SampleFn", "get_method", "register_method"]

# Trainable models by name: an explicit registry.
MODELS: dict[str, type[L.LightningModule]] = {"ddpm": DDPM, "vdm": VDM, "ddgan": DDGAN, "kl-ae": Autoencoder,
                                              "ldm": LatentDiffusion}

METHODS: dict[str, Method] = {
    m.name: m for m in [*DDPM_METHODS, *DDPM_SOLVER_METHODS, *VDM_METHODS, *DDGAN_METHODS, *LDM_METHODS]
}
PLUGINS: list[str] = load_plugins(METHODS, MODELS)  # installed packages' methods and models (entry points)


def register_method(method: Method) -> None:
    """Add your own method (a sampler over a registered model) for this process: ``bench`` and the API find it."""
    _register(method, METHODS, MODELS)


# Short names of a family's default variant (`ldm-ddim` runs `ldm-f2-ddim`); rows carry the full name.
ALIASES: dict[str, str] = {**LDM_ALIASES}


def get_method(name: str) -> Method:
    name = ALIASES.get(name, name)
    if name not in METHODS:
        hint = ""
        if name in MODELS:
            samplers_of = [m.name for m in METHODS.values() if m.model == name]
            hint = f" ({name!r} is a model; its methods are {', '.join(samplers_of)})"
        raise ValueError(f"unknown method {name!r}{hint}: choose one of {', '.join(METHODS)}")
    return METHODS[name]
