"""How a set of samples is scored: against which real data, in which features, with which metrics.

- Reference: the held-out test split when it holds at least as many images as are scored (MNIST,
  Fashion-MNIST, CIFAR-10: 10k; toy2d: 5k), else the training split (digits: its test split has 180
  images, too few for an FID reference at 2,000 samples, so digits is scored against what it trained
  on and says so). FID uses the whole split's statistics; precision/recall/density/coverage compare
  equally many real and generated samples (Naeem et al. 2020), the first n of each.
- Samples are quantized to the dataset's native grid before any feature is taken, as a saved image
  would be (``quantize``); a row records the levels.
- Memorisation (copy share against the training split) and Vendi need no reference split: every
  image row has them, and the real-data rows (:func:`real_sets`) give the figures real images get.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..data import DATASETS, SPLITS, TOY2D_CENTERS, TOY2D_STD, load_split
from .config import PRDC_K, BenchConfig

# KID subsets of 1000 as Binkowski et al., but at most half of each set: subsets of the whole set would all
# be the same samples, and kid_std (the spread over subsets) would read 0.
KID_SUBSET = 1000
TRAIN_SPLIT = "train"


def reference_split(dataset: str, num_samples: int) -> str:
    """The held-out test split when it has at least ``num_samples`` items, else the training split."""
    test, _ = load_split(dataset, "test")
    return "test" if len(test) >= num_samples else TRAIN_SPLIT


@dataclass
class Reference:
    """The real data a cell's samples are compared with, all in one extractor's features."""

    extractor: Any
    split: str
    stats: tuple[Tensor, Tensor]
    stats_n: int
    features: Tensor  # prdc's real set: n = min(split size, samples scored)
    levels: int | None
    train_features: Tensor | None  # memorisation: the training split and each image's 1-NN distance
    train_radii: Tensor | None
    modes: ModeMetric | None


@dataclass(frozen=True)
class ModeMetric:
    """Mode statistics where the dataset's modes are known, in two steps so that a sharded run can gather
    the per-sample part: ``labels`` per sample (toy2d: the points themselves; StackedMNIST: the digit of
    each channel), then ``stats`` over all samples' labels."""

    labels: Callable[[Tensor], Tensor]
    stats: Callable[[Tensor], dict[str, float]]


def _mode_metric(dataset: str, device: torch.device) -> ModeMetric | None:
    """toy2d: 25 Gaussians; StackedMNIST: 1000 modes; None for datasets without labelled modes."""
    from ..metrics import modes_stacked, modes_toy2d

    if dataset == "toy2d":
        return ModeMetric(lambda x: x, lambda x: {**modes_toy2d(x, TOY2D_CENTERS, TOY2D_STD), "modes_total": 25})
    if dataset == "stacked-mnist":
        from ..metrics.classifier import classify_stacked

        return ModeMetric(lambda x: classify_stacked(x, device=device), lambda y: {**modes_stacked(y), "modes_total": 1000})
    return None


def load_reference(cfg: BenchConfig) -> Reference:
    from ..metrics import knn_radii
    from ..metrics.features import get_extractor
    from ..metrics.reference import reference_features, reference_stats

    ds, info = cfg.preset.dataset, DATASETS[cfg.preset.dataset]
    split = reference_split(ds, cfg.num_samples)
    extractor = get_extractor(cfg.extractor, ds, device=cfg.device)
    stats = reference_stats(ds, split, extractor, device=cfg.device)
    n_real = cfg.num_samples if cfg.num_samples < stats["n"] else None
    features = reference_features(ds, split, extractor, n_real, device=cfg.device)
    train = train_radii = None
    if info.is_image:
        train = reference_features(ds, TRAIN_SPLIT, extractor, device=cfg.device).to(cfg.device)
        train_radii = knn_radii(train, 1)
    return Reference(
        extractor=extractor,
        split=split,
        stats=(stats["mu"], stats["sigma"]),
        stats_n=int(stats["n"]),
        features=features.to(cfg.device),
        levels=info.levels,
        train_features=train,
        train_radii=train_radii,
        modes=_mode_metric(ds, cfg.device),
    )


