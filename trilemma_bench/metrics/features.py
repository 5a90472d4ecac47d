"""Feature extractors: one contract, one factory.

A metric never sees pixels; it sees the (N, dim) features an extractor makes of them. Three kinds:

- ``"domain"``: the penultimate layer of a small classifier the project trains per dataset
  (:mod:`.classifier`); the offline default, cheap on CPU, its test accuracy travels with it;
- ``"inception"``: TF-Inception pool3, 2048-d, the FID standard (:mod:`.inception`);
- ``"raw"``: the input itself, flattened (toy2d points, or pixels of tiny images).
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

log = logging.getLogger(__name__)

KINDS = ("domain", "inception", "raw")

# Samplers may overshoot [-1, 1] by round-off; anything beyond this is a caller that forgot to clip
# (or passed [0, 1] / [0, 255] images), which would silently shift every feature.
RANGE_TOLERANCE = 1e-3

# Long extractions (Inception on CPU: ~0.13 s an image) report progress this often.
_PROGRESS_EVERY_S = 30.0


@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps a batch of inputs in [-1, 1] (or toy2d points) to (N, dim) float features."""

    name: str
    dim: int
    accuracy: float | None  # test accuracy of a domain classifier; None for the others

    def __call__(self, x: Tensor, *, batch_size: int | None = None) -> Tensor: ...

    def fingerprint(self) -> dict[str, Any]:
        """JSON-able identity of everything that changes the features (keys cached reference stats)."""
        ...


def data_module() -> ModuleType:
    """:mod:`trilemma_bench.data`, looked up at call time so tests can put a small fake in its place."""
    return importlib.import_module("trilemma_bench.data")


def dataset_info(dataset: str) -> Any:
    datasets = data_module().DATASETS
    if dataset not in datasets:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(sorted(datasets))}")
    return datasets[dataset]


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


def check_input(x: object, expected_shape: tuple[int, ...] | None, *, images: bool, who: str) -> Tensor:
    """Return ``x`` as a float32 batch, or raise ``ValueError`` saying what ``who`` expected.

    ``expected_shape`` is the per-sample shape (None: any image shape with 1 or 3 channels).
    Images must lie in [-1, 1] up to :data:`RANGE_TOLERANCE`; points have no range.
    """
    if not isinstance(x, Tensor):  # ValueError like every other input check here, so one except catches all
        raise ValueError(f"{who} expects a torch.Tensor, got {type(x).__name__}")  # noqa: TRY004
    if not x.is_floating_point():
        raise ValueError(
            f"{who} expects floating-point input in [-1, 1], got dtype {x.dtype}; "
            "convert uint8 images with x.float() / 127.5 - 1"
        )
    if expected_shape is not None:
        if tuple(x.shape[1:]) != tuple(expected_shape) or x.dim() != len(expected_shape) + 1:
            raise ValueError(
                f"{who} expects a batch of shape (N, {', '.join(map(str, expected_shape))}), "
                f"got {tuple(x.shape)}"
            )
    elif images and (x.dim() != 4 or x.shape[1] not in (1, 3)):
        raise ValueError(f"{who} expects images (N, C, H, W) with C = 1 or 3, got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{who} got an empty batch {tuple(x.shape)}")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        n_bad = int((~finite).sum())
        raise ValueError(
            f"{who} got {n_bad} NaN/Inf values (first sample with one: {int((~finite).nonzero()[0, 0])})"
        )
    if images:
        lo, hi = float(x.min()), float(x.max())
        if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            raise ValueError(
                f"{who} expects images in [-1, 1], got values in [{lo:.4g}, {hi:.4g}]; "
                "clip samples with x.clamp(-1, 1), or map [0, 1] images with 2 * x - 1"
            )
    return x.to(torch.float32)


class BatchedExtractor:
    """Validation, batching, no_grad and device handling shared by every extractor.

    Subclasses set ``name``, ``dim``, ``accuracy``, ``expected_shape``, ``images`` and implement
    :meth:`_features` for one batch already on the extractor's device.
    """

    name: str
    dim: int
    accuracy: float | None = None
    expected_shape: tuple[int, ...] | None = None
    images: bool = True
    default_batch_size: int = 256

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    def _features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        raise NotImplementedError

    def __call__(self, x: Tensor, *, batch_size: int | None = None) -> Tensor:
        return self.map_batches(
            x, lambda batch: self._features(batch).to(torch.float32), batch_size=batch_size
        )

    def map_batches(
        self, x: Tensor, fn: Callable[[Tensor], Tensor], *, batch_size: int | None = None
    ) -> Tensor:
        """Validate ``x``, then apply ``fn`` batch by batch on the extractor's device under no_grad."""
        x = check_input(x, self.expected_shape, images=self.images, who=f"the {self.name!r} extractor")
        bs = self.default_batch_size if batch_size is None else int(batch_size)
        if bs < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = []
        start = last_log = time.perf_counter()
        with torch.no_grad():
            for i in range(0, x.shape[0], bs):
                batch = x[i : i + bs].to(self.device)
                if self.images:  # within tolerance by now; keep the network's input range exact
                    batch = batch.clamp(-1.0, 1.0)
                out.append(fn(batch))
                now = time.perf_counter()
                done = min(i + bs, x.shape[0])
                if now - last_log > _PROGRESS_EVERY_S and done < x.shape[0]:
                    eta = (now - start) / done * (x.shape[0] - done)
                    log.info("%s: %d/%d, about %.0f s left", self.name, done, x.shape[0], eta)
                    last_log = now
        return torch.cat(out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={str(self.device)!r})"


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
