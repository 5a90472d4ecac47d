"""Input validation shared by the metric functions.

Every check raises ``ValueError`` with a message that names the argument, says what is wrong and how to
fix it, so a bad feature tensor fails at the metric's door rather than deep inside a matrix routine.
"""

from __future__ import annotations

import torch
from torch import Tensor


def as_features(x: object, name: str) -> Tensor:
    """Return ``x`` as a 2-D floating tensor (N samples x D features), or raise ``ValueError``."""
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"`{name}` must be a tensor of features (N x D); got {type(x).__name__}"
            ) from err
    if x.dim() != 2:
        raise ValueError(
            f"`{name}` must be 2-D (N samples x D features); got shape {tuple(x.shape)}. "
            "Flatten per-sample features with x.flatten(1), or add a batch axis with x[None]."
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"`{name}` is empty: shape {tuple(x.shape)}; pass at least one sample and one feature"
        )
    if not x.is_floating_point():
        # Integer features are legitimate (e.g. quantized codes); compare them as floats.
        x = x.to(torch.float32)
    check_finite(x, name)
    return x


def check_finite(x: Tensor, name: str) -> None:
    """Raise if ``x`` holds NaN or Inf, saying how many and where the first one is."""
    finite = torch.isfinite(x)
    if bool(finite.all()):
        return
    bad = ~finite
    first = tuple(int(i) for i in bad.nonzero()[0])
    raise ValueError(
        f"`{name}` contains {int(bad.sum())} NaN/Inf value(s) (first at index {first}); "
        "metrics are undefined there: drop those samples or fix the feature extractor"
    )


def check_pair(real: Tensor, fake: Tensor) -> None:
    """Raise unless ``real`` and ``fake`` share the feature dimension and the device."""
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"feature dimension mismatch: `real` has {real.shape[1]} features per sample, "
            f"`fake` has {fake.shape[1]}; extract both with the same feature extractor"
        )
    if real.device != fake.device:
        raise ValueError(
            f"`real` is on {real.device} but `fake` is on {fake.device}; move both to the same device"
        )


def check_min_samples(x: Tensor, minimum: int, name: str, why: str) -> None:
    """Raise if ``x`` has fewer than ``minimum`` rows; ``why`` says what needs them."""
    if x.shape[0] < minimum:
        raise ValueError(f"`{name}` has {x.shape[0]} sample(s) but {why} needs at least {minimum}")


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}")
    return value


def check_stats(mu: Tensor, sigma: Tensor, name: str) -> None:
    """Raise unless ``(mu, sigma)`` look like a mean vector (D) and a covariance matrix (D x D)."""
    if mu.dim() != 1:
        raise ValueError(f"`{name}` mean must be 1-D (D,); got shape {tuple(mu.shape)}")
    d = mu.shape[0]
    if sigma.shape != (d, d):
        raise ValueError(
            f"`{name}` covariance must be ({d}, {d}) to match its mean; got shape {tuple(sigma.shape)}"
        )
    check_finite(mu, f"{name} mean")
    check_finite(sigma, f"{name} covariance")