def shard_parts(samples: Tensor, ref: Reference) -> dict[str, Tensor]:
    """What each sample contributes to the metrics: its features (and its mode labels). Computed where the
    samples are; a sharded run gathers these, then every process scores the whole set."""
    parts = {"features": ref.extractor(samples).float().cpu()}
    if ref.modes is not None:
        parts["mode_labels"] = ref.modes.labels(samples).cpu()
    return parts


def score_parts(parts: dict[str, Tensor], ref: Reference, device: torch.device) -> dict[str, Any]:
    """Quality, diversity and memorisation of the samples whose :func:`shard_parts` these are."""
    from ..metrics import copy_share, fid_from_stats, kid, prdc, vendi

    feats = parts["features"].to(device)
    real = ref.features
    n = min(len(real), len(feats))
    m = max(2, min(KID_SUBSET, len(real) // 2, len(feats) // 2))
    kid_mean, kid_std = kid(real, feats, subset_size=m, generator=torch.Generator().manual_seed(0))
    image = ref.train_features is not None
    row: dict[str, Any] = {
        "fid": fid_from_stats(ref.stats, feats),
        "kid": kid_mean,
        "kid_std": kid_std,
        **prdc(real[:n], feats[:n], k=PRDC_K),
        "prdc_k": PRDC_K,
        "prdc_real_n": n,
        "prdc_fake_n": n,
        "copy_share": copy_share(ref.train_features, feats, ref.train_radii) if image else math.nan,
        "vendi": vendi(feats) if image else math.nan,
        "modes": math.nan,
        "modes_total": math.nan,
        "high_quality": math.nan,
        "mode_kl": math.nan,
    }
    if ref.modes is not None:
        row.update(ref.modes.stats(parts["mode_labels"]))
    return row


def score(samples: Tensor, ref: Reference, device: torch.device) -> dict[str, Any]:
    """Quality, diversity and memorisation of ``samples`` (already quantized) against ``ref``."""
    return score_parts(shard_parts(samples, ref), ref, device)


@dataclass(frozen=True)
class RealSet:
    """Real images scored like a cell: what a perfect model, or held-out data, gets."""

    sampler: str  # how they were drawn, recorded as the row's sampler
    images: Tensor
    matched: bool  # as many images as the cells score: its FID is the floor at that sample size
    copies_training: bool = False  # drawn from the training split itself: its copy share means nothing


def real_sets(cfg: BenchConfig, ref: Reference, seed: int) -> list[RealSet]:
    """The real-data rows of a setting for one seed.

    Held out: images of the splits that are neither the training split nor the reference, drawn
    without replacement, as many as the cells score where there are enough (MNIST: val). Where there
    are fewer (digits: its 359 val and test images), they are all scored at their own n, and a second
    set draws n images with replacement from the reference split itself: the FID a model whose samples
    are draws of the reference data gets at the cells' sample size, the floor of the estimator. Its
    copy share is 1 by construction (its samples are training images), so it is not recorded.
    """
    held_out = [s for s in SPLITS if s not in (TRAIN_SPLIT, ref.split)]
    pool = torch.cat([load_split(cfg.preset.dataset, s)[0] for s in held_out])
    g = torch.Generator().manual_seed(seed)
    n = cfg.num_samples
    name = "heldout-" + "+".join(held_out)
    if len(pool) >= n:
        return [RealSet(name, pool[torch.randperm(len(pool), generator=g)[:n]], True)]
    reference, _ = load_split(cfg.preset.dataset, ref.split)
    resampled = reference[torch.randint(len(reference), (n,), generator=g)]
    return [RealSet(name, pool, False),
            RealSet(f"resampled-{ref.split}", resampled, True, copies_training=ref.split == TRAIN_SPLIT)]
