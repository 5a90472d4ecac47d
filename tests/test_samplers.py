"""Samplers against a closed form, against diffusers step for step, and their measured NFE."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trilemma_bench import samplers
from trilemma_bench.denoisers import Denoiser, GeneratorNoise, eps_denoiser
from trilemma_bench.schedules import alphas_cumprod, linear_betas

T = 1000
ALPHA_BAR = alphas_cumprod(linear_betas(T))


def model(net: nn.Module, alpha_bar: torch.Tensor = ALPHA_BAR) -> Denoiser:
    return eps_denoiser(net, alpha_bar)


def noise(seed: int) -> GeneratorNoise:
    return GeneratorNoise(torch.Generator().manual_seed(seed))


class GaussianOptimalEps(nn.Module):
    """For x0 ~ N(m, s^2) per pixel, E[eps | x_t] = sqrt(1-a)(x_t - sqrt(a) m) / (a s^2 + 1 - a) exactly."""

    def __init__(self, m: float, s: float):
        super().__init__()
        self.m, self.s = m, s

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = ALPHA_BAR[t].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        return (1 - a).sqrt() * (x - a.sqrt() * self.m) / (a * self.s**2 + 1 - a)


class TinyEps(nn.Module):
    """A small random eps-network whose output depends on both x and t."""

    def __init__(self, channels: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.t = nn.Linear(1, channels)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x) + self.t(t.to(x.dtype)[:, None] / T)[:, :, None, None])


class Recorder(nn.Module):
    """Records every (x_t, t) the sampler feeds the network, to compare trajectories step by step."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.calls = net, []

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.clone(), int(t[0])))
        return self.net(x, t)


# Gaussian data: with N=20,000 draws the standard errors are s/sqrt(N)=0.0035 (mean) and
# s/sqrt(2N)=0.0025 (std). The tolerances (0.02 on the mean, 3% on the std) allow ~5 standard errors
# plus the discretisation error of the chain, which a wrong coefficient exceeds by far (a missing sqrt
# on alpha_bar, or beta where 1-alpha_bar belongs, moves the std by more than 10%).
M, S, N = 0.3, 0.5, 20_000


