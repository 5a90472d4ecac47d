"""One network package: every method builds its networks here, from a plain config dict."""

from __future__ import annotations

from typing import Any

from torch import nn

from .autoencoder import KLAutoencoder
from .discriminator import Discriminator, MLPDiscriminator
from .mlp import MLPDenoiser
from .unet import UNet

__all__ = ["Discriminator", "KLAutoencoder", "MLPDenoiser", "MLPDiscriminator", "UNet", "build_net", "count_params"]

_NETS: dict[str, type[nn.Module]] = {"unet": UNet, "mlp": MLPDenoiser, "discriminator": Discriminator,
                                     "mlp_discriminator": MLPDiscriminator, "kl-autoencoder": KLAutoencoder}


def build_net(config: dict[str, Any]) -> nn.Module:
    """Build from ``{"type": <a key of _NETS>, **kwargs}``; an explicit registry, never ``globals()``."""
    kwargs = dict(config)
    kind = kwargs.pop("type", None)
    if kind not in _NETS:
        raise ValueError(f"unknown network type {kind!r}: choose one of {sorted(_NETS)}")
    return _NETS[kind](**kwargs)


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
