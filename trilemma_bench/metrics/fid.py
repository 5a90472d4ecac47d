"""Frechet distance (FID) and kernel distance (KID) between two sets of features.

Three layers, as in torch-fidelity: features -> statistics (mean, covariance) -> distance, so the
statistics of the real data can be computed once, cached, and reused with :func:`fid_from_stats`.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from .checks import as_features, check_min_samples, check_pair, check_positive_int, check_stats

# Rows converted to float64 at a time when accumulating the covariance: bounds the extra memory to
# ROWS x D doubles (64 MiB for 2048-d Inception features) whatever N is.
_STATS_CHUNK_ROWS = 4096

Stats = tuple[Tensor, Tensor]


def feature_stats(features: Tensor) -> Stats:
    """Mean and unbiased covariance (N - 1 denominator, like numpy.cov) of N x D features, in float64."""
    x = as_features(features, "features")
    check_min_samples(x, 2, "features", "a covariance estimate")
    n = x.shape[0]
    mu = x.sum(dim=0, dtype=torch.float64) / n
    # Centre before the outer product: E[xx^T] - mu mu^T cancels catastrophically when |mu| >> std.
    sigma = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
    for start in range(0, n, _STATS_CHUNK_ROWS):
        xc = x[start : start + _STATS_CHUNK_ROWS].to(torch.float64) - mu
        sigma.addmm_(xc.T, xc)
    sigma /= n - 1
    return mu, sigma


def _trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """tr(sqrtm(sigma1 @ sigma2)) for symmetric PSD inputs, through symmetric eigen-decompositions.

    sigma1 @ sigma2 is not symmetric, so its square root needs a general Schur-based solver (scipy's
    sqrtm) that can return spurious imaginary parts and has no GPU kernel. The matrix
    sqrt(sigma1) @ sigma2 @ sqrt(sigma1) has the same non-zero eigenvalues (XY and YX with
    X = sqrt(sigma1), Y = sqrt(sigma1) @ sigma2), is symmetric PSD, and so is handled by eigh /
    eigvalsh, which are stable, real, and run on GPU. Round-off can push tiny eigenvalues below zero
    when a covariance is singular (N <= D); they are clamped to zero.
    """
    evals, evecs = torch.linalg.eigh(sigma1)
    root1 = (evecs * evals.clamp_min(0).sqrt()) @ evecs.T
    m = root1 @ sigma2 @ root1
    m = (m + m.T) / 2  # remove the asymmetry round-off leaves, so eigvalsh sees what it assumes
    return torch.linalg.eigvalsh(m).clamp_min(0).sqrt().sum()


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017), in float64."""
    mu1, sigma1, mu2, sigma2 = (torch.as_tensor(t).to(torch.float64) for t in (mu1, sigma1, mu2, sigma2))
    check_stats(mu1, sigma1, "first")
    check_stats(mu2, sigma2, "second")
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"feature dimension mismatch: the first statistics are {mu1.shape[0]}-d, the second "
            f"{mu2.shape[0]}-d; compute both with the same feature extractor"
        )
    mu2, sigma2 = mu2.to(mu1.device), sigma2.to(mu1.device)
    diff = mu1 - mu2
    value = diff @ diff + sigma1.trace() + sigma2.trace() - 2 * _trace_sqrt_product(sigma1, sigma2)
    return float(value)


def fid_from_stats(real_stats: Stats, fake_features: Tensor) -> float:
    """FID (Heusel et al. 2017) of fake features against cached real statistics ``(mu, sigma)``."""
    mu_real, sigma_real = real_stats
    mu_fake, sigma_fake = feature_stats(fake_features)
    if torch.as_tensor(mu_real).shape != mu_fake.shape:
        raise ValueError(
            f"feature dimension mismatch: the real statistics are {torch.as_tensor(mu_real).shape[0]}-d "
            f"but `fake_features` has {mu_fake.shape[0]} features; use the extractor the statistics came from"
        )
    return frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake)


def fid(real: Tensor, fake: Tensor) -> float:
    """FID (Heusel et al. 2017) between two N x D feature sets: Frechet distance of fitted Gaussians."""
    real = as_features(real, "real")
    fake = as_features(fake, "fake")
    check_pair(real, fake)
    check_min_samples(real, 2, "real", "FID (a covariance estimate)")
    check_min_samples(fake, 2, "fake", "FID (a covariance estimate)")
    return frechet_distance(*feature_stats(real), *feature_stats(fake))


def _unbiased_mmd2(k_xx: Tensor, k_yy: Tensor, k_xy: Tensor) -> Tensor:
    """Unbiased MMD^2 estimate from kernel matrices of two equal-size samples (diagonals excluded)."""
    m = k_xx.shape[0]
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within - 2 * k_xy.sum() / (m * m)


def kid(
    real: Tensor,
    fake: Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): unbiased MMD^2 with kernel (gamma x.y + coef0)^degree, over subsets.

    Each subset draws ``subset_size`` real and ``subset_size`` fake rows without replacement; returns
    the mean and the population standard deviation (ddof=0, as torchmetrics and the paper's code) of the
    per-subset estimates. ``gamma`` defaults to 1 / D. When ``subset_size`` exceeds the smaller set it
    is clamped to ``min(n_real, n_fake)`` with a warning (every subset then holds that whole set,
    permuted). Kernels are evaluated in float64: cubing dot products of 2048-d features loses digits
    in float32.
    """
    real = as_features(real, "real")
    fake = as_features(fake, "fake")
    check_pair(real, fake)
    check_positive_int(subsets, "subsets")
    check_positive_int(subset_size, "subset_size", minimum=2)
    check_positive_int(degree, "degree")
    check_min_samples(real, 2, "real", "the unbiased KID estimate")
    check_min_samples(fake, 2, "fake", "the unbiased KID estimate")
    if gamma is not None and not gamma > 0:
        raise ValueError(f"`gamma` must be positive or None (meaning 1 / D); got {gamma!r}")
    n_real, n_fake = real.shape[0], fake.shape[0]
    m = min(subset_size, n_real, n_fake)
    if m < subset_size:
        warnings.warn(
            f"kid: subset_size={subset_size} exceeds the samples available (real {n_real}, fake {n_fake}); "
            f"using subset_size={m}",
            stacklevel=2,
        )
    g = 1.0 / real.shape[1] if gamma is None else float(gamma)

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        return (g * (a @ b.T) + coef0) ** degree

    estimates = []
    for _ in range(subsets):
        # Indices are drawn on the CPU so a CPU generator works for features on any device.
        idx_r = torch.randperm(n_real, generator=generator)[:m].to(real.device)
        idx_f = torch.randperm(n_fake, generator=generator)[:m].to(fake.device)
        x = real[idx_r].to(torch.float64)
        y = fake[idx_f].to(torch.float64)
        estimates.append(_unbiased_mmd2(kernel(x, x), kernel(y, y), kernel(x, y)))
    values = torch.stack(estimates)
    return float(values.mean()), float(values.std(correction=0))
