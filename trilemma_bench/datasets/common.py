"""What every dataset source shares: the error type, the source record, pixel scaling, splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

SPLITS = ("train", "val", "test")


class DatasetUnavailable(RuntimeError):
    """A dataset's files are absent (or refused as corrupt); the message says how to get them."""


class ChecksumMismatch(DatasetUnavailable):
    """A downloaded file did not match its published checksum and was deleted."""


@dataclass(frozen=True)
class Source:
    """One place a dataset can come from.

    ``label`` is recorded next to results, so that numbers from different sources (e.g. CIFAR-10
    re-encoded as JPEG versus the original pixels) are never silently compared.
    """

    label: str
    is_available: Callable[[Path], bool]  # root -> bool; cheap, never downloads
    load: Callable[[Path, str], tuple[Tensor, Tensor]]  # (root, split) -> (x, y)
    missing: str  # what is absent and how to install it, for the error message
    fetch: Callable[[Path], None] | None = None  # downloads into root; official releases only


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def uint8_to_unit(x: np.ndarray) -> Tensor:
    """uint8 pixels 0..255 -> float32 in [-1, 1] (0 -> -1, 255 -> 1 exactly)."""
    if x.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {x.dtype}")
    # Copy the uint8 first: sources hand out read-only cached or memory-mapped arrays.
    return torch.from_numpy(np.array(x, copy=True)).to(torch.float32).div_(127.5).sub_(1.0)


def labels_tensor(y: np.ndarray) -> Tensor:
    return torch.from_numpy(np.asarray(y, dtype=np.int64).copy())


def cut_train_val(x: np.ndarray, y: np.ndarray, split: str, val_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The official training file split as the classic releases did: validation = its last ``val_size``."""
    if not 0 < val_size < len(x):
        raise ValueError(f"cannot hold out {val_size} validation items from a training set of {len(x)}")
    if split == "train":
        return x[:-val_size], y[:-val_size]
    if split == "val":
        return x[-val_size:], y[-val_size:]
    raise ValueError(f"cut_train_val serves train/val, not {split!r}")
