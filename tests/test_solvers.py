"""DPM-Solver++ and EDM's Heun: against diffusers step for step, against a float64 reference written from the
paper's equations, against the Gaussian closed form, their counted NFE and their noise range."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from test_samplers import ALPHA_BAR, Recorder, T, TinyEps
from torch import nn

from trilemma_bench import samplers
from trilemma_bench.denoisers import Denoiser, eps_denoiser

M, S, N = 0.3, 0.5, 20_000  # Gaussian data and sample size, as in test_samplers


class GammaDenoiser(Denoiser):
    """A continuous-time stand-in for VDM: gamma linear in u = t / (K-1) from gamma_min to gamma_max,
    alpha_bar = sigmoid(-gamma) exactly between grid points, the network conditioned on u."""

    def __init__(self, net: nn.Module, gamma_min: float = -13.3, gamma_max: float = 5.0, num_steps: int = T):
        self.gamma_min, self.gamma_max, self.k = gamma_min, gamma_max, num_steps
        super().__init__(net, self.alpha_bar_of_u(torch.arange(num_steps, dtype=torch.float64) / (num_steps - 1)))

    def gamma(self, u: torch.Tensor) -> torch.Tensor:
        return self.gamma_min + (self.gamma_max - self.gamma_min) * u

    def alpha_bar_of_u(self, u: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(-self.gamma(u))

    def alpha_bar_at(self, t: float | torch.Tensor) -> torch.Tensor:
        return self.alpha_bar_of_u(torch.as_tensor(t, dtype=torch.float64).clamp(0, self.k - 1) / (self.k - 1))

    def net_time(self, t: torch.Tensor) -> torch.Tensor:
        return t.double() / (self.k - 1)


class GaussianEps(nn.Module):
    """E[eps | x_t] for x0 ~ N(M, S^2) per pixel, at whatever time the network is given (``alpha_bar_of``
    maps it to alpha-bar): fractional times get the exact optimum of the interpolated schedule."""

    def __init__(self, alpha_bar_of):
        super().__init__()
        self.alpha_bar_of = alpha_bar_of

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.alpha_bar_of(t.double()).to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        return (1 - a).sqrt() * (x - a.sqrt() * M) / (a * S**2 + 1 - a)


def ddpm_gaussian() -> Denoiser:
    model = eps_denoiser(nn.Identity(), ALPHA_BAR)
    model.net = GaussianEps(model.alpha_bar_at)
    return model


def gamma_gaussian(gamma_max: float = 5.0) -> Denoiser:
    model = GammaDenoiser(nn.Identity(), gamma_max=gamma_max)
    model.net = GaussianEps(model.alpha_bar_of_u)
    return model


class TimeRecorder(Recorder):
    """Recorder keeping fractional times."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.clone(), float(t[0])))
        return self.net(x, t)


# ------------------------------------------------------------------------------ DPM-Solver++(2M) vs diffusers


def diffusers_2m(n: int, **config):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02,
                                                  beta_schedule="linear", **config)
    sched.set_timesteps(n)
    return sched


