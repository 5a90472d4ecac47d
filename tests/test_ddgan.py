"""DDGAN: the official schedule and posterior, sampling through the shared sampler, the GAN training step,
and a short toy2d training that must cover the 25 modes."""

from __future__ import annotations

import math

import lightning as L
import pandas as pd
import pytest
import torch

from trilemma_bench.checkpoints import CheckpointError
from trilemma_bench.cli import main
from trilemma_bench.data import TOY2D_CENTERS, TOY2D_STD
from trilemma_bench.methods import METHODS, ModelSpec, get_method
from trilemma_bench.methods.ddgan import DDGAN
from trilemma_bench.metrics import modes_toy2d
from trilemma_bench.noise import ImageNoise, initial_noise
from trilemma_bench.presets import get_preset
from trilemma_bench.samplers import CountingModel
from trilemma_bench.schedules import ddgan_betas, posterior_coefficients
from trilemma_bench.train import build_model, train_model

# From the official code (train_ddgan.py get_sigma_schedule / Posterior_Coefficients), as issue 9 lists them.
OFFICIAL_BETAS = {1: [0.999957], 2: [0.921324, 0.999451], 4: [0.478255, 0.849206, 0.956418, 0.987404]}
OFFICIAL_POSTERIOR_T4 = {
    "x0": [1.0, 0.665778, 0.269191, 0.0578216],
    "xt": [0.0, 0.201576, 0.193001, 0.111852],
    "variance": [0.0, 0.440819, 0.884202, 0.984061],
}
SMOKE = get_preset("smoke")


def _spec(T: int) -> ModelSpec:
    return get_method("ddgan").spec_for(T)


@pytest.mark.parametrize("T", [1, 2, 4])
def test_betas_match_the_official_schedule(T: int) -> None:
    betas = ddgan_betas(T)
    assert betas.dtype == torch.float32
    torch.testing.assert_close(betas.double(), torch.tensor(OFFICIAL_BETAS[T], dtype=torch.float64), rtol=0, atol=1e-6)


def test_the_naive_time_grid_fails_the_schedule_test() -> None:
    # t_k = k / T instead of 0.001 + 0.999 k / T: the first beta is 0.476320, not 0.478255.
    naive = ddgan_betas(4, t_min=0.0)
    assert abs(float(naive[0]) - 0.476320) < 1e-6
    assert abs(float(naive[0]) - OFFICIAL_BETAS[4][0]) > 1e-6


def _posterior_by_conditioning(betas: torch.Tensor) -> dict[str, torch.Tensor]:
    """q(x_{t-1} | x_t, x_0) by conditioning the Gaussian pair (x_{t-1}, x_t) given x_0, not Ho et al.'s closed form."""
    beta = betas.double()
    a = torch.cumprod(1 - beta, 0)
    a_prev = torch.cat([a.new_ones(1), a[:-1]])
    cov = (1 - beta).sqrt() * (1 - a_prev)  # Cov(x_{t-1}, x_t | x_0)
    var_t = 1 - a  # Var(x_t | x_0)
    gain = cov / var_t
    return {"x0": a_prev.sqrt() - gain * a.sqrt(), "xt": gain, "variance": (1 - a_prev) - gain * cov}


def test_posterior_coefficients_match_the_official_values_and_gaussian_conditioning() -> None:
    got = posterior_coefficients(ddgan_betas(4))
    for key, want in OFFICIAL_POSTERIOR_T4.items():
        torch.testing.assert_close(got[key], torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-6)
    for T in (1, 2, 4):
        betas = ddgan_betas(T)
        got, want = posterior_coefficients(betas), _posterior_by_conditioning(betas)
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-12)
        assert got["x0"][0] == 1 and got["xt"][0] == 0 and got["variance"][0] == 0  # the last step returns x_0


