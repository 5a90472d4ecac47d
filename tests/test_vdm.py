"""VDM (Kingma et al. 2021): schedules, the bound's terms against closed forms, the ancestral step against the
paper's formula, the Denoiser on VDM's grid, and bad input refused before training.

Expectations over t and the noise are taken by quadrature (Gauss-Legendre in t, Gauss-Hermite in eps), never by
single Monte Carlo draws, so tolerances are those of float64 arithmetic and the rules, not of sampling noise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special, stats
from vdm_cases import TINY_NET, Recording, randomised, uniform_score

from trilemma_bench import samplers
from trilemma_bench.methods.vdm import (
    VDM,
    antithetic_times,
    bin_centres,
    data_to_levels,
    diffusion_nats,
    levels_to_data,
    nats_to_bpd,
    prior_nats,
    recon_nats,
    vlb_terms,
)
from trilemma_bench.methods.vdm_denoiser import VDMDenoiser
from trilemma_bench.methods.vdm_samplers import ancestral_steps
from trilemma_bench.methods.vdm_schedule import schedule_table
from trilemma_bench.schedules import GAMMA_MAX, GAMMA_MIN, GAMMA_TYPES, FixedLinearGamma, make_gamma


def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n)
    return (x + 1) / 2, w / 2  # on [0, 1], weights summing to 1


def _hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / w.sum()  # E[f(eps)], eps ~ N(0, 1)


def _gamma_from_net_time(s: torch.Tensor) -> torch.Tensor:
    return GAMMA_MIN + s / 1000 * (GAMMA_MAX - GAMMA_MIN)


# --- schedules ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", GAMMA_TYPES)
def test_every_schedule_is_increasing_even_with_negative_raw_weights(kind: str) -> None:
    t = torch.linspace(0, 1, 2001, dtype=torch.float64)
    with torch.no_grad():
        g = randomised(kind)(t)
    assert g.shape == t.shape
    assert (g.diff() > 0).all()
    if kind == "learnable_nnet":  # the random weights make it visibly non-linear, or the test proves little
        assert (g - (g[0] + (g[-1] - g[0]) * t)).abs().max() > 0.5


@pytest.mark.parametrize("kind", GAMMA_TYPES)
def test_schedules_start_at_the_configured_endpoints(kind: str) -> None:
    with torch.no_grad():
        ends = make_gamma(kind).double()(torch.tensor([0.0, 1.0], dtype=torch.float64)).tolist()
    # fixed: exactly; the scalar's parameters are float32; the nnet's small l3 term starts near zero, not at it.
    tol = {"fixed": 0, "learnable_scalar": 1e-6, "learnable_nnet": 0.02}[kind]
    assert abs(ends[0] - GAMMA_MIN) <= tol and abs(ends[1] - GAMMA_MAX) <= tol
    with torch.no_grad():
        assert make_gamma("fixed", -2.0, 3.0)(torch.tensor(0.25)).item() == -0.75


def test_nnet_schedule_is_the_official_formula() -> None:
    gamma = randomised("learnable_nnet")
    t = np.linspace(0, 1, 11)
    a = {n: p.detach().numpy() for n, p in gamma.named_parameters()}
    h = np.abs(a["l2.weight"][:, 0])[None] * (2 * t[:, None] - 1) + a["l2.bias"][None]
    phi = 2 * special.expit(h) - 1
    expect = np.abs(a["l1.weight"][0, 0]) * t + a["l1.bias"][0] + phi @ np.abs(a["l3.weight"][0]) / 1024
    with torch.no_grad():
        np.testing.assert_allclose(gamma(torch.from_numpy(t)).numpy(), expect, rtol=1e-12)


def test_unknown_schedule_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown VDM gamma schedule 'cosine'.*fixed, learnable_scalar, learnable_nnet"):
        make_gamma("cosine")


# --- the bound's terms -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 7, 128])
@pytest.mark.parametrize("u", [0.0, 0.3, 0.999])
def test_antithetic_times_cover_the_unit_interval_evenly(u: float, n: int) -> None:
    t = antithetic_times(u, n).double()
    assert ((t >= 0) & (t < 1)).all() and len(t) == n
    s = t.sort().values
    torch.testing.assert_close(s.diff(), torch.full((n - 1,), 1 / n, dtype=torch.float64), atol=1e-6, rtol=0)
    assert float(s[0]) == pytest.approx(u % (1 / n), abs=1e-6)  # one stratum each: every 1/n-bin holds one t


def _gaussian_score(s2: float):
    """The exact eps(z_t) for x ~ N(0, s2): E[eps | z] = sigma z / (alpha^2 s2 + sigma^2)."""

    def score(z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        g = _gamma_from_net_time(s).view(-1, *([1] * (z.dim() - 1)))
        a2, v2 = torch.sigmoid(-g), torch.sigmoid(g)
        return v2.sqrt() * z / (a2 * s2 + v2)

    return score


def _expected_diffusion(gamma: torch.nn.Module, s2: float) -> float:
    """E_t E_x E_eps of the diffusion term per dimension: Gauss-Legendre in t, Gauss-Hermite in x and eps."""
    t, wt = _legendre(100)
    e, we = _hermite(6)  # the integrand is quadratic in (x, eps) at fixed t: exact
    T, X, E = np.meshgrid(t, e, e, indexing="ij")
    W = (wt[:, None, None] * we[None, :, None] * we[None, None, :]).ravel()
    x = torch.from_numpy(math.sqrt(s2) * X.ravel())[:, None]
    eps = torch.from_numpy(E.ravel())[:, None]
    d = diffusion_nats(_gaussian_score(s2), gamma, x, torch.from_numpy(T.ravel()), eps,
                       gamma_min=GAMMA_MIN, gamma_max=GAMMA_MAX, create_graph=False)
    return float((d * torch.from_numpy(W)).sum())


@pytest.mark.parametrize("s2", [0.25, 4.0])
def test_diffusion_term_of_the_exact_denoiser_on_gaussian_data_matches_the_closed_form(s2: float) -> None:
    results = {}
    for kind in GAMMA_TYPES:
        gamma = randomised(kind)
        with torch.no_grad():
            g0, g1 = gamma(torch.tensor([0.0, 1.0], dtype=torch.float64)).tolist()
        closed = 0.5 * math.log((1 + s2 * math.exp(-g0)) / (1 + s2 * math.exp(-g1)))
        got = _expected_diffusion(gamma, s2)
        assert got == pytest.approx(closed, rel=1e-7), kind
        # The same endpoints with a straight line between them: the shape does not change the expectation.
        assert _expected_diffusion(FixedLinearGamma(g0, g1), s2) == pytest.approx(got, rel=1e-7), kind
        results[kind] = (g0, g1, got)
    assert results["fixed"][2] != pytest.approx(results["learnable_nnet"][2], rel=1e-3)  # other endpoints differ


@pytest.mark.parametrize("g1", [5.0, 0.0, -2.0])
def test_prior_term_is_the_gaussian_kl(g1: float) -> None:
    f = torch.linspace(-1, 1, 12, dtype=torch.float64).view(2, 1, 2, 3)
    a, s = math.sqrt(special.expit(-g1)), math.sqrt(special.expit(g1))
    q, p = torch.distributions.Normal(a * f, s), torch.distributions.Normal(torch.zeros_like(f), torch.ones_like(f))
    expect = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    torch.testing.assert_close(prior_nats(f, torch.tensor(g1, dtype=torch.float64)), expect, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("levels", "g0"), [(5, -13.3), (5, -3.0), (17, -4.0), (17, 1.0)])
def test_reconstruction_term_is_the_posterior_over_bin_centres(levels: int, g0: float) -> None:
    g = torch.Generator().manual_seed(1)
    k = torch.randint(0, levels, (3, 1, 2, 2), generator=g)
    eps_0 = torch.randn(k.shape, generator=g, dtype=torch.float64)
    got = recon_nats(k, torch.tensor(g0, dtype=torch.float64), eps_0, levels)
    # -log q(k | z_0) for z_0 = alpha_0 c_k + sigma_0 eps_0, under a uniform prior over the V centres.
    a, s = math.sqrt(special.expit(-g0)), math.sqrt(special.expit(g0))
    c = (2 * (np.arange(levels) + 0.5) / levels - 1)
    z = a * c[k.numpy()] + s * eps_0.numpy()
    logp = stats.norm.logpdf(z[..., None], a * c, s)
    expect = special.logsumexp(logp, -1) - np.take_along_axis(logp, k.numpy()[..., None], -1)[..., 0]
    np.testing.assert_allclose(got.numpy(), expect.reshape(3, -1).sum(1), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("levels", "ends", "nodes"), [(4, (-3.0, 6.0), (100, 40)), (17, (-13.3, 5.0), (150, 50))])
def test_bits_per_dim_of_uniform_discrete_data_is_log2_levels(levels: int, ends: tuple[float, float],
                                                              nodes: tuple[int, int]) -> None:
    """With the exact denoiser the continuous-time bound of uniform data is H = log2 V bits per dimension, up to
    KL(q(z_1) || N(0, 1)) (< 1e-5 here): diffusion I(x; z_0) - I(x; z_1), prior I(x; z_1) + that KL, and
    reconstruction H - I(x; z_0) (the decoder is then the exact posterior). Checks the three terms, the
    encodings and the conversion to bits/dim together."""
    gamma = FixedLinearGamma(*ends)
    t, wt = _legendre(nodes[0])  # 4x the nodes moves the result by < 1e-6 bits
    e, we = _hermite(nodes[1])
    k = np.arange(levels)
    T, K, E = np.meshgrid(t, k, e, indexing="ij")
    W = torch.from_numpy((wt[:, None, None] * np.full(levels, 1 / levels)[None, :, None] * we[None, None, :]).ravel())
    x = levels_to_data(torch.from_numpy(K.ravel()), levels).double()[:, None]  # the DataModule's encoding
    eps = torch.from_numpy(E.ravel())[:, None]
    terms = vlb_terms(uniform_score(levels, *ends), gamma, x, levels=levels, t=torch.from_numpy(T.ravel()), eps=eps,
                      eps_0=eps, gamma_min=ends[0], gamma_max=ends[1])
    expected = {name: float((v * W).sum()) for name, v in terms.items()}
    if levels == 4:  # at gamma_0 = -3 neighbouring levels overlap: every term matters
        assert min(expected.values()) > 1e-4 and expected["recon"] > 0.05
    bpd = float(nats_to_bpd(torch.tensor(sum(expected.values())), x))
    assert bpd == pytest.approx(math.log2(levels), abs=2e-5)


def test_bits_per_dim_divides_by_every_dimension() -> None:
    x = torch.zeros(2, 3, 4, 5)
    assert float(nats_to_bpd(torch.tensor(60 * math.log(2)), x)) == pytest.approx(1.0)


@pytest.mark.parametrize("levels", [17, 256])
def test_levels_map_out_of_and_back_into_the_data_encoding_exactly(levels: int) -> None:
    k = torch.arange(levels)
    x = 2 * k.float() / (levels - 1) - 1
    assert torch.equal(data_to_levels(x, levels), k)
    assert torch.equal(levels_to_data(k, levels), x)
    c = bin_centres(k, levels)
    assert torch.allclose(c.diff(), torch.full((levels - 1,), 2 / levels)) and c[0] == -1 + 1 / levels


def test_digits_pixels_are_read_as_their_17_levels() -> None:
    from trilemma_bench.data import DATASETS, load_split

    x, _ = load_split("digits", "test")
    k = data_to_levels(x, DATASETS["digits"].levels)
    assert k.min() == 0 and k.max() == 16
    assert torch.equal(levels_to_data(k, 17), x)


# --- the model, its decoder and its sampler ----------------------------------------------------------------------

def _tiny_vdm(gamma_type: str = "learnable_nnet", levels: int = 17) -> VDM:
    torch.manual_seed(0)
    model = VDM(TINY_NET, levels=levels, gamma_type=gamma_type)
    with torch.no_grad():  # a bent EMA schedule: the sampler must use the averaged one
        for p, q in zip(model.ema.module["gamma"].parameters(), randomised(gamma_type, seed=3).parameters()):
            p.copy_(q.float())
    return model.eval()


def test_decoder_picks_the_level_whose_bin_holds_x() -> None:
    model = _tiny_vdm()
    k = torch.arange(17)
    inside = bin_centres(k, 17) + torch.linspace(-0.9, 0.9, 17) / 17  # anywhere in the bin of width 2/17
    assert torch.equal(model.decode(inside), levels_to_data(k, 17))
    assert torch.equal(model.decode(torch.tensor([-5.0, 5.0])), torch.tensor([-1.0, 1.0]))


def test_denoiser_lays_the_continuous_schedule_on_its_grid() -> None:
    gamma = randomised("learnable_nnet")
    seen = []
    den = VDMDenoiser(lambda z, s: seen.append(s) or torch.zeros_like(z), gamma, num_steps=10,
                      gamma_min=GAMMA_MIN, gamma_max=GAMMA_MAX)
    with torch.no_grad():
        exact = lambda t: torch.sigmoid(-gamma(torch.as_tensor(t, dtype=torch.float64)))
        torch.testing.assert_close(den.alpha_bar, exact(torch.arange(1, 11, dtype=torch.float64) / 10), rtol=1e-14, atol=0)
        assert float(den.alpha_bar_at(3.5)) == pytest.approx(float(exact(0.45)), rel=1e-14)  # fractional: exact
        assert float(den.alpha_bar_at(9)) == pytest.approx(float(exact(1.0)), rel=1e-14)
        den(torch.zeros(2, 1, 8, 8), torch.tensor([9, 0]))
        den(torch.zeros(1, 1, 8, 8), torch.tensor([3.5], dtype=torch.float64))
        g = gamma(torch.tensor([1.0, 0.1, 0.45], dtype=torch.float64))
    torch.testing.assert_close(torch.cat(seen).double(), 1000 * (g - GAMMA_MIN) / (GAMMA_MAX - GAMMA_MIN), rtol=1e-6, atol=1e-4)


def _fake_score(z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in for the network that depends on both its inputs."""
    return 0.7 * torch.tanh(z) + 1e-3 * s.to(z.dtype).view(-1, *([1] * (z.dim() - 1))) * z.roll(1, -1)


