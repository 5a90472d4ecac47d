"""Mode statistics on the 25-Gaussian grid and on StackedMNIST labels, with exact expected values."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

from trilemma_bench.metrics import modes_stacked, modes_toy2d

STD = 0.25  # 3 * STD = 0.75 is exact in binary, so the boundary test below is exact too


def _grid() -> torch.Tensor:
    axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    return torch.cartesian_prod(axis, axis)  # 25 x 2


def test_toy2d_samples_at_every_centre() -> None:
    centres = _grid()
    out = modes_toy2d(centres.repeat(4, 1), centres, STD)
    assert out["modes"] == 25
    assert out["high_quality"] == 1.0
    assert out["mode_kl"] == pytest.approx(0.0, abs=1e-12)


def test_toy2d_collapse_to_one_mode() -> None:
    centres = _grid()
    samples = centres[7] + 0.1 * torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    out = modes_toy2d(samples, centres, STD)
    assert out["modes"] == 1
    assert out["mode_kl"] == pytest.approx(math.log(25), rel=1e-12)


def test_toy2d_uneven_histogram_matches_scipy_kl() -> None:
    centres = _grid()
    counts = torch.tensor([5, 3, 2] + [0] * 10 + [1] * 12)
    samples = torch.repeat_interleave(centres, counts, dim=0) + 0.05
    out = modes_toy2d(samples, centres, STD)
    p = counts.double() / counts.sum()
    assert out["modes"] == 15
    assert out["mode_kl"] == pytest.approx(
        float(scipy.stats.entropy(p, torch.full((25,), 1 / 25))), rel=1e-12
    )


def test_toy2d_high_quality_is_strictly_within_three_std() -> None:
    centres = _grid()
    on_boundary = centres[12] + torch.tensor([[0.75, 0.0]])  # exactly 3 std: not high quality
    inside = centres[12] + torch.tensor([[0.7, 0.0]])
    far = torch.tensor([[1.0, 1.0]])  # 1.41 from the nearest centre
    out = modes_toy2d(torch.cat([on_boundary, inside, far]), centres, STD)
    assert out["high_quality"] == pytest.approx(1 / 3)
    assert out["modes"] == 1


def test_toy2d_without_any_high_quality_sample() -> None:
    out = modes_toy2d(torch.full((10, 2), 1.0), _grid(), STD)
    assert out["modes"] == 0 and out["high_quality"] == 0.0 and math.isnan(out["mode_kl"])


def test_stacked_all_modes_equally() -> None:
    digits = torch.cartesian_prod(torch.arange(10), torch.arange(10), torch.arange(10))  # 1000 x 3
    out = modes_stacked(digits.repeat(3, 1))
    assert out["modes"] == 1000
    assert out["mode_kl"] == pytest.approx(0.0, abs=1e-12)


def test_stacked_uniform_random_labels() -> None:
    # 26k uniform draws (the PacGAN/DDGAN sample count): the multinomial noise alone gives
    # E[KL] ~ (K - 1) / (2N) = 0.019, and about 1000 * exp(-26) modes missed.
    labels = torch.randint(0, 10, (26000, 3), generator=torch.Generator().manual_seed(1))
    out = modes_stacked(labels)
    assert out["modes"] == 1000
    assert 0 < out["mode_kl"] < 0.03


def test_stacked_channel_order_matters_and_collapse() -> None:
    out = modes_stacked(torch.tensor([[1, 2, 3], [3, 2, 1]]))
    assert out["modes"] == 2  # (1, 2, 3) and (3, 2, 1) are different modes
    assert out["mode_kl"] == pytest.approx(math.log(500), rel=1e-12)
    collapsed = modes_stacked(torch.tensor([[4, 4, 4]] * 50))
    assert collapsed["modes"] == 1 and collapsed["mode_kl"] == pytest.approx(math.log(1000), rel=1e-12)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"must lie in \[0, 9\]"):
        modes_stacked(torch.tensor([[0, 10, 2]]))
    with pytest.raises(ValueError, match="integer class indices"):
        modes_stacked(torch.tensor([[0.5, 1.0, 2.0]]))
    with pytest.raises(ValueError, match="not \\(classes per channel\\)"):
        modes_stacked(torch.tensor([[0, 1, 2]]), n_modes=999)
    with pytest.raises(ValueError, match="must be 2-D"):
        modes_stacked(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"need shape \(N, 2\)"):
        modes_toy2d(torch.zeros(5, 3), _grid(), STD)
    with pytest.raises(ValueError, match="`std` must be a positive"):
        modes_toy2d(torch.zeros(5, 2), _grid(), 0.0)
    with pytest.raises(ValueError, match="NaN/Inf"):
        modes_toy2d(torch.tensor([[0.0, float("nan")]]), _grid(), STD)


def test_perfect_model_floor_matches_the_multinomial_theory() -> None:
    from trilemma_bench.metrics import perfect_model_floor

    # 2,000 draws over 1000 modes: E[modes hit] = M (1 - (1 - 1/M)^N) exactly, 864.9; E[KL] ~ (M - 1) / (2N)
    # only for N >> M, so here the modes hit are the sharp check and the KL must lie well above 0.
    n, m = 2000, 1000
    floor = perfect_model_floor(n, m, trials=100, seed=0)
    assert floor["modes"] == pytest.approx(m * (1 - (1 - 1 / m) ** n), rel=0.005)
    assert floor["modes_lo"] < floor["modes"] < floor["modes_hi"]
    # The standard protocol: 26,000 draws hit all 1000 modes, with KL close to the chi-square approximation.
    std = perfect_model_floor(26_000, 1000, trials=20, seed=1)
    assert std["modes"] == 1000
    assert std["mode_kl"] == pytest.approx(999 / (2 * 26_000), rel=0.05)
    assert std["mode_kl_lo"] < std["mode_kl"] < std["mode_kl_hi"]
    with pytest.raises(ValueError, match="n_modes"):
        perfect_model_floor(100, 1)