def worst_step_error(n: int, sampler=None, **config) -> float:
    """Our 2M on our own float64 table against diffusers' scheduler fed the very x_t ours fed the network, each
    step's error relative to the largest |x| of that step (the samples' scale; a random network's x0
    predictions are far from unit scale, so absolute tolerances would mean different things per step)."""
    sched = diffusers_2m(n, **config)
    net = TinyEps()
    ours = Recorder(net)
    x_T = torch.randn(4, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    sampler = sampler or (lambda model, x: samplers.dpmpp_2m_sample(model, x, nfe=n))
    out = sampler(eps_denoiser(ours, ALPHA_BAR), x_T)
    assert [t for _, t in ours.calls] == [int(t) for t in sched.timesteps]
    assert ours.calls[-1][1] == round((T - 1) / n)
    worst = 0.0
    with torch.no_grad():
        for (x, t), want in zip(ours.calls, [x for x, _ in ours.calls[1:]] + [out]):
            ref = sched.step(net(x, torch.full((x.shape[0],), t)), t, x).prev_sample
            worst = max(worst, float((want - ref).abs().max() / ref.abs().max()))
    return worst


# diffusers builds its schedule in float32: alpha_bar is 3.6e-7 off ours, sigma = sqrt((1 - a) / a) up to
# 7.6e-5 off at t = 1 and 1.9e-5 at t = 10, where 1 - a keeps few float32 digits; but there sigma multiplies
# an eps term that is small against x, so each step's error stays below 5e-7 of the step's scale for every
# N from 1 to 50 (8e-7 at N = 999), float32 rounding of the update itself. 2e-6 holds with margin and still
# fails the variants one setting away (test below), which differ by 6e-5 or more.
TOL_2M = 2e-6


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 10, 14, 15, 16, 20, 25, 33, 50])
def test_dpmpp_2m_matches_diffusers_step_for_step(n: int) -> None:
    """N from 1 to 50 all pass (checked once; 1,275 steps cost 18 s); these cover the ends, odd and even N,
    and diffusers' lower-order threshold at 15 steps."""
    assert worst_step_error(n) < TOL_2M


@pytest.mark.parametrize("n", [5, 10, 14, 15, 20, 50])
def test_order_3_update_matches_diffusers_solver_order_3_step_for_step(n: int) -> None:
    """The order-3 update (shared by the 3M sampler) against diffusers' third-order multistep, on diffusers'
    timesteps and its order rule: 1, 2, then 3; the last step 1 (final sigma 0), the one before 2 below 15."""
    orders = [1 if i in (0, n - 1) else 2 if i == 1 or (i == n - 2 and n < 15) else 3 for i in range(n)]
    steps = [*samplers.dpmpp_2m_timesteps(T, n), None]
    run = lambda model, x: samplers._dpmpp_multistep(model, x, steps, orders)
    assert worst_step_error(n, run, solver_order=3) < TOL_2M


@pytest.mark.parametrize("config", [{"solver_type": "heun"}, {"final_sigmas_type": "sigma_min"}])
def test_the_diffusers_comparison_fails_a_scheduler_one_setting_away(config: dict) -> None:
    assert worst_step_error(10, **config) > 10 * TOL_2M


def test_dpmpp_2m_refuses_more_steps_than_distinct_timesteps() -> None:
    with pytest.raises(ValueError, match="nfe must be between 1 and 999"):
        samplers.dpmpp_2m_timesteps(T, T)
    assert len(set(samplers.dpmpp_2m_timesteps(T, T - 1))) == T - 1


# ------------------------------------------------------------ DPM-Solver++(3M) vs a float64 reference


