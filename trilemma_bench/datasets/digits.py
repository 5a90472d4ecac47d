"""scikit-learn's bundled 8x8 handwritten digits (the UCI test set, 1,797 images, values 0..16)."""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
from torch import Tensor

from .common import check_split, labels_tensor

SEED = 0
FRACTIONS = (0.8, 0.1)  # train, val; the test split takes the rest


def split_indices(y: np.ndarray, split: str, seed: int = SEED) -> np.ndarray:
    """Stratified 80/10/10 split done here rather than by sklearn's helpers, so that it cannot change
    with the scikit-learn version."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train = round(FRACTIONS[0] * len(idx))
        n_val = round(FRACTIONS[1] * len(idx))
        parts = {
            "train": idx[:n_train],
            "val": idx[n_train : n_train + n_val],
            "test": idx[n_train + n_val :],
        }
        chosen.append(parts[split])
    return np.sort(np.concatenate(chosen))


def load(split: str) -> tuple[Tensor, Tensor]:
    check_split(split)
    from sklearn.datasets import load_digits  # imported late: sklearn costs ~1 s to import

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32)  # (1797, 8, 8), integers 0..16
    y = np.asarray(bunch.target)
    idx = split_indices(y, split)
    x = torch.from_numpy(images[idx] / 8.0 - 1.0).unsqueeze(1)
    return x.to(torch.float32), labels_tensor(y[idx])


def is_available() -> bool:
    return importlib.util.find_spec("sklearn") is not None