@pytest.mark.parametrize("T", [1, 5, 7])
def test_ancestral_sampler_is_vdms_step_formula(T: int) -> None:
    """ddpm_sample (beta-tilde, no clipping) on VDM's grid against a float64 loop written from the formula
    z_s = sqrt(sigmoid(-g_s)/sigmoid(-g_t)) (z_t - sigma_t c eps_hat) + sqrt((1 - alpha_s^2) c) eps, c = -expm1(g_s - g_t)."""
    model = _tiny_vdm()
    gamma = model.gamma(ema=True)
    calls = []

    def net(z, s):
        calls.append((z.clone(), s.clone()))
        return _fake_score(z, s)

    x_T = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    noise = Recording(5)
    num_steps, steps = ancestral_steps(T)
    assert len(steps) == T and (num_steps % T, steps[-1]) == (0, num_steps - 1)
    den = VDMDenoiser(net, gamma, num_steps=num_steps, gamma_min=GAMMA_MIN, gamma_max=GAMMA_MAX)
    x0 = samplers.ddpm_sample(den, x_T, timesteps=steps, variance="fixedsmall", clip_x0=False, noise=noise)

    g64 = lambda t: float(gamma.double()(torch.tensor(t, dtype=torch.float64)))
    sig = lambda v: 1 / (1 + math.exp(-v))
    z, ref_calls = x_T.clone(), []
    for i in range(T, 0, -1):
        g_t, g_s = g64(i / T), g64((i - 1) / T)
        s_in = torch.full((3,), 1000 * (g_t - GAMMA_MIN) / (GAMMA_MAX - GAMMA_MIN), dtype=torch.float64)
        ref_calls.append((z.clone(), s_in))
        eps_hat = _fake_score(z, s_in.float().double())  # the network is given its time in float32
        sigma_t = math.sqrt(sig(g_t))
        if i == 1:  # the last step goes to alpha = 1: x0_hat at t = 1/T (module docstring: why)
            z = (z - sigma_t * eps_hat) / math.sqrt(sig(-g_t))
            break
        c = -math.expm1(g_s - g_t)
        z = math.sqrt(sig(-g_s) / sig(-g_t)) * (z - sigma_t * c * eps_hat) + math.sqrt((1 - sig(-g_s)) * c) * noise.draws[T - i]
    assert len(calls) == len(ref_calls) == T and len(noise.draws) == T - 1
    for (z_got, s_got), (z_ref, s_ref) in zip(calls, ref_calls):
        torch.testing.assert_close(z_got, z_ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(s_got.double(), s_ref, rtol=1e-6, atol=1e-4)  # the net sees float32 time
    torch.testing.assert_close(x0, z, rtol=1e-10, atol=1e-10)


def test_vdm_method_samples_the_decoded_ancestral_chain() -> None:
    from trilemma_bench.methods import get_method

    model = _tiny_vdm()
    x_T = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    num_steps, steps = ancestral_steps(10)
    den = VDMDenoiser(_fake_score, model.gamma(), num_steps=num_steps, gamma_min=GAMMA_MIN, gamma_max=GAMMA_MAX)
    x0 = samplers.ddpm_sample(den, x_T, timesteps=steps, variance="fixedsmall", clip_x0=False, noise=Recording(1))
    got = get_method("vdm").sample(model, x_T, 10, noise=Recording(1), net=_fake_score)
    k = (((x0 + 1) * 17 / 2).floor()).clamp(0, 16)  # the nearest bin centre
    torch.testing.assert_close(got, levels_to_data(k, 17))


def test_sampler_refuses_zero_steps() -> None:
    with pytest.raises(ValueError, match="T >= 1 steps"):
        ancestral_steps(0)


def test_schedule_table_is_the_ema_schedule_beside_ddpms() -> None:
    model = _tiny_vdm()
    table = schedule_table(model)
    with torch.no_grad():
        expect = -model.gamma()(torch.tensor([0.0, 0.5, 1.0])).double()
    assert len(table["t"]) == 1001
    assert [table["logsnr_vdm"][i] for i in (0, 500, 1000)] == pytest.approx(expect.tolist(), rel=1e-6)
    assert math.isnan(table["logsnr_ddpm_linear"][0])
    a_T = float(torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)[-1])
    assert table["logsnr_ddpm_linear"][1000] == pytest.approx(math.log(a_T / (1 - a_T)))