def reference_3m(model_times, alpha_at, lambda_to_t, net, x_T: torch.Tensor, n: int, curvature: float = 0.5):
    """The official multistep order-3 DPM-Solver++ re-derived from the paper's equations, in float64.

    Times: lambda = log(alpha / sigma) uniform between the grid's ends, mapped back by ``lambda_to_t``.
    Orders: 1, then 2, then 3, the last steps min(3, n + 1 - step) below 10 steps (official lower_order_final).
    Update (Lu et al. 2022, DPM-Solver++ Eq. 8): x_t = (sigma_t / sigma_s) x_s + sigma_t int e^lambda x0(lambda)
    over [lambda_s, lambda_t], x0(lambda) a polynomial in lambda through the latest x0 predictions. Order 1 is
    DDIM (x_t = alpha_t m0 + sigma_t eps); order 2 their Algorithm 2 (D = (1 + 1/2r) m0 - (1/2r) m1); order 3
    integrates by Gauss-Legendre quadrature the Newton quadratic through the last three predictions, its
    curvature scaled by ``curvature``: the official code's D2 = (D1_0 - D1_1) / (r0 + r1) is h^2 x''/2 where
    the Taylor term (phi_3 already holds the 1/2) needs h^2 x'', so it runs at half the curvature (0.5); 1.0
    is the exact quadratic. Returns the times and the x each step reaches.
    """
    lam = lambda t: math.log(alpha_at(t) / math.sqrt(1 - alpha_at(t) ** 2))
    lams = np.linspace(lam(model_times[0]), lam(model_times[1]), n + 1)
    ts = [model_times[0], *[lambda_to_t(v) for v in lams[1:-1]], model_times[1]]
    nodes, weights = np.polynomial.legendre.leggauss(12)
    x, xs, hist = x_T, [], []
    for k in range(1, n + 1):
        order = 1 if k == 1 else 2 if k == 2 else (min(3, n + 1 - k) if n < 10 else 3)
        s, t = ts[k - 1], ts[k]
        a_s, a_t = alpha_at(s), alpha_at(t)
        sg_s, sg_t = math.sqrt(1 - a_s**2), math.sqrt(1 - a_t**2)
        eps = net(x, torch.full((x.shape[0],), s, dtype=torch.float64))
        hist = [*hist[-2:], ((x - sg_s * eps) / a_s, lams[k - 1])]
        if order == 1:
            x = a_t * hist[-1][0] + sg_t * eps
        elif order == 2:
            (m1, l1), (m0, l0) = hist[-2:]
            r = (l0 - l1) / (lams[k] - l0)
            d = (1 + 1 / (2 * r)) * m0 - 1 / (2 * r) * m1
            x = sg_t / sg_s * x - a_t * (math.exp(-(lams[k] - l0)) - 1) * d
        else:
            (m2, l2), (m1, l1), (m0, l0) = hist
            f01, f12 = (m0 - m1) / (l0 - l1), (m1 - m2) / (l1 - l2)
            f012 = (f01 - f12) / (l0 - l2)
            slope = f01 + f012 * (l0 - l1)  # the quadratic's derivative at the newest point
            half, mid = (lams[k] - l0) / 2, (lams[k] + l0) / 2
            integral = torch.zeros_like(x)
            for z, w in zip(nodes, weights):
                tau = mid + half * z - l0
                poly = m0 + slope * tau + curvature * f012 * tau**2  # f012 = x''/2 of the quadratic
                integral += w * half * math.exp(l0 + tau) * poly
            x = sg_t / sg_s * x + sg_t * integral
        xs.append(x)
    return ts[:-1], xs


def _ddpm_reference_schedule():
    log_alpha = 0.5 * np.log(ALPHA_BAR.numpy())  # piecewise linear in t, the official discrete schedule
    grid = np.arange(T, dtype=np.float64)
    alpha_at = lambda t: math.exp(np.interp(t, grid, log_alpha))
    lambda_to_t = lambda v: float(np.interp(-0.5 * np.logaddexp(0, -2 * v), log_alpha[::-1], grid[::-1]))
    return alpha_at, lambda_to_t


def _gamma_reference_schedule(model: GammaDenoiser):
    # alpha^2 = sigmoid(-gamma), so lambda = -gamma / 2 and t follows in closed form.
    u_of_gamma = lambda g: (g - model.gamma_min) / (model.gamma_max - model.gamma_min)
    alpha_at = lambda t: math.sqrt(1 / (1 + math.exp(model.gamma(t / (T - 1)))))
    return alpha_at, lambda v: u_of_gamma(-2 * v) * (T - 1)


