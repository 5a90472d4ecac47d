"""The extractor contract and the base class every extractor shares (validation, batching, no_grad).

Its own module so that the concrete extractors (classifier, inception) and the factory (features) all
import it, and none imports another.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

log = logging.getLogger(__name__)

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
