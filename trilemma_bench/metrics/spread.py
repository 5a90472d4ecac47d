"""Bootstrap spread of a metric over the generated samples (Efron 1979)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from .checks import check_positive_int

MetricValue = float | Mapping[str, float]


def bootstrap(
    metric_fn: Callable[[Tensor, Tensor], MetricValue],
    real: Tensor,
    fake: Tensor,
    n_boot: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[MetricValue, MetricValue]:
    """Mean and standard deviation (ddof=1) of ``metric_fn(real, fake*)`` over bootstrap resamples of fake.

    Only the fake set is resampled (with replacement, same size): the real set is the fixed reference,
    often cached as statistics, and the question asked is how much the number would move with another
    draw of generated samples from the same model. The spread is what to read: resampling with
    replacement duplicates samples, which biases some metrics (FID up; k-NN recall down, since a
    duplicate is a neighbour at distance 0 and shrinks fake radii), so report the metric on the full
    set and this standard deviation beside it. ``metric_fn`` returns a float or a dict of floats (wrap
    ``kid`` as ``lambda r, f: kid(r, f)[0]``); the result has the same shape.
    """
    check_positive_int(n_boot, "n_boot", minimum=2)
    n = len(fake)
    if n == 0:
        raise ValueError("`fake` is empty; bootstrap needs at least one generated sample")
    values: list[MetricValue] = []
    for _ in range(n_boot):
        # Indices on the CPU so a CPU generator serves features on any device.
        idx = torch.randint(n, (n,), generator=generator)
        resampled = fake[idx.to(fake.device)] if isinstance(fake, Tensor) else fake[idx.numpy()]
        values.append(metric_fn(real, resampled))

    first = values[0]
    if isinstance(first, Mapping):
        keys = list(first)
        table = torch.tensor([[float(v[key]) for key in keys] for v in values], dtype=torch.float64)
        means, stds = table.mean(dim=0), table.std(dim=0, correction=1)
        return dict(zip(keys, means.tolist())), dict(zip(keys, stds.tolist()))
    if isinstance(first, (int, float)) or (isinstance(first, Tensor) and first.numel() == 1):
        column = torch.tensor([float(v) for v in values], dtype=torch.float64)
        return float(column.mean()), float(column.std(correction=1))
    raise ValueError(
        f"`metric_fn` must return a float or a dict of floats; got {type(first).__name__}. "
        "For kid, which returns (mean, std), pass lambda r, f: kid(r, f)[0]"
    )
