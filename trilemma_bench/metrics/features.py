"""Feature extractors: one contract, one factory.

A metric never sees pixels; it sees the (N, dim) features an extractor makes of them. Three kinds:

- ``"domain"``: the penultimate layer of a small classifier the project trains per dataset
  (:mod:`.classifier`); the offline default, cheap on CPU, its test accuracy travels with it;
- ``"inception"``: TF-Inception pool3, 2048-d, the FID standard (:mod:`.inception`);
- ``"raw"``: the input itself, flattened (toy2d points, or pixels of tiny images).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .extractor import (  # noqa: F401 - re-exported: the contract lives in extractor.py
    RANGE_TOLERANCE,
    BatchedExtractor,
    FeatureExtractor,
    check_input,
    data_module,
    dataset_info,
)

KINDS = ("domain", "inception", "raw")


def default_extractor(dataset: str) -> str:
    """The offline default kind: raw coordinates for toy2d, the project's domain classifier otherwise."""
    return "domain" if dataset_info(dataset).is_image else "raw"


def get_extractor(
    kind: str, dataset: str, *, device: str | torch.device = "cpu", retrain_if_invalid: bool = False
) -> FeatureExtractor:
    """The extractor of ``kind`` for ``dataset``; ``"domain"`` trains and caches its classifier on first use."""
    info = dataset_info(dataset)
    shape = tuple(info.shape)
    if kind == "raw":
        return RawExtractor(shape, device=device)
    if kind not in KINDS:
        raise ValueError(f"unknown extractor kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not info.is_image:
        raise ValueError(
            f"the {kind!r} extractor needs images, but {dataset!r} is not an image dataset; use 'raw'"
        )
    if kind == "inception":
        from .inception import InceptionExtractor

        return InceptionExtractor(expected_shape=shape, device=device)
    from .classifier import domain_extractor

    return domain_extractor(dataset, device=device, retrain_if_invalid=retrain_if_invalid)


def train_and_cache(dataset: str, *, force: bool = False, **options: Any) -> dict[str, Any]:
    """Train and cache the domain classifier of ``dataset`` (see :func:`.classifier.train_and_cache`)."""
    from .classifier import train_and_cache as train

    return train(dataset, force=force, **options)


class RawExtractor(BatchedExtractor):
    """The input itself, flattened: toy2d points, or the pixels of tiny images (e.g. 8x8 digits)."""

    default_batch_size = 65536

    def __init__(self, shape: tuple[int, ...], device: str | torch.device = "cpu") -> None:
        super().__init__(device)
        self.name = "raw"
        self.expected_shape = tuple(shape)
        self.dim = math.prod(self.expected_shape)
        # Points (toy2d) are coordinates, not pixels: no [-1, 1] range to enforce.
        self.images = len(self.expected_shape) == 3

    def _features(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "raw", "shape": list(self.expected_shape)}
