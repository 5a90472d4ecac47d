"""Bits/dim: DDPM's full bound against a float64 loop written from Ho et al.'s formulas, its discretized decoder
against scipy, VDM's estimate on data whose entropy is known, per-image streams, and the CLI's bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from vdm_cases import TINY_NET, Recording, uniform_score

from trilemma_bench.cli import main
from trilemma_bench.denoisers import Denoiser
from trilemma_bench.likelihood import bits_per_dim, bpd_terms, ddpm_bpd_terms, discretized_gaussian_log_prob
from trilemma_bench.methods.ddpm import DDPM
from trilemma_bench.methods.vdm import VDM, levels_to_data
from trilemma_bench.noise import ImageNoise


def _fake_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.8 * torch.tanh(2 * x) + 0.05 * t.to(x.dtype).view(-1, *([1] * (x.dim() - 1))) * x.roll(1, -1)


def _reference_bound(ab: np.ndarray, x: np.ndarray, k: np.ndarray, levels: int, variance: str, clip: bool,
                     draws: list[np.ndarray]) -> np.ndarray:
    """Ho et al. 2020, Eq. 5 term by term, one image and one pixel at a time; draws[j] is x_t's noise at
    t = T-1-j (0-based index t: x_{t+1} in the paper). Nats per image."""
    T = len(ab)
    prev = np.concatenate([[1.0], ab[:-1]])
    beta = 1 - ab / prev
    tilde = lambda t: beta[t] * (1 - prev[t]) / (1 - ab[t])
    half = 1 / (levels - 1)
    out = np.zeros(len(x))
    for b in range(len(x)):
        total = 0.0
        for d in range(x.shape[1]):
            mu, var = math.sqrt(ab[-1]) * x[b, d], 1 - ab[-1]
            total += -0.5 * math.log(var) + 0.5 * (var + mu**2) - 0.5  # KL(N(mu, var) || N(0, 1))
        for j in range(T):
            t = T - 1 - j
            xt = math.sqrt(ab[t]) * x[b] + math.sqrt(1 - ab[t]) * draws[j][b]
            eps = _fake_eps(torch.from_numpy(xt)[None], torch.tensor([t])).numpy()[0]
            x0 = (xt - math.sqrt(1 - ab[t]) * eps) / math.sqrt(ab[t])
            if clip:
                x0 = np.clip(x0, -1, 1)
            # Eq. 7: the posterior mean of x_{t-1} given x_t and x0, here at the model's x0 and at the true one.
            c0, ct = math.sqrt(prev[t]) * beta[t] / (1 - ab[t]), math.sqrt(1 - beta[t]) * (1 - prev[t]) / (1 - ab[t])
            means = c0 * x0 + ct * xt, c0 * x[b] + ct * xt
            for d in range(x.shape[1]):
                m_model, m1 = means[0][d], means[1][d]
                if t == 0:  # the decoder: a Gaussian of variance beta-tilde_2 (paper) over k's bin
                    s = math.sqrt(tilde(1))
                    hi = math.inf if k[b, d] == levels - 1 else x[b, d] + half
                    lo = -math.inf if k[b, d] == 0 else x[b, d] - half
                    total += -math.log(stats.norm.cdf(hi, m_model, s) - stats.norm.cdf(lo, m_model, s))
                else:
                    s1 = math.sqrt(tilde(t))
                    s2 = math.sqrt(beta[t] if variance == "fixedlarge" else tilde(t))
                    total += math.log(s2 / s1) + (s1**2 + (m1 - m_model) ** 2) / (2 * s2**2) - 0.5
        out[b] = total
    return out


@pytest.mark.parametrize(("variance", "clip"), [("fixedlarge", True), ("fixedsmall", False)])
def test_ddpm_bound_matches_a_float64_loop_from_the_paper(variance: str, clip: bool) -> None:
    levels, T = 5, 6
    ab = np.cumprod(1 - np.linspace(0.05, 0.5, T))
    g = torch.Generator().manual_seed(0)
    k = torch.randint(0, levels, (3, 4), generator=g)
    k[0, :2] = torch.tensor([0, levels - 1])  # both open-ended bins
    x = levels_to_data(k, levels, torch.float64)
    noise = Recording(1)
    got = ddpm_bpd_terms(Denoiser(_fake_eps, torch.from_numpy(ab)), x, levels=levels, variance=variance, clip_x0=clip,
                         noise=noise)
    assert len(noise.draws) == T
    ref = _reference_bound(ab, x.numpy(), k.numpy(), levels, variance, clip, [d.numpy() for d in noise.draws])
    np.testing.assert_allclose(got["bpd"].numpy() * 4 * math.log(2), ref, rtol=1e-9)
    torch.testing.assert_close(got["bpd"], got["prior"] + got["kl"] + got["decoder"])


def test_discretized_gaussian_is_a_distribution_over_the_levels_and_matches_scipy() -> None:
    levels = 17
    k = torch.arange(levels)
    for mean, log_scale in [(0.1, -3.0), (0.93, -6.0), (-1.4, 0.5), (30.0, -2.0)]:
        m, ls = torch.full((levels,), mean, dtype=torch.float64), torch.full((levels,), log_scale, dtype=torch.float64)
        logp = discretized_gaussian_log_prob(k, m, ls, levels)
        assert torch.isfinite(logp).all()
        assert float(torch.logsumexp(logp, 0)) == pytest.approx(0.0, abs=1e-12)
        edges = np.concatenate([[-np.inf], (2 * np.arange(levels - 1) + 1) / (levels - 1) - 1, [np.inf]])
        # P(k) = Phi(hi) - Phi(lo) left of the mean, SF(lo) - SF(hi) right of it: scipy in its accurate tails.
        cdf, sf = stats.norm.logcdf(edges, mean, math.exp(log_scale)), stats.norm.logsf(edges, mean, math.exp(log_scale))
        with np.errstate(divide="ignore"):  # np.where below evaluates both sides
            left = cdf[1:] + np.log1p(-np.exp(np.minimum(cdf[:-1] - cdf[1:], 0)))
            right = sf[:-1] + np.log1p(-np.exp(np.minimum(sf[1:] - sf[:-1], 0)))
        ref = np.where(edges[:-1] + edges[1:] > 2 * mean, right, left)
        big = ref > -700  # compare where float64 scipy still holds the value
        np.testing.assert_allclose(logp.numpy()[big], ref[big], rtol=1e-7, atol=1e-9)


def _uniform_vdm(levels: int = 4, ends: tuple[float, float] = (-3.0, 6.0)) -> VDM:
    """A VDM whose (EMA) score is the exact eps of data uniform over its levels."""
    model = VDM(TINY_NET, levels=levels, gamma_type="fixed", gamma_min=ends[0], gamma_max=ends[1])
    exact = uniform_score(levels, *ends)

    class Exact(torch.nn.Module):
        def forward(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return exact(z.double(), s.double()).to(z.dtype)

    model.ema.module["score"] = Exact()
    return model.eval()


def test_vdm_bits_per_dim_of_uniform_data_with_the_exact_denoiser_is_log2_levels() -> None:
    """Monte Carlo through bits_per_dim (stratified times, per-image streams) on 64 images of 64 pixels: the mean
    must be within 4 standard errors of log2 V (quadrature gives it to 1e-6 in test_vdm)."""
    model = _uniform_vdm()
    g = torch.Generator().manual_seed(0)
    x = levels_to_data(torch.randint(0, 4, (64, 1, 8, 8), generator=g), 4)
    bpd = bits_per_dim(model, x, time_samples=16)
    assert bpd.shape == (64,)
    sem = float(bpd.std() / 8)
    assert 0 < sem < 0.02
    assert abs(float(bpd.mean()) - 2.0) < 4 * sem


def test_vdm_bits_per_dim_of_image_i_does_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    model = VDM(TINY_NET, levels=17).eval()
    x = levels_to_data(torch.randint(0, 17, (5, 1, 8, 8), generator=torch.Generator().manual_seed(1)), 17)
    whole = bits_per_dim(model, x, noise=ImageNoise(3, range(5)), time_samples=4)
    part = bits_per_dim(model, x[2:], noise=ImageNoise(3, range(2, 5)), time_samples=4)
    torch.testing.assert_close(whole[2:], part, rtol=1e-5, atol=1e-6)
    again = bits_per_dim(model, x, noise=ImageNoise(4, range(5)), time_samples=4)
    assert not torch.allclose(whole, again)  # another seed, other draws


def test_ddpm_bits_per_dim_uses_its_sampler_variance_and_clipping() -> None:
    torch.manual_seed(0)
    model = DDPM({k: v for k, v in TINY_NET.items() if k != "fourier"}, num_train_timesteps=20,
                 training_config={"dataset": "digits"}).eval()
    x = levels_to_data(torch.randint(0, 17, (3, 1, 8, 8), generator=torch.Generator().manual_seed(1)), 17)
    large, small = (bpd_terms(model, x, variance=v, noise=ImageNoise(0, range(3))) for v in ("fixedlarge", "fixedsmall"))
    torch.testing.assert_close(large["prior"], small["prior"])
    assert (large["kl"] != small["kl"]).all()
    with pytest.raises(ValueError, match="unknown variance"):
        bits_per_dim(model, x, variance="learned")


@pytest.mark.parametrize(("argv", "message"), [
    (["--method", "ddim"], "method 'ddim' has no likelihood here: use one of ddpm-fixedlarge, ddpm-fixedsmall, vdm"),
    (["--method", "vdm", "--num-images", "1"], "--num-images must be between 2 and"),
    (["--method", "vdm", "--time-samples", "-1"], "--time-samples and --batch-size must be positive"),
])
def test_bpd_command_refuses_bad_input_before_training(argv: list[str], message: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("TRILEMMA_BENCH_CACHE", str(tmp_path))
    assert main(["bpd", *argv, "--preset", "digits"]) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert not list(tmp_path.rglob("*.ckpt"))


def test_bench_rows_of_a_method_with_a_likelihood_carry_its_bits_per_dim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                          capsys) -> None:
    """The bench joins the checkpoint's bound to every row of it; a method without one gets none; the bpd command
    gives the same figure (same per-image streams) and writes it into the rows of that checkpoint only."""
    from trilemma_bench.benchmark.results import read_results
    from trilemma_bench.presets import PRESETS

    monkeypatch.setenv("TRILEMMA_BENCH_CACHE", str(tmp_path / "cache"))
    # The wiring under test does not need digits' full networks and T = 1000: the DDPM bound costs one call per
    # step of T, so a small UNet over T = 100 keeps this test seconds instead of a minute.
    digits = PRESETS["digits"]
    small = {**digits.models["ddpm"].net, "ch": 8, "attn_resolutions": ()}
    models = {**digits.models, "ddpm": digits.models["ddpm"].replace(net=small).with_options(num_train_timesteps=100),
              "vdm": digits.models["vdm"].replace(net=small)}
    monkeypatch.setitem(PRESETS, "digits", digits.replace(models=models))
    results = tmp_path / "results"
    common = ["--preset", "digits", "--steps", "2", "--device", "cpu", "--threads", "1"]
    bench = [*common, "--num-samples", "24", "--extractor", "raw", "--results", str(results)]
    assert main(["bench", "--method", "ddpm-fixedsmall", "--nfe", "2", "--seeds", "0,1", "--bpd-images", "6", *bench]) == 0
    assert main(["bench", "--method", "ddim", "--nfe", "2", *bench]) == 0
    assert main(["bench", "--method", "vdm", "--nfe", "2", "--bpd-images", "4", *bench]) == 0
    table = read_results(results)
    vdm = table[table["method"] == "vdm"].iloc[0]
    assert 0 < vdm["bpd"] < 20 and vdm["bpd_n"] == 4
    schedule = pd.read_csv(results / "schedules" / f"{vdm['checkpoint']}.csv")  # the report draws it
    assert len(schedule) == 1001 and schedule["logsnr_vdm"].is_monotonic_decreasing
    small, ddim = table[table["method"] == "ddpm-fixedsmall"], table[table["method"] == "ddim"]
    assert len(small) == 2 and small["bpd"].notna().all() and small["bpd"].nunique() == 1
    assert (small["bpd_n"] == 6).all() and (small["bpd_split"] == "test").all()
    assert 0 < float(small["bpd"].iloc[0]) < 20 and float(small["bpd_sem"].iloc[0]) > 0
    assert ddim["bpd"].isna().all() and table.loc[table["method"] == "real", "bpd"].isna().all()

    capsys.readouterr()
    assert main(["bpd", "--method", "ddpm-fixedsmall", *common, "--num-images", "6", "--results", str(results)]) == 0
    mean, _ = map(float, capsys.readouterr().out.split()[-2:])
    assert mean == pytest.approx(float(small["bpd"].iloc[0]), rel=1e-6)
    after = read_results(results)
    assert after.loc[after["method"] == "ddim", "bpd"].isna().all()  # rows of other methods untouched
    assert (after.loc[after["method"] == "ddpm-fixedsmall", "bpd"] == small["bpd"].iloc[0]).all()
