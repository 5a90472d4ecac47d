"""Memorisation (copy share) and the Vendi score: against independent computations and the cases that
must come out high or low."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from trilemma_bench.metrics import copy_share, vendi
from trilemma_bench.metrics.memorization import nearest


def _gauss(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_nearest_matches_a_kd_tree() -> None:
    train, queries = _gauss(3000, 8, 0), _gauss(500, 8, 1)
    dist, at = nearest(queries, train)
    ref_dist, ref_at = cKDTree(train.numpy()).query(queries.numpy(), k=1)
    np.testing.assert_allclose(dist.numpy(), ref_dist, rtol=1e-10)
    assert (at.numpy() == ref_at).all()


def test_copy_share_against_a_direct_count() -> None:
    train, fake = _gauss(1000, 6, 2), _gauss(400, 6, 3)
    tree = cKDTree(train.numpy())
    radius = tree.query(train.numpy(), k=2)[0][:, 1]  # each training point's nearest other point
    d, j = tree.query(fake.numpy(), k=1)
    assert copy_share(train, fake) == pytest.approx(float(np.mean(d < radius[j])), abs=1e-12)


def test_a_model_that_returns_training_images_scores_high_and_held_out_data_low() -> None:
    train, held_out = _gauss(2000, 16, 4), _gauss(1000, 16, 5)
    copies = train[torch.randperm(2000, generator=torch.Generator().manual_seed(6))[:1000]]
    jittered = copies + 0.02 * _gauss(1000, 16, 7)  # near-copies: still caught
    assert copy_share(train, copies) == 1.0
    assert copy_share(train, jittered) > 0.95
    assert copy_share(train, held_out) < 0.5


def test_vendi_against_the_n_by_n_kernel_and_its_extremes() -> None:
    x = _gauss(300, 10, 8)
    unit = x / x.norm(dim=1, keepdim=True)
    eig = np.linalg.eigvalsh((unit @ unit.T).numpy() / len(x))  # the paper's definition, n x n
    eig = eig[eig > 1e-15]
    assert vendi(x) == pytest.approx(math.exp(-(eig * np.log(eig)).sum()), rel=1e-9)
    collapsed = _gauss(1, 10, 9).repeat(500, 1)
    assert vendi(collapsed) == pytest.approx(1.0, abs=1e-9)
    basis = torch.eye(10, dtype=torch.float64).repeat(20, 1)  # ten orthogonal directions, equally often
    assert vendi(basis) == pytest.approx(10.0, rel=1e-9)
    with pytest.raises(ValueError, match="all-zero row"):
        vendi(torch.zeros(3, 4))
