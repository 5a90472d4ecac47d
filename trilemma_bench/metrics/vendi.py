"""The Vendi score (Friedman and Dieng 2023): the effective number of distinct samples in a set.

With a similarity kernel k (k(x, x) = 1) and K the n x n kernel matrix, Vendi = exp(entropy of the
eigenvalues of K / n): 1 when every sample is the same, n when all are orthogonal. It needs no
reference set, so it sees diversity that precision and recall, tied to a real set, do not. Here k is
the cosine similarity of feature vectors, the paper's choice for embeddings; K / n = X X^T / n has the
same non-zero eigenvalues as X^T X / n (D x D), which is what is decomposed when n > D.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .checks import as_features


def vendi(features: Tensor) -> float:
    """Vendi score of N x D features under the cosine-similarity kernel, in float64."""
    x = as_features(features, "features").to(torch.float64)
    norms = x.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("`features` has an all-zero row: the cosine similarity is undefined there")
    x = x / norms
    n, d = x.shape
    gram = (x.T @ x if n > d else x @ x.T) / n
    eigenvalues = torch.linalg.eigvalsh(gram).clamp_min(0)
    p = eigenvalues[eigenvalues > 0]
    p = p / p.sum()  # trace(K / n) = 1 up to round-off
    return math.exp(float(-(p * p.log()).sum()))