class _RecordingGenerator(torch.nn.Module):
    """A stand-in G: a fixed x_0 map of (x_t, t, z), recording what it was given and what it returned."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x0 = torch.tanh(0.3 * x + z[:, :2] + 0.1 * t[:, None].float())
        self.calls.append((x, t, z, x0))
        return x0


@pytest.mark.parametrize("T", [1, 2, 4])
def test_sampling_is_the_posterior_chain_with_fresh_latents_and_returns_g_x0_last(T: int) -> None:
    model = build_model(_spec(T), SMOKE)
    gen = _RecordingGenerator()
    counted = CountingModel(gen)
    x_T = initial_noise((2,), 3, range(5))
    out = get_method("ddgan").sample(model, x_T, T, noise=ImageNoise(3, range(5)), net=counted)
    assert counted.nfe == T
    assert [int(c[1][0]) for c in gen.calls] == list(reversed(range(T)))  # t = T-1 down to 0
    torch.testing.assert_close(out, gen.calls[-1][3])  # the last step returns G's x_0, no noise added
    # Every step drew a fresh z from the images' "latent" streams, and went from x_t to x_{t-1} by the posterior
    # with the official coefficients and the "step" streams' noise.
    streams = ImageNoise(3, range(5))
    coef = posterior_coefficients(ddgan_betas(T))
    torch.testing.assert_close(gen.calls[0][0], x_T)
    for i, (x_t, t, z, x0) in enumerate(gen.calls):
        torch.testing.assert_close(z, streams.randn((model.nz,), "latent"), rtol=0, atol=0)
        if i + 1 < len(gen.calls):
            step = int(t[0])
            want = coef["x0"][step] * x0 + coef["xt"][step] * x_t + coef["variance"][step].sqrt() * streams.randn((2,))
            torch.testing.assert_close(gen.calls[i + 1][0], want.float())


def test_a_generator_trained_for_one_t_refuses_another_nfe() -> None:
    model = build_model(_spec(4), SMOKE)
    with pytest.raises(ValueError, match="trained for T = 4 denoising steps, so it samples at NFE 4 only, not 2"):
        get_method("ddgan").sample(model, torch.zeros(2, 2), 2, noise=ImageNoise(0, range(2)))


@pytest.mark.parametrize("bad", [0, -1, 1001])
def test_a_t_the_schedule_cannot_make_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="must be an integer from 1 to 1000"):
        get_method("ddgan").spec_for(bad)
    with pytest.raises(ValueError, match="must be an integer from 1 to 1000"):
        build_model(ModelSpec("ddgan", {"num_timesteps": bad}, tag="x"), SMOKE)


def test_bad_input_reaches_the_cli_user_before_any_training(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(L.Trainer, "fit", lambda *a, **k: pytest.fail("trained before refusing bad input"))
    assert main(["bench", "--method", "ddgan", "--preset", "smoke", "--nfe", "4,2000"]) == 2
    assert "cannot sample at NFE 2000" in capsys.readouterr().err
    assert main(["train", "--method", "ddgan", "--preset", "smoke", "--nfe", "0"]) == 2
    assert "must be an integer from 1 to 1000" in capsys.readouterr().err
    assert main(["bench", "--method", "ddgan", "--preset", "small"]) == 2
    assert "preset 'small' has no configuration for model 'ddgan': presets that have one: smoke" in capsys.readouterr().err


def _tiny(steps: int, **options: object):
    cfg = SMOKE.train_config("ddgan")
    cfg = cfg.replace(train_steps=steps, batch_size=16).with_options(**options)
    return SMOKE.replace(name="tiny", models={"ddgan": cfg})


def _fit_with(monkeypatch: pytest.MonkeyPatch, tmp_path, skip: str) -> tuple[DDGAN, DDGAN]:
    """One training step with the ``skip`` update replaced by nothing; returns (initial copy, trained model)."""
    preset = _tiny(1)
    L.seed_everything(0, verbose=False)
    initial = build_model(_spec(4), preset)  # train_model seeds and builds the same way: identical weights
    monkeypatch.setattr(DDGAN, skip, lambda self, x0: None)
    trained, _ = train_model(_spec(4), preset, device="cpu", root=tmp_path)
    return initial, trained


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_a_generator_step_leaves_the_discriminator_untouched(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    initial, trained = _fit_with(monkeypatch, tmp_path, skip="discriminator_step")
    assert _same(initial.disc, trained.disc)
    assert all(p.grad is None for p in trained.disc.parameters())  # no gradient leaked into D either
    assert not _same(initial.gen, trained.gen)


def test_a_discriminator_step_leaves_the_generator_untouched(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    initial, trained = _fit_with(monkeypatch, tmp_path, skip="generator_step")
    assert _same(initial.gen, trained.gen) and _same(initial.ema.module, trained.ema.module)
    assert all(p.grad is None for p in trained.gen.parameters())
    assert not _same(initial.disc, trained.disc)


def test_r1_runs_every_lazy_reg_iterations_and_train_steps_counts_iterations(monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path) -> None:
    calls: list[tuple[int, bool]] = []
    original = DDGAN.discriminator_loss

    def record(self: DDGAN, x0: torch.Tensor, with_r1: bool):
        calls.append((self.iteration, with_r1))
        return original(self, x0, with_r1)

    monkeypatch.setattr(DDGAN, "discriminator_loss", record)
    model, path = train_model(_spec(4), _tiny(7, lazy_reg=3), device="cpu", root=tmp_path)
    assert [i for i, _ in calls] == list(range(7))  # 7 training steps, though Lightning counted 14 optimizer steps
    assert [i for i, r1 in calls if r1] == [0, 3, 6]
    assert model.hparams.lazy_reg == 3
    assert torch.load(path, weights_only=False)["global_step"] == 14  # max_steps was doubled for the two optimizers


def test_r1_is_half_gamma_times_the_squared_input_gradient_norm() -> None:
    """Against central finite differences of the summed discriminator output, in float64."""
    model = build_model(_spec(4), SMOKE)
    model.disc.double()
    model.fake_pair = lambda x_t, t: torch.zeros_like(x_t)  # the fake half plays no part in R1
    x0 = torch.randn(8, 2, dtype=torch.float64)
    torch.manual_seed(5)
    r1 = model.discriminator_loss(x0, with_r1=True)["r1"]
    torch.manual_seed(5)  # the same t and pair as inside the loss
    t = model._draw_t(x0)
    x_prev, x_t = model.q_pair(x0, t)
    h, sq = 1e-6, 0.0
    with torch.no_grad():
        for i in range(8):
            for c in range(2):
                e = torch.zeros_like(x_prev)
                e[i, c] = h
                g = (model.disc(x_prev + e, x_t, t).sum() - model.disc(x_prev - e, x_t, t).sum()) / (2 * h)
                sq += float(g) ** 2
    assert float(r1) == pytest.approx(model.hparams.r1_gamma / 2 * sq / 8, rel=1e-6)


@pytest.fixture(scope="module")
def trained_smoke(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ddgan")
    model, path = train_model(_spec(4), SMOKE, device="cpu", root=root)
    return model, path, root


@pytest.mark.slow  # ~30-40 s: the smoke preset's 400 GAN iterations on one CPU thread
def test_toy2d_training_covers_the_modes_sharply(trained_smoke) -> None:
    model, path, _ = trained_smoke
    x_T = initial_noise((2,), 0, range(2000))
    x = get_method("ddgan").sample(model, x_T, 4, noise=ImageNoise(0, range(2000)))
    got = modes_toy2d(x, TOY2D_CENTERS, TOY2D_STD)
    # Within 3 std (0.15) of a mode: 7.6% of pure noise by area; 400 steps gave 84-86% and 25 modes on 3 seeds.
    assert got["modes"] >= 20
    assert got["high_quality"] > 0.5
    curves = pd.read_csv(next((path.parent / "logs").rglob("metrics.csv")))
    for col in ("train/g_loss", "train/d_loss", "train/r1"):
        assert curves[col].notna().any(), col
    assert curves["step"].max() < 400  # the logger's step counts iterations, not optimizer steps
    assert path.with_suffix(".loss.png").exists()


@pytest.mark.slow
def test_checkpoints_are_per_t_reused_and_refused_for_another_configuration(trained_smoke,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    model, path, root = trained_smoke
    assert path.name == "ddgan-T4-smoke.ckpt"
    monkeypatch.setattr(L.Trainer, "fit", lambda *a, **k: pytest.fail("retrained a cached checkpoint"))
    again, _ = train_model(_spec(4), SMOKE, device="cpu", root=root)
    assert _same(model.ema.module, again.ema.module)
    with pytest.raises(CheckpointError, match="train_steps: checkpoint has 400, asked for 401"):
        train_model(_spec(4), SMOKE.with_steps(401), device="cpu", root=root)
    other = root / "toy2d" / "ddgan-T2-smoke.ckpt"
    path.rename(other)  # a T = 4 checkpoint under the T = 2 name: its num_timesteps gives it away
    with pytest.raises(CheckpointError, match="num_timesteps"):
        train_model(_spec(2), SMOKE, device="cpu", root=root)
    other.rename(path)


def test_ddgan_is_registered_with_its_paper_default() -> None:
    method = METHODS["ddgan"]
    assert method.model == "ddgan" and method.default_nfe == (4,)
    assert method.spec_for(2) == ModelSpec("ddgan", {"num_timesteps": 2}, tag="ddgan-T2")
    assert math.isclose(DDGAN.optimizer_steps_per_batch, 2)