@pytest.mark.parametrize("n", [3, 4, 5, 9, 10, 15, 25])
@pytest.mark.parametrize("kind", ["ddpm", "gamma"])
def test_dpmpp_3m_matches_a_float64_reference_of_the_papers_updates(kind: str, n: int) -> None:
    net = TinyEps().double()
    ours = TimeRecorder(net)
    if kind == "ddpm":
        model, (alpha_at, lambda_to_t) = eps_denoiser(ours, ALPHA_BAR), _ddpm_reference_schedule()
        ref_net = net
    else:
        model = GammaDenoiser(ours)
        alpha_at, lambda_to_t = _gamma_reference_schedule(model)
        ref_net = lambda x, t: net(x, t / (T - 1))
    x_T = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = samplers.dpmpp_3m_sample(model, x_T, nfe=n)

    ts, xs = reference_3m((T - 1, 0), alpha_at, lambda_to_t, ref_net, x_T, n)
    got_t = [t for _, t in ours.calls]
    if kind == "gamma":
        got_t = [u * (T - 1) for u in got_t]  # the network saw u = t / (K-1)
    assert len(ours.calls) == n
    np.testing.assert_allclose(got_t, ts, rtol=0, atol=1e-6)  # in grid steps
    # The reference runs its own chain from x_T, so errors could accumulate: float64 keeps them below 1e-11.
    for got, want in zip([x for x, _ in ours.calls[1:]] + [out], xs):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10 * float(want.abs().max()))
    if n >= 5:  # an order-3 step ran: the exact quadratic (Taylor-consistent curvature) is another solver
        _, exact = reference_3m((T - 1, 0), alpha_at, lambda_to_t, ref_net, x_T, n, curvature=1.0)
        assert float((exact[-1] - out).abs().max()) > 1e-3 * float(out.abs().max())  # measured 2e-3 to 1e-2


def test_dpmpp_3m_refuses_fewer_steps_than_its_order() -> None:
    with pytest.raises(ValueError, match="at least 3 steps"):
        samplers.dpmpp_3m_sample(ddpm_gaussian(), torch.zeros(1, 1), nfe=2)


# ------------------------------------------------------------------------------------- Gaussian closed form

# With N = 20,000 draws the mean's standard error is S / sqrt(N) = 0.0035 and the std ratio's 1/sqrt(2N) = 0.5%.
# Each sampler is affine in x_T on Gaussian data, so its discretisation error alone was measured exactly from
# x_T = 0 and 1 (float64): at the NFE used, mean -0.001 for all three; std -0.04% (2M, 50), +0.8% (3M, 20),
# +2.3% (Heun, 49 = 25 levels; EDM's rho = 7 grid takes large steps in sigma at the low end: +4.7% at 35, +18%
# at 19). Tolerances: 0.02 on the mean; 1.5% (3 standard errors) plus the discretisation error on the std,
# rounded up. A wrong coefficient moves the std by far more (DDIM's own error at 50 steps is -5.5%).
@pytest.mark.parametrize(
    ("name", "run", "std_tol"),
    [
        ("dpmpp-2m", lambda m, x: samplers.dpmpp_2m_sample(m, x, nfe=50), 0.015),
        ("dpmpp-3m", lambda m, x: samplers.dpmpp_3m_sample(m, x, nfe=20), 0.025),
        ("heun", lambda m, x: samplers.heun_sample(m, x, nfe=49), 0.04),
        ("heun-exact-t", lambda m, x: samplers.heun_sample(m, x, nfe=49, snap=False), 0.04),
    ],
)
def test_solvers_reproduce_the_gaussian(name: str, run, std_tol: float) -> None:
    x_T = torch.randn(N, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x0 = run(ddpm_gaussian(), x_T)
    assert abs(x0.mean().item() - M) < 0.02
    assert abs(x0.std().item() / S - 1) < std_tol


def test_solvers_converge_on_the_gaussian() -> None:
    """Exact (affine) std error shrinks with the budget for each solver, and the high-order ones beat DDIM."""
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)

    def std_error(run) -> float:
        y = run(ddpm_gaussian(), x)
        return abs(float(y[1] - y[0]) / S - 1)

    for run, budgets in [
        (lambda nfe: lambda m, z: samplers.dpmpp_2m_sample(m, z, nfe=nfe), (10, 20, 50)),
        (lambda nfe: lambda m, z: samplers.dpmpp_3m_sample(m, z, nfe=nfe), (10, 20, 50)),
        (lambda nfe: lambda m, z: samplers.heun_sample(m, z, nfe=nfe), (9, 19, 49)),
    ]:
        errors = [std_error(run(nfe)) for nfe in budgets]
        assert errors[0] > errors[1] > errors[2], errors
    ddim_20 = std_error(lambda m, z: samplers.ddim_sample(m, z, nfe=20))
    assert std_error(lambda m, z: samplers.dpmpp_2m_sample(m, z, nfe=20)) < ddim_20
    assert std_error(lambda m, z: samplers.dpmpp_3m_sample(m, z, nfe=20)) < ddim_20


