"""Features and statistics of the real data, computed once per (dataset, split, source, extractor, n).

A benchmark then only extracts the features of its generated samples. Features are kept next to
(mu, sigma) because precision/recall/density/coverage need the real points, not only their moments.
Stored as float32 (exact reuse): 60k x 128-d domain features are 31 MB, Stacked-MNIST's 384-d 92 MB,
CIFAR-10's 50k x 2048-d Inception features 410 MB (plus a 32 MB covariance).

Files are ``sub_cache("reference")/<dataset>-<split>-<extractor>-<n|all>-<key hash>.pt``; the hash
covers everything that changes the numbers (data source, the extractor's fingerprint, which includes
its weights' SHA-1 and a classifier's accuracy, the subset), and the full key is stored inside and
checked on load. A file that is unreadable or does not match is recomputed (or refused when asked).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..paths import sub_cache
from ._cache import InvalidCacheError, atomic_save, digest_json, load_payload
from .features import FeatureExtractor, data_module, default_extractor, get_extractor
from .fid import feature_stats

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# A subset of max_samples is a seeded random draw (not the first rows: a split may be ordered).
SUBSET_SEED = 0


def resolve_extractor(
    extractor: str | FeatureExtractor | None, dataset: str, *, device: str | torch.device = "cpu"
) -> FeatureExtractor:
    """An extractor from a kind name, an extractor object, or None (the dataset's default kind)."""
    if extractor is None:
        extractor = default_extractor(dataset)
    if isinstance(extractor, str):
        return get_extractor(extractor, dataset, device=device)
    if not isinstance(extractor, FeatureExtractor):
        raise ValueError(  # noqa: TRY004 - an argument error, as get_extractor's for an unknown kind
            f"extractor must be a kind name, a FeatureExtractor or None; got {type(extractor).__name__}"
        )
    return extractor


def reference_key(
    dataset: str, split: str, extractor: FeatureExtractor, max_samples: int | None
) -> dict[str, Any]:
    """Everything that changes the reference features (JSON-able)."""
    return {
        "format": FORMAT_VERSION,
        "dataset": dataset,
        "split": split,
        "source": data_module().dataset_source(dataset),
        "extractor": extractor.name,
        "fingerprint": extractor.fingerprint(),
        "max_samples": max_samples,
        "subset_seed": SUBSET_SEED if max_samples is not None else None,
    }


def reference_path(key: dict[str, Any]) -> Path:
    n = "all" if key["max_samples"] is None else str(key["max_samples"])
    name = f"{key['dataset']}-{key['split']}-{key['extractor']}-{n}-{digest_json(key)}.pt"
    return sub_cache("reference") / name


def reference_features(
    dataset: str,
    split: str = "train",
    extractor_kind: str | FeatureExtractor | None = None,
    max_samples: int | None = None,
    *,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    recompute_if_invalid: bool = True,
) -> Tensor:
    """(n, dim) float32 features of the real ``split`` of ``dataset``, on CPU, cached."""
    payload = _reference(
        dataset, split, extractor_kind, max_samples, device, batch_size, recompute_if_invalid
    )
    return payload["features"]


def reference_stats(
    dataset: str,
    split: str = "train",
    extractor_kind: str | FeatureExtractor | None = None,
    max_samples: int | None = None,
    *,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    recompute_if_invalid: bool = True,
) -> dict[str, Any]:
    """``mu`` (dim,), ``sigma`` (dim, dim) in float64 and ``n``, with what they were computed with:
    ``extractor`` (name), ``accuracy`` (of a domain classifier, else None), ``source`` (of the data),
    plus ``dataset``, ``split`` and the cache ``path``."""
    p = _reference(dataset, split, extractor_kind, max_samples, device, batch_size, recompute_if_invalid)
    keys = ("mu", "sigma", "n", "extractor", "accuracy", "source", "dataset", "split", "path")
    return {k: p[k] for k in keys}


def _reference(
    dataset: str,
    split: str,
    extractor_kind: str | FeatureExtractor | None,
    max_samples: int | None,
    device: str | torch.device,
    batch_size: int | None,
    recompute_if_invalid: bool,
) -> dict[str, Any]:
    if max_samples is not None and (not isinstance(max_samples, int) or max_samples < 2):
        raise ValueError(
            f"max_samples must be an int >= 2 (a covariance needs two samples) or None, got {max_samples!r}"
        )
    extractor = resolve_extractor(extractor_kind, dataset, device=device)
    key = reference_key(dataset, split, extractor, max_samples)
    path = reference_path(key)
    if path.exists():
        try:
            return {**_load_valid(path, key, extractor.dim), "path": str(path)}
        except InvalidCacheError as err:
            if not recompute_if_invalid:
                raise InvalidCacheError(f"{err}.\nDelete it, or pass recompute_if_invalid=True.") from err
            log.warning("%s; recomputing it", err)
    payload = _compute(key, extractor, batch_size)
    atomic_save(payload, path)
    return {**payload, "path": str(path)}


def _compute(key: dict[str, Any], extractor: FeatureExtractor, batch_size: int | None) -> dict[str, Any]:
    x, _ = data_module().load_split(key["dataset"], key["split"])
    if key["max_samples"] is not None and key["max_samples"] < len(x):
        gen = torch.Generator().manual_seed(SUBSET_SEED)
        x = x[torch.randperm(len(x), generator=gen)[: key["max_samples"]].sort().values]
    log.info(
        "computing %s features of %d %s/%s samples (cached afterwards)",
        extractor.name,
        len(x),
        key["dataset"],
        key["split"],
    )
    start = time.perf_counter()
    features = extractor(x, batch_size=batch_size).to("cpu", torch.float32).contiguous()
    mu, sigma = feature_stats(features)
    return {
        "key": key,
        "features": features,
        "mu": mu.cpu(),
        "sigma": sigma.cpu(),
        "n": len(features),
        "dataset": key["dataset"],
        "split": key["split"],
        "extractor": extractor.name,
        "accuracy": extractor.accuracy,
        "source": key["source"],
        "seconds": time.perf_counter() - start,
    }


def _load_valid(path: Path, key: dict[str, Any], dim: int) -> dict[str, Any]:
    payload = load_payload(path, "reference statistics")
    if payload.get("key") != key:
        raise InvalidCacheError(
            f"cached reference {path} was made for another configuration ({payload.get('key')!r})"
        )
    f, mu, sigma, n = (payload.get(k) for k in ("features", "mu", "sigma", "n"))
    if not (isinstance(f, Tensor) and f.dtype == torch.float32 and f.dim() == 2 and f.shape == (n, dim)):
        raise InvalidCacheError(f"cached reference {path}: features are not float32 ({n}, {dim})")
    if not (
        isinstance(mu, Tensor)
        and mu.shape == (dim,)
        and isinstance(sigma, Tensor)
        and sigma.shape == (dim, dim)
    ):
        raise InvalidCacheError(
            f"cached reference {path}: mu/sigma do not have shapes ({dim},), ({dim}, {dim})"
        )
    if not bool(torch.isfinite(f).all()):
        raise InvalidCacheError(f"cached reference {path}: features hold NaN/Inf")
    # Cheap consistency check (a full covariance would cost as much as recomputing it).
    if not torch.allclose(f.mean(0, dtype=torch.float64), mu.to(torch.float64), rtol=1e-5, atol=1e-6):
        raise InvalidCacheError(f"cached reference {path}: mu is not the mean of its features")
    return payload
