"""The closed-form Bayes-optimal eps of the toy2d mixture, the samplers run on it, and its pinned baseline."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from trilemma_bench.benchmark import oracle
from trilemma_bench.data import TOY2D_CENTERS, TOY2D_STD
from trilemma_bench.metrics import modes_toy2d


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny float64 tensors: at 2 threads on a shared 2-core machine the same work ran 8x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _linear_alpha_bar() -> np.ndarray:
    """Ho et al. 2020's schedule written out here: betas linear 1e-4..0.02 over T = 1000, cumulative product."""
    return np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000))


def _eps_by_autograd(x: torch.Tensor, a: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """-sqrt(1 - a) * grad_x log p_t(x), p_t the noised mixture as torch.distributions builds it, row by row."""
    out = torch.empty_like(x)
    mu = TOY2D_CENTERS.double()
    for i in range(len(x)):
        scale = torch.sqrt(a[i] * TOY2D_STD**2 + 1 - a[i]).expand_as(mu)
        p_t = MixtureSameFamily(Categorical(probs=weights), Independent(Normal(a[i].sqrt() * mu, scale), 1))
        xi = x[i].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(p_t.log_prob(xi), xi)
        out[i] = -torch.sqrt(1 - a[i]) * grad
    return out


@pytest.mark.parametrize("uniform", [True, False])
def test_oracle_is_minus_sigma_times_the_score_of_the_noised_mixture(uniform: bool) -> None:
    g = torch.Generator().manual_seed(0)
    n = 64
    # Points near the modes, between them and far outside the grid; times from almost clean to pure noise.
    x = torch.cat([TOY2D_CENTERS.double()[torch.randint(25, (n // 2,), generator=g)]
                   + 0.1 * torch.randn(n // 2, 2, generator=g, dtype=torch.float64),
                   4 * torch.randn(n // 2, 2, generator=g, dtype=torch.float64)])
    t = torch.tensor([0, 1, 3, 10, 30, 100, 300, 999], dtype=torch.long).repeat(n // 8)
    alpha_bar = torch.from_numpy(_linear_alpha_bar())
    weights = (torch.ones(25, dtype=torch.float64) / 25 if uniform
               else torch.rand(25, generator=g, dtype=torch.float64) + 0.1)
    net = oracle.MixtureEps(alpha_bar, weights=None if uniform else weights)
    got = net(x, t)
    want = _eps_by_autograd(x, alpha_bar[t], weights / weights.sum())
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_oracle_at_fractional_time_uses_the_log_linear_alpha_bar_and_keeps_the_input_dtype() -> None:
    ab = _linear_alpha_bar()
    t = torch.tensor([12.25, 400.5])
    a = torch.tensor([math.exp(0.75 * math.log(ab[12]) + 0.25 * math.log(ab[13])),
                      math.exp(0.5 * math.log(ab[400]) + 0.5 * math.log(ab[401]))], dtype=torch.float64)
    x = torch.tensor([[0.3, -1.2], [2.5, 0.1]], dtype=torch.float64)
    net = oracle.MixtureEps(torch.from_numpy(ab))
    torch.testing.assert_close(net(x, t), _eps_by_autograd(x, a, torch.full((25,), 1 / 25, dtype=torch.float64)),
                               rtol=1e-9, atol=1e-12)
    assert net(x.float(), t).dtype == torch.float32


def test_the_regression_samples_on_the_ddpm_schedule_of_the_smoke_preset() -> None:
    np.testing.assert_allclose(oracle._model().alpha_bar.numpy(), _linear_alpha_bar(), rtol=1e-12)


def test_every_method_on_the_ddpm_network_is_regressed() -> None:
    from trilemma_bench.methods import METHODS

    names = {m.name for m in oracle.methods()}
    assert names == {name for name, m in METHODS.items() if m.model == "ddpm"}
    assert {"ddim", "ddpm-fixedlarge", "ddpm-fixedsmall"} <= names


def test_at_high_nfe_every_sampler_on_the_oracle_draws_the_mixture() -> None:
    # A Bayes-optimal denoiser with 1000 steps samples (nearly) the data: a sample of N(mu, s^2 I) lies within
    # 3 s of its mode with probability p = 1 - exp(-4.5) = 0.989; the bound is 4 binomial sd below that.
    # The mean squared distance to the nearest mode is 2 s^2 exactly; first-order steps contract it a little
    # (each DDIM step shrinks a Gaussian's spread, by Cauchy-Schwarz; 0.83-1.04 measured at n = 1000).
    n = 500
    p = 1 - math.exp(-4.5)
    model = oracle._model()
    for method in oracle.methods():
        # First-order samplers at 1000 steps; the higher-order solvers at the largest NFE they offer (they
        # refuse more steps than the grid has distinct times).
        first_order = method.name in ("ddim", "ddpm-fixedlarge", "ddpm-fixedsmall")
        nfe = 1000 if first_order else max(method.default_nfe)
        x, _ = oracle.oracle_samples(method, nfe, n=n, seed=3, model=model)
        stats = modes_toy2d(x, TOY2D_CENTERS, TOY2D_STD)
        assert stats["modes"] == 25, method.name
        # The ODE solvers at their largest default NFE are close to, not at, the data (measured at n = 500:
        # dpmpp-2m 1.00, dpmpp-3m-logsnr 0.976, heun 0.970 within 3 s); first-order samplers at 1000 steps are.
        floor = p - 4 * math.sqrt(p * (1 - p) / n) if first_order else 0.95
        assert stats["high_quality"] >= floor, (method.name, stats)
        assert stats["mode_kl"] < 0.1, (method.name, stats)  # 24 / (2n) = 0.024 expected from counts alone
        r2 = torch.cdist(x, TOY2D_CENTERS.double()).min(1).values.pow(2).mean() / (2 * TOY2D_STD**2)
        if first_order:
            assert 0.7 < float(r2) < 1.3, (method.name, float(r2))
        else:
            # The solvers end on the denoiser's output from their last time (t = 20 at 50 steps, sigma 0.065 >
            # s): the posterior mean, which shrinks each mode by s^2 / (s^2 + sigma^2) ~ 0.4 in variance.
            assert 0.05 < float(r2) < 1.3, (method.name, float(r2))


def test_the_oracle_regression_matches_its_committed_baseline() -> None:
    checks = oracle.compare(oracle.load(), oracle.run_cells())
    assert [c.line() for c in checks if not c.ok] == []
    assert {c.metric for c in checks} >= {"nfe", f"samples[:{oracle.PINNED}]", "modes", "high_quality", "mode_kl"}


def _records() -> list[dict]:
    from trilemma_bench.methods import get_method

    ddim = get_method("ddim")
    return [oracle.cell_record("ddim", nfe, oracle.oracle_samples(ddim, nfe, n=200)[0], nfe) for nfe in (10, 20)]


def test_oracle_compare_fails_on_a_moved_sample_a_mode_count_a_new_or_a_missing_cell() -> None:
    base = _records()
    assert all(c.ok for c in oracle.compare(base, base))
    moved = copy.deepcopy(base)
    moved[0]["first"][3][1] += 2e-6
    assert [c.metric for c in oracle.compare(base, moved) if not c.ok] == [f"samples[:{oracle.PINNED}]"]
    fewer = copy.deepcopy(base)
    fewer[1]["modes"] -= 1
    fewer[1]["high_quality"] -= 1 / oracle.NUM_SAMPLES
    assert {c.metric for c in oracle.compare(base, fewer) if not c.ok} == {"modes", "high_quality"}
    new = copy.deepcopy(base) + [{**base[0], "method": "dpm-solver++"}]
    assert [c.metric for c in oracle.compare(base, new) if not c.ok] == ["pinned"]
    assert [c.metric for c in oracle.compare(base, base[:1]) if not c.ok] == ["present"]