# ------------------------------------------------------------------------------------------- EDM's Heun


@pytest.mark.parametrize("levels", [2, 3, 5, 18, 25])
def test_heun_makes_2n_minus_1_calls_counted(levels: int) -> None:
    counted = samplers.CountingModel(TinyEps())
    samplers.heun_sample(eps_denoiser(counted, ALPHA_BAR), torch.randn(2, 2, 4, 4), nfe=2 * levels - 1)
    assert counted.nfe == 2 * levels - 1


@pytest.mark.parametrize("nfe", [1, 2, 10])
def test_heun_refuses_what_2n_minus_1_cannot_make(nfe: int) -> None:
    with pytest.raises(ValueError, match="odd NFE of at least 3"):
        samplers.heun_sample(ddpm_gaussian(), torch.zeros(1, 1), nfe=nfe)


def test_heun_sigmas_are_clamped_to_a_ddpm_networks_range_and_snapped_to_its_grid() -> None:
    model = ddpm_gaussian()
    grid = ((1 - ALPHA_BAR) / ALPHA_BAR).sqrt()
    assert float(grid[0]) == pytest.approx(0.0100, abs=5e-5) and float(grid[-1]) == pytest.approx(157.4, abs=0.05)
    sigmas, times = samplers.edm_sigmas(model, 18)
    assert sigmas[-1] == 0 and times[-1] is None and len(sigmas) == 19
    assert sigmas[-2] == pytest.approx(float(grid[0]), rel=1e-12) and times[-2] == 0  # 0.002 -> the network's 0.0100
    assert abs(sigmas[0] - 80) < 0.5 and times[0] == int(np.abs(grid.numpy() - 80).argmin())  # 80 is in range
    assert all(sigmas[i] == pytest.approx(float(grid[int(t)]), rel=1e-12) for i, t in enumerate(times[:-1]))
    assert all(a > b for a, b in itertools.pairwise(sigmas))


def test_heun_sigmas_are_clamped_to_a_continuous_networks_smaller_range() -> None:
    """gamma_max = 5 (VDM's) reaches sigma = e^2.5 = 12.18 only; gamma_min = -13.3 goes below 0.002."""
    model = gamma_gaussian(gamma_max=5.0)
    sigmas, times = samplers.edm_sigmas(model, 18, snap=False)
    assert sigmas[0] == pytest.approx(math.exp(2.5), rel=1e-12) and sigmas[0] == pytest.approx(12.18, abs=0.005)
    assert sigmas[-2] == pytest.approx(0.002, rel=1e-12) and sigmas[-1] == 0
    assert times[0] == pytest.approx(T - 1, abs=1e-9)
    for s, t in zip(sigmas[:-1], times[:-1]):  # each level evaluated at its exact time
        assert float(((1 - model.alpha_bar_at(t)) / model.alpha_bar_at(t)).sqrt()) == pytest.approx(s, rel=1e-9)
    # And the sampler uses that range: its first call is at the last index, on x_T * 12.18 / sqrt(1 + 12.18^2).
    rec = TimeRecorder(model.net)
    model.net = rec
    x_T = torch.randn(3, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    samplers.heun_sample(model, x_T, nfe=5, snap=False)
    assert rec.calls[0][1] == pytest.approx(1.0, abs=1e-12)  # the network is conditioned on u = t / (K-1)
    torch.testing.assert_close(rec.calls[0][0], x_T * sigmas[0] / math.sqrt(1 + sigmas[0] ** 2))


def test_time_at_alpha_bar_inverts_the_schedule_between_grid_points() -> None:
    model = eps_denoiser(nn.Identity(), ALPHA_BAR)
    t = torch.tensor([0.0, 0.25, 17.5, 500.0, 998.9])
    torch.testing.assert_close(samplers.time_at_alpha_bar(model, model.alpha_bar_at(t)), t.double(), rtol=0, atol=1e-9)
