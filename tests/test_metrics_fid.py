"""FID and KID against independent references: torchmetrics, scipy's sqrtm, exact closed forms."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from trilemma_bench.metrics import bootstrap, feature_stats, fid, fid_from_stats, frechet_distance, kid


class _Identity(torch.nn.Module):
    """A 'feature extractor' that hands the features through, so torchmetrics sees ours unchanged."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features  # torchmetrics' FID reads it instead of probing with a dummy image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """Correlated Gaussian features: a random mixing matrix gives a non-diagonal covariance."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d) + torch.eye(
        d, dtype=torch.float64
    )
    return (torch.randn(n, d, generator=g, dtype=torch.float64) @ mix) * scale + shift


def _scipy_fid(real: np.ndarray, fake: np.ndarray) -> float:
    mu1, mu2 = real.mean(axis=0), fake.mean(axis=0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def _whitened(n: int, d: int, seed: int) -> torch.Tensor:
    """n x d samples whose sample mean is exactly 0 and sample covariance (ddof=1) exactly I."""
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x - x.mean(dim=0)
    chol = torch.linalg.cholesky(x.T @ x / (n - 1))
    return torch.linalg.solve_triangular(chol, x.T, upper=False).T


def test_fid_matches_torchmetrics() -> None:
    real, fake = _features(600, 24, seed=1), _features(450, 24, seed=2, shift=0.3, scale=1.3)
    metric = FrechetInceptionDistance(feature=_Identity(24))
    metric.update(real, real=True)
    metric.update(fake, real=False)
    assert fid(real, fake) == pytest.approx(float(metric.compute()), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fid_matches_scipy_closed_form(dtype: torch.dtype) -> None:
    real, fake = _features(800, 32, seed=3), _features(700, 32, seed=4, shift=-0.2, scale=0.8)
    real, fake = real.to(dtype), fake.to(dtype)
    expected = _scipy_fid(real.double().numpy(), fake.double().numpy())
    assert fid(real, fake) == pytest.approx(expected, rel=1e-4)


def test_fid_exact_for_prescribed_sample_statistics() -> None:
    # Real: sample mean 0, covariance I. Fake: c * (another such set) + m, so covariance c^2 I.
    # FID = |m|^2 + tr(I + c^2 I - 2 c I) = |m|^2 + D (1 - c)^2, with no estimation error at all.
    d, c = 16, 1.7
    m = torch.linspace(-1.0, 2.0, d, dtype=torch.float64)
    real, fake = _whitened(300, d, seed=5), c * _whitened(250, d, seed=6) + m
    assert fid(real, fake) == pytest.approx(float(m @ m) + d * (1 - c) ** 2, rel=1e-9)


def test_fid_population_limit_for_shifted_gaussians() -> None:
    # N(0, I) against N(m, I): population FID is |m|^2; 20k samples in 4-D estimate it to ~1%.
    g = torch.Generator().manual_seed(7)
    m = torch.tensor([1.0, -2.0, 0.5, 0.0])
    real, fake = torch.randn(20000, 4, generator=g), torch.randn(20000, 4, generator=g) + m
    assert fid(real, fake) == pytest.approx(float(m @ m), rel=0.02)


def test_fid_from_cached_stats_and_distance_properties() -> None:
    real, fake = _features(400, 12, seed=8), _features(300, 12, seed=9, shift=0.5)
    stats = feature_stats(real)
    assert stats[0].dtype == torch.float64 and stats[1].shape == (12, 12)
    assert fid_from_stats(stats, fake) == pytest.approx(fid(real, fake), rel=1e-12)
    # numpy statistics (as loaded from an .npz cache) are accepted too
    assert fid_from_stats(tuple(s.numpy() for s in stats), fake) == pytest.approx(fid(real, fake), rel=1e-12)
    assert frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-9)
    fake_stats = feature_stats(fake)
    assert frechet_distance(*stats, *fake_stats) == pytest.approx(
        frechet_distance(*fake_stats, *stats), rel=1e-9
    )


def test_feature_stats_survive_a_large_mean_in_float32() -> None:
    # Mean 1e4, std 1: the shortcut E[xx^T] - mu mu^T would cancel every digit; centring keeps them.
    x = (_features(2000, 8, seed=10) + 1e4).to(torch.float32)
    _, sigma = feature_stats(x)
    expected = np.cov(x.double().numpy(), rowvar=False)
    np.testing.assert_allclose(sigma.numpy(), expected, rtol=1e-9, atol=1e-9)


def test_fid_with_singular_covariances_stays_finite() -> None:
    # Fewer samples than dimensions: both covariances are singular; the result must be real and >= 0.
    real, fake = _features(10, 32, seed=11), _features(10, 32, seed=12, shift=0.1)
    value = fid(real, fake)
    assert math.isfinite(value) and value >= 0


def _numpy_unbiased_poly_mmd2(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD^2 from its definition (Binkowski et al. 2018); k(a, b) = (gamma a.b + coef0)^degree."""
    m = len(x)

    def mean_off_diagonal(k: np.ndarray) -> float:
        return (k.sum() - np.trace(k)) / (m * (m - 1))

    kxx = (gamma * x @ x.T + coef0) ** degree
    kyy = (gamma * y @ y.T + coef0) ** degree
    kxy = (gamma * x @ y.T + coef0) ** degree
    return float(mean_off_diagonal(kxx) + mean_off_diagonal(kyy) - 2 * kxy.mean())


def test_kid_matches_torchmetrics_on_the_whole_set() -> None:
    # subset_size = n: every subset is the whole set, permuted, so the estimate is deterministic.
    real, fake = _features(300, 16, seed=13), _features(300, 16, seed=14, shift=0.2)
    metric = KernelInceptionDistance(feature=_Identity(16), subsets=2, subset_size=300)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    ref_mean, ref_std = (float(v) for v in metric.compute())
    mean, std = kid(real, fake, subsets=2, subset_size=300)
    assert mean == pytest.approx(ref_mean, rel=1e-9)
    assert std == pytest.approx(ref_std, abs=1e-12)


def test_kid_matches_torchmetrics_over_random_subsets() -> None:
    # Both draw each subset as randperm(n_real) then randperm(n_fake) from torch's global generator
    # when none is given, so the same seed gives the same subsets: mean and std (ddof=0) must agree.
    real, fake = _features(300, 16, seed=24), _features(250, 16, seed=25, shift=0.2)
    metric = KernelInceptionDistance(feature=_Identity(16), subsets=10, subset_size=100)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    torch.manual_seed(123)
    ref_mean, ref_std = (float(v) for v in metric.compute())
    torch.manual_seed(123)
    mean, std = kid(real, fake, subsets=10, subset_size=100)
    assert ref_std > 0
    assert mean == pytest.approx(ref_mean, rel=1e-9)
    assert std == pytest.approx(ref_std, rel=1e-6)


@pytest.mark.parametrize(("degree", "gamma", "coef0"), [(3, None, 1.0), (2, 0.5, 0.3)])
def test_kid_matches_numpy_definition(degree: int, gamma: float | None, coef0: float) -> None:
    real, fake = _features(200, 10, seed=15), _features(200, 10, seed=16, scale=1.4)
    expected = _numpy_unbiased_poly_mmd2(
        real.numpy(), fake.numpy(), degree, 1 / 10 if gamma is None else gamma, coef0
    )
    mean, _ = kid(real, fake, subsets=1, subset_size=200, degree=degree, gamma=gamma, coef0=coef0)
    assert mean == pytest.approx(expected, rel=1e-9)


def test_kid_subsets_average_near_the_full_estimate_and_are_reproducible() -> None:
    real, fake = _features(400, 8, seed=17), _features(400, 8, seed=18, shift=0.5)
    full, _ = kid(real, fake, subsets=1, subset_size=400)
    a = kid(real, fake, subsets=50, subset_size=100, generator=torch.Generator().manual_seed(0))
    b = kid(real, fake, subsets=50, subset_size=100, generator=torch.Generator().manual_seed(0))
    assert a == b
    assert a[1] > 0
    assert abs(a[0] - full) < 3 * a[1] / math.sqrt(50) + 0.05 * full


def test_kid_clamps_subset_size_with_a_warning() -> None:
    real, fake = _features(120, 6, seed=19), _features(80, 6, seed=20, shift=0.3)
    with pytest.warns(UserWarning, match="subset_size=80"):
        clamped = kid(real, fake, subsets=1, subset_size=1000, generator=torch.Generator().manual_seed(1))
    explicit = kid(real, fake, subsets=1, subset_size=80, generator=torch.Generator().manual_seed(1))
    assert clamped == explicit


def test_bootstrap_spread_of_a_mean_matches_the_standard_error() -> None:
    # Bootstrap std of a sample mean estimates sigma / sqrt(n) = 2 / sqrt(400) = 0.1.
    fake = 2 * torch.randn(400, 1, generator=torch.Generator().manual_seed(21))
    mean, std = bootstrap(
        lambda r, f: float(f.mean()), None, fake, n_boot=200, generator=torch.Generator().manual_seed(0)
    )
    assert mean == pytest.approx(float(fake.mean()), abs=0.03)
    assert std == pytest.approx(0.1, rel=0.2)


def test_bootstrap_of_fid_is_reproducible_and_resamples_fake_only() -> None:
    real, fake = _features(200, 4, seed=22), _features(200, 4, seed=23, shift=1.0)
    seen_real = []

    def metric(r: torch.Tensor, f: torch.Tensor) -> float:
        seen_real.append(r)
        return fid(r, f)

    a = bootstrap(metric, real, fake, n_boot=5, generator=torch.Generator().manual_seed(3))
    b = bootstrap(fid, real, fake, n_boot=5, generator=torch.Generator().manual_seed(3))
    assert a == b and a[1] > 0
    assert all(r is real for r in seen_real)


def test_bad_inputs_raise_clear_errors() -> None:
    x = torch.randn(50, 8)
    with pytest.raises(ValueError, match="feature dimension mismatch"):
        fid(x, torch.randn(50, 9))
    with pytest.raises(ValueError, match="must be 2-D"):
        fid(torch.randn(50), x)
    with pytest.raises(ValueError, match="NaN/Inf"):
        fid(x, torch.where(torch.arange(8) == 3, torch.nan, torch.randn(50, 8)))
    with pytest.raises(ValueError, match="NaN/Inf"):
        kid(x, torch.full((50, 8), torch.inf))
    with pytest.raises(ValueError, match="1 sample.*at least 2"):
        fid(x, torch.randn(1, 8))
    with pytest.raises(ValueError, match="feature dimension mismatch"):
        fid_from_stats(feature_stats(x), torch.randn(50, 7))
    with pytest.raises(ValueError, match="covariance must be"):
        frechet_distance(torch.zeros(3), torch.eye(4), torch.zeros(3), torch.eye(3))
    with pytest.raises(ValueError, match="subset_size"):
        kid(x, x, subset_size=1)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap(fid, x, x, n_boot=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a well-formed call must not warn
        kid(x, x, subsets=1, subset_size=50)
