"""Chunked precision/recall/density/coverage against the reference ``prdc`` package and known cases."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import prdc as prdc_reference
import pytest
import torch

from trilemma_bench.metrics import bootstrap, prdc
from trilemma_bench.metrics.prdc import _inside_threshold, _sqrt_f32, knn_radii

KEYS = ("precision", "recall", "density", "coverage")


def _reference(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the sample counts
        out = prdc_reference.compute_prdc(real, fake, nearest_k=k)
    return {key: float(out[key]) for key in KEYS}


def _assert_same(ours: dict[str, float], ref: dict[str, float]) -> None:
    # Counts over the same comparisons: identical up to the float summation order of the means.
    assert ours.keys() == ref.keys()
    for key in KEYS:
        assert ours[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-15), key


def _gaussians(n_real: int, n_fake: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n_real, d), dtype=np.float32)
    fake = (1.2 * rng.standard_normal((n_fake, d)) + 0.25).astype(np.float32)
    return real, fake


@pytest.mark.parametrize(("k", "d"), [(1, 8), (3, 64), (5, 64), (10, 16)])
def test_matches_reference_prdc_on_random_features(k: int, d: int) -> None:
    real, fake = _gaussians(900, 700, d, seed=k)
    ours = prdc(torch.from_numpy(real), torch.from_numpy(fake), k=k)
    _assert_same(ours, _reference(real, fake, k))
    assert 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1  # a case where the comparisons matter


@pytest.mark.parametrize("k", [1, 2, 5])
def test_matches_reference_prdc_with_ties(k: int) -> None:
    # Integer features on a small grid: duplicate points and many exactly equal distances, so radii and
    # distances tie exactly and only the same strict "<" convention reproduces the reference.
    rng = np.random.default_rng(100 + k)
    real = rng.integers(0, 5, (800, 4)).astype(np.float32)
    fake = rng.integers(0, 6, (600, 4)).astype(np.float32)
    ours = prdc(torch.from_numpy(real), torch.from_numpy(fake), k=k)
    _assert_same(ours, _reference(real, fake, k))
    assert 0 < ours["precision"] < 1


def test_knn_radii_match_reference() -> None:
    real, _ = _gaussians(500, 1, 32, seed=7)
    expected = prdc_reference.prdc.compute_nearest_neighbour_distances(real, 4)
    np.testing.assert_array_equal(knn_radii(torch.from_numpy(real), 4, chunk_size=37).numpy(), expected)


@pytest.mark.parametrize(
    ("n_real", "n_fake", "chunk_size"), [(60, 45, 1), (500, 400, 7), (500, 400, 100), (500, 400, 250)]
)
def test_chunked_equals_one_tile(n_real: int, n_fake: int, chunk_size: int) -> None:
    # Tiles of chunk_size x chunk_size: 100 divides both sizes, 7 and 250 leave ragged edge tiles,
    # 1 is the extreme; a chunk of 10_000 puts each distance matrix in a single tile.
    real, fake = (torch.from_numpy(a) for a in _gaussians(n_real, n_fake, 16, seed=11))
    assert prdc(real, fake, k=4, chunk_size=chunk_size) == prdc(real, fake, k=4, chunk_size=10_000)


def test_worker_threads_give_the_serial_result_and_restore_torch_threads() -> None:
    real, fake = (torch.from_numpy(a) for a in _gaussians(400, 300, 8, seed=16))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        threaded = prdc(real, fake, k=3, chunk_size=9)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        assert prdc(real, fake, k=3, chunk_size=9) == threaded
    finally:
        torch.set_num_threads(threads)


def test_identical_sets_give_perfect_scores() -> None:
    # fake == real: every sample lies in its own ball (0 < radius); each ball of radius r_i holds the
    # centre and its k - 1 strictly nearer neighbours, so density is exactly k * n / (k * n) = 1.
    real, _ = _gaussians(300, 1, 8, seed=12)
    x = torch.from_numpy(real)
    assert prdc(x, x.clone(), k=5) == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def test_mode_collapse_gives_high_precision_low_recall_and_coverage() -> None:
    g = torch.Generator().manual_seed(13)
    centres = 10 * torch.randn(10, 4, generator=g)
    real = centres[torch.arange(2000) % 10] + torch.randn(2000, 4, generator=g)
    healthy = centres[torch.arange(2000) % 10] + torch.randn(2000, 4, generator=g)
    collapsed = centres[0] + torch.randn(2000, 4, generator=g)  # every sample from one of the ten modes
    scores = prdc(real, collapsed, k=5)
    assert scores["precision"] > 0.9
    assert scores["recall"] < 0.2
    assert scores["coverage"] < 0.2
    baseline = prdc(real, healthy, k=5)  # same model without the collapse: only precision stays put
    assert baseline["precision"] > 0.9 and baseline["recall"] > 0.9 and baseline["coverage"] > 0.9


def test_float32_sqrt_is_correctly_rounded() -> None:
    # numpy's float32 sqrt is IEEE (correctly rounded), which is what scikit-learn, hence prdc, uses.
    g = torch.Generator().manual_seed(14)
    a = torch.cat(
        [
            100 * torch.rand(200_000, generator=g),
            1e-40 * torch.rand(1000, generator=g),
            torch.tensor([0.0, 1.0, 4.0, 1e-45, 3.4e38, float("inf")]),
        ]
    )
    np.testing.assert_array_equal(_sqrt_f32(a).numpy(), np.sqrt(a.numpy()))


def test_inside_threshold_reproduces_sqrt_of_float32_comparisons() -> None:
    # For float64 values around each threshold T(r): "d2 <= T" must equal numpy's
    # "sqrt(max(float32(d2), 0)) < r", the comparison prdc makes.
    g = torch.Generator().manual_seed(15)
    radii = torch.cat([10 * torch.rand(20000, generator=g), torch.tensor([1.0, 2.0, 3.0, 1e-20, 1e-44, 0.0])])
    threshold = _inside_threshold(radii)
    assert threshold[-1] == -float("inf") and bool(torch.isfinite(threshold[:-1]).all())  # r = 0: empty
    r, t = radii[:-1], threshold[:-1]
    up = torch.full_like(t, float("inf"))
    d2 = t.clone()
    for _ in range(4):
        d2 = torch.nextafter(d2, -up)
    for _ in range(9):  # from 4 float64 ulps below T to 4 above
        inside = np.sqrt(np.maximum(d2.numpy().astype(np.float32), 0)) < r.numpy()
        np.testing.assert_array_equal((d2 <= t).numpy(), inside)
        d2 = torch.nextafter(d2, up)


def test_bootstrap_of_a_dict_metric() -> None:
    real, fake = (torch.from_numpy(a) for a in _gaussians(300, 300, 8, seed=15))
    mean, std = bootstrap(
        lambda r, f: prdc(r, f, k=3), real, fake, n_boot=4, generator=torch.Generator().manual_seed(0)
    )
    assert set(mean) == set(std) == set(KEYS)
    assert all(std[key] >= 0 for key in KEYS) and std["precision"] > 0


def test_bad_inputs_raise_clear_errors() -> None:
    x = torch.randn(20, 4)
    with pytest.raises(ValueError, match=r"`fake` has 5 sample\(s\) but k=5 nearest neighbours"):
        prdc(x, torch.randn(5, 4), k=5)
    with pytest.raises(ValueError, match="feature dimension mismatch"):
        prdc(x, torch.randn(20, 3))
    with pytest.raises(ValueError, match="must be 2-D"):
        prdc(x.reshape(20, 2, 2), x)
    with pytest.raises(ValueError, match="NaN/Inf"):
        prdc(x, torch.where(x > 1, torch.nan, x))
    with pytest.raises(ValueError, match="`k` must be an integer >= 1"):
        prdc(x, x, k=0)
    with pytest.raises(ValueError, match="`chunk_size` must be an integer >= 1"):
        prdc(x, x, chunk_size=0)
    with pytest.raises(ValueError, match="is empty"):
        prdc(torch.empty(0, 4), x)


def _prdc_module():
    import importlib

    return importlib.import_module("trilemma_bench.metrics.prdc")  # the package re-exports the function


@pytest.mark.parametrize(("cols", "integers"), [(2048, False), (1000, False), (37, False), (2048, True)])
def test_group_pruned_smallest_equals_topk(cols: int, integers: bool) -> None:
    # 1000 and 37 leave ragged columns outside the groups; integers give ties across groups.
    g = torch.Generator().manual_seed(cols)
    d2 = torch.randint(0, 40, (64, cols), generator=g).float() if integers else torch.rand(64, cols, generator=g)
    values, at = _prdc_module()._smallest(d2, 7)
    expected = d2.topk(7, dim=1, largest=False).values
    torch.testing.assert_close(values.sort(dim=1).values, expected, rtol=0, atol=0)
    torch.testing.assert_close(d2.gather(1, at), values, rtol=0, atol=0)  # the columns are where the values are


@pytest.mark.parametrize("d", [4, 64, 2048])
def test_float32_distance_error_stays_within_the_bound(d: int) -> None:
    # Features far from the origin: the norm expansion cancels and float32 loses most digits.
    P = _prdc_module()
    g = torch.Generator().manual_seed(d)
    x = (torch.randn(300, d, generator=g) + 30).float()
    columns = P._gemm_operand(x)
    exact = P._row_operand(columns) @ columns.T
    with P._exact_float32():
        approx = (P._row_operand(columns.float()) @ columns.float().T).double()
    norms = columns[:, -2]
    bound = P._float32_gemm_error(columns) * (norms[:, None] + norms[None, :])
    ratio = ((approx - exact).abs() / bound).max().item()
    assert 0 < ratio <= 1  # the bound holds, and float32 does differ (the certificate has work to do)


def test_uncertified_radii_are_recomputed_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Integer features: the (k+1)-th and (k+2)-th neighbours tie, so float32 screening cannot certify and
    # the float64 fallback must give prdc's radii.
    P = _prdc_module()
    redone: list[int] = []
    fallback = P._kth_exact
    monkeypatch.setattr(P, "_kth_exact", lambda rows, *a: (redone.append(len(rows)), fallback(rows, *a))[1])
    real = np.random.default_rng(3).integers(0, 4, (600, 3)).astype(np.float32)
    expected = prdc_reference.prdc.compute_nearest_neighbour_distances(real, 3)
    np.testing.assert_array_equal(knn_radii(torch.from_numpy(real), 3, chunk_size=64).numpy(), expected)
    assert sum(redone) > 0


def test_radii_ignore_a_lowered_float32_matmul_precision() -> None:
    real, _ = _gaussians(400, 1, 16, seed=5)
    expected = knn_radii(torch.from_numpy(real), 3)
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")  # allows bf16/TF32 matmuls where supported
        assert torch.equal(knn_radii(torch.from_numpy(real), 3), expected)
        assert torch.get_float32_matmul_precision() == "medium"  # restored after the call
    finally:
        torch.set_float32_matmul_precision(before)