@pytest.mark.parametrize("variance", ["fixedsmall", "fixedlarge"])
def test_ddpm_1000_steps_reproduces_gaussian(variance: str) -> None:
    x_T = torch.randn(N, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x0 = samplers.ddpm_sample(model(GaussianOptimalEps(M, S)), x_T, variance=variance, clip_x0=False,
                              noise=noise(2))
    assert abs(x0.mean().item() - M) < 0.02
    assert abs(x0.std().item() / S - 1) < 0.03


def ddim_gaussian_std(seq: list[int]) -> float:
    """Closed form for Gaussian data: each deterministic DDIM step maps x_t to x_s linearly with slope
    (sqrt(a_s a_t) s^2 + sqrt((1-a_s)(1-a_t))) / (a_t s^2 + 1 - a_t), which by Cauchy-Schwarz is at most
    sqrt(v_s / v_t): coarse steps shrink the variance. Product of slopes = std of x_0 for unit x_T."""
    c = 1.0
    for t, s in zip(reversed(seq), reversed([-1, *seq[:-1]])):
        a_t, a_s = ALPHA_BAR[t].item(), (ALPHA_BAR[s].item() if s >= 0 else 1.0)
        c *= ((a_s * a_t) ** 0.5 * S**2 + ((1 - a_s) * (1 - a_t)) ** 0.5) / (a_t * S**2 + 1 - a_t)
    return c


@pytest.mark.parametrize("skip", ["uniform", "quad"])
def test_ddim_50_steps_reproduces_gaussian(skip: str) -> None:
    x_T = torch.randn(N, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x0 = samplers.ddim_sample(model(GaussianOptimalEps(M, S)), x_T, nfe=50, skip=skip)
    expected_std = ddim_gaussian_std(samplers.ddim_timesteps(T, 50, skip))
    # DDIM preserves the mean exactly; its std is the closed form above up to sampling error (std of a
    # std ratio is 1/sqrt(2N) = 0.5%, so 1.5% is 3 standard errors).
    assert abs(x0.mean().item() - M) < 0.02
    assert abs(x0.std().item() / expected_std - 1) < 0.015
    # And 50 steps reproduce s within DDIM's own discretisation error: 5.5% (uniform), 3.0% (quad).
    assert abs(x0.std().item() / S - 1) < 0.065


def test_wrong_model_fails_gaussian_check() -> None:
    """The closed-form check has teeth: the optimal predictor for another variance misses the tolerance."""
    x_T = torch.randn(N, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x0 = samplers.ddim_sample(model(GaussianOptimalEps(M, 0.7 * S)), x_T, nfe=50)
    assert abs(x0.std().item() / S - 1) > 0.1


def assert_steps_match(ours: Recorder, out: torch.Tensor, sched, net: nn.Module, gen: torch.Generator,
                       **step_kwargs) -> None:
    """Step for step: diffusers takes each step from the very x_t ours fed the network, so errors never
    accumulate and 1e-5 bounds one step's rounding. Both draw one normal per step from the same
    generator, so stochastic steps see the same noise."""
    assert [t for _, t in ours.calls] == [int(t) for t in sched.timesteps]
    ours_next = [x for x, _ in ours.calls[1:]] + [out]
    with torch.no_grad():
        for (x, t), want in zip(ours.calls, ours_next):
            ref = sched.step(net(x, torch.full((x.shape[0],), t)), t, x, generator=gen, **step_kwargs).prev_sample
            torch.testing.assert_close(want, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("nfe", [10, 50])
def test_ddim_matches_diffusers_step_for_step(eta: float, nfe: int) -> None:
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDIMScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                    clip_sample=False, set_alpha_to_one=True, timestep_spacing="leading")
    sched.set_timesteps(nfe)
    net = TinyEps()
    x_T = torch.randn(4, 2, 8, 8, generator=torch.Generator().manual_seed(0))

    # Same schedule values on both sides: diffusers rounds alpha_bar to float32 (checked apart below).
    ours = Recorder(net)
    out = samplers.ddim_sample(model(ours, sched.alphas_cumprod.double()), x_T, nfe=nfe, eta=eta, noise=noise(7))

    assert_steps_match(ours, out, sched, net, torch.Generator().manual_seed(7), eta=eta)


def test_schedule_matches_diffusers() -> None:
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    torch.testing.assert_close(ALPHA_BAR.float(), sched.alphas_cumprod, atol=1e-6, rtol=1e-5)
    assert ALPHA_BAR.dtype == torch.float64


@pytest.mark.parametrize("variance,diffusers_variance", [("fixedsmall", "fixed_small"), ("fixedlarge", "fixed_large")])
@pytest.mark.parametrize("clip", [False, True])
def test_ddpm_matches_diffusers_posterior(variance: str, diffusers_variance: str, clip: bool) -> None:
    """Same x_t and noise each step, so equal outputs mean equal posterior means and variances.

    Run in float64 on both sides: diffusers computes 1 - alpha_bar_t in float32, which at t=1
    (alpha_bar = 0.9997) keeps only ~3 significant digits and drifts 1e-4 from the exact posterior.
    """
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                    clip_sample=clip, variance_type=diffusers_variance)
    sched.set_timesteps(T)
    sched.betas, sched.alphas, sched.alphas_cumprod = (linear_betas(T), 1 - linear_betas(T), ALPHA_BAR)
    net = TinyEps().double()
    x_T = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    ours = Recorder(net)
    out = samplers.ddpm_sample(model(ours), x_T, variance=variance, clip_x0=clip, noise=noise(3))
    assert_steps_match(ours, out, sched, net, torch.Generator().manual_seed(3))


@pytest.mark.parametrize("variance,diffusers_variance", [("fixedsmall", "fixed_small"), ("fixedlarge", "fixed_large")])
@pytest.mark.parametrize("nfe", [10, 50])
@pytest.mark.parametrize("clip", [False, True])
def test_respaced_ddpm_matches_diffusers_custom_timesteps(variance: str, diffusers_variance: str, nfe: int,
                                                          clip: bool) -> None:
    """The respaced chain against an independent implementation: diffusers' DDPMScheduler given our
    subsequence as custom timesteps recomputes each step's beta from alpha_bar of the kept steps
    (beta = 1 - a_t / a_prev), the posterior mean (Ho et al. Eq. 7) and the variance beta or beta-tilde."""
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                    clip_sample=clip, variance_type=diffusers_variance)
    steps = samplers.ddpm_respaced_timesteps(T, nfe)
    sched.set_timesteps(timesteps=list(reversed(steps)))
    sched.betas, sched.alphas, sched.alphas_cumprod = (linear_betas(T), 1 - linear_betas(T), ALPHA_BAR)
    sched.one = torch.tensor(1.0, dtype=torch.float64)
    net = TinyEps().double()
    x_T = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    ours = Recorder(net)
    out = samplers.ddpm_sample(model(ours), x_T, timesteps=steps, variance=variance, clip_x0=clip, noise=noise(5))
    assert len(ours.calls) == nfe
    assert_steps_match(ours, out, sched, net, torch.Generator().manual_seed(5))


def test_respaced_fixedlarge_adds_the_noise_the_issue_measured() -> None:
    """sigma^2 = beta of the respaced chain before its last step: std 0.36 / 0.18 / 0.08 / 0.05 at NFE
    10 / 20 / 50 / 100, which is why fixedlarge leaves visible noise at few steps (fixedsmall's is smaller)."""
    for nfe, want in [(10, 0.36), (20, 0.18), (50, 0.08), (100, 0.05)]:
        steps = samplers.ddpm_respaced_timesteps(T, nfe)
        beta = 1 - ALPHA_BAR[steps[1]] / ALPHA_BAR[steps[0]]
        assert float(beta.sqrt()) == pytest.approx(want, abs=0.006)
        tilde = beta * (1 - ALPHA_BAR[steps[0]]) / (1 - ALPHA_BAR[steps[1]])
        assert float(tilde.sqrt()) < 0.5 * want


@pytest.mark.parametrize("nfe", [1, 7, 10, 30, 100, 1000])
@pytest.mark.parametrize("name", ["ddim-uniform", "ddim-quad", "ddim-eta1", "ddpm"])
def test_counted_nfe_equals_network_calls(name: str, nfe: int) -> None:
    net = TinyEps()
    hook_calls = []
    net.register_forward_hook(lambda *_: hook_calls.append(1))
    counted = samplers.CountingModel(net)
    x = torch.randn(1, 2, 4, 4)
    if name == "ddpm":
        steps = None if nfe == T else samplers.ddpm_respaced_timesteps(T, nfe)
        samplers.ddpm_sample(model(counted), x, timesteps=steps, noise=noise(0))
        expected = T if steps is None else len(steps)
    else:
        skip = "quad" if name == "ddim-quad" else "uniform"
        samplers.ddim_sample(model(counted), x, nfe=nfe, skip=skip, eta=1.0 if name == "ddim-eta1" else 0.0,
                             noise=noise(0))
        expected = len(samplers.ddim_timesteps(T, nfe, skip))
    assert counted.nfe == len(hook_calls) == expected
    if name == "ddpm" or nfe in (1, 10, 100, 1000) or name == "ddim-quad":
        assert counted.nfe == nfe  # the requested budget is met exactly on the grid the benchmark uses


def test_bad_nfe_is_refused() -> None:
    with pytest.raises(ValueError, match="nfe must be between"):
        samplers.ddim_timesteps(T, 0)
    with pytest.raises(ValueError, match="skip type"):
        samplers.ddim_timesteps(T, 10, "cubic")
