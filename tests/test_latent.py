"""Latent diffusion: the autoencoder's round trip, the latent scale, unclipped latent sampling, refusal of a
checkpoint made on another autoencoder, and bench rows that time the decoder apart.

Everything trains a tiny configuration on digits for a few hundred steps at most (seconds on a CPU)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trilemma_bench import samplers
from trilemma_bench.checkpoints import CheckpointError
from trilemma_bench.data import load_split
from trilemma_bench.denoisers import GeneratorNoise, eps_denoiser
from trilemma_bench.methods import METHODS, ModelSpec, get_method
from trilemma_bench.methods.autoencoder import psnr, reconstruction_metrics
from trilemma_bench.methods.latent import autoencoder_spec
from trilemma_bench.methods.latent_samplers import FACTORS, latent_spec
from trilemma_bench.noise import ImageNoise, initial_noise
from trilemma_bench.presets import PRESETS, Preset, TrainConfig
from trilemma_bench.train import build_model, train_model

F = 2
AE_STEPS = 200
TINY = Preset(
    name="latent-test",
    dataset="digits",
    models={
        "kl-ae": TrainConfig({"type": "kl-autoencoder", "in_channels": 1, "image_size": 8, "ch": 8, "ch_mult": (1, 2, 2),
                              "num_res_blocks": 1, "mid_attention": False}, AE_STEPS, batch_size=64, lr=1e-2,
                             warmup_steps=20, grad_clip=0.0,
                             options={"f": F, "channels": FACTORS[F], "kl_weight": 1e-6, "recon_split": None}),
        "ldm": TrainConfig({"type": "unet", "ch": 8, "ch_mult": (1, 2), "num_res_blocks": 1, "attn_resolutions": (),
                            "dropout": 0.0}, 5, batch_size=64, lr=1e-3,
                           options={"num_train_timesteps": 1000, "beta_schedule": "linear", "f": F, "channels": FACTORS[F]}),
    },
    num_samples=64,
    sample_batch_size=32,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A tiny autoencoder (200 steps) and a latent model on it (5 steps: enough to have measured its scale)."""
    root = tmp_path_factory.mktemp("latent")
    ldm, path = train_model(latent_spec(F), TINY, device="cpu", root=root)
    ae, ae_path = train_model(autoencoder_spec(F, FACTORS[F]), TINY, device="cpu", root=root)  # reused
    return ldm, ae, root, path, ae_path


def test_trained_autoencoder_round_trip_beats_a_set_error(trained) -> None:
    _, ae, *_ = trained
    test, _ = load_split("digits", "test")
    untrained = build_model(autoencoder_spec(F, FACTORS[F]), TINY).eval()
    # The set error: a quarter of the test pixels' variance, i.e. the round trip must explain 75% of it (the
    # mean image alone explains none). 200 steps on 32 latent numbers per 64-pixel image reach about 80%.
    bound = 0.25 * test.var(dim=0).mean()
    assert torch.nn.functional.mse_loss(ae.reconstruct(test), test) < bound
    assert torch.nn.functional.mse_loss(untrained.reconstruct(test), test) > bound
    assert ae.net.f == F and tuple(ae.net.encode(test[:2])[0].shape) == (2, FACTORS[F], 4, 4)


def test_reconstruction_metrics_rank_a_trained_autoencoder_above_an_untrained_one(trained) -> None:
    _, ae, *_ = trained
    untrained = build_model(autoencoder_spec(F, FACTORS[F]), TINY).eval()
    good = reconstruction_metrics(ae, "digits", fid_split="test", extractor="raw")
    bad = reconstruction_metrics(untrained, "digits", fid_split="test", extractor="raw")
    assert good["recon_fid"] < 0.5 * bad["recon_fid"] and good["recon_psnr"] > bad["recon_psnr"] + 3
    assert good["recon_fid_split"] == "test" and good["recon_fid_n"] == len(load_split("digits", "test")[0])
    assert psnr(0.04) == pytest.approx(20.0)  # images in [-1, 1]: 10 log10(4 / 0.04)


def test_scale_makes_the_training_latents_unit_variance(trained) -> None:
    ldm, ae, root, *_ = trained
    train, _ = load_split("digits", "train")
    # Raw latents drawn here through the autoencoder itself, with noise of its own: 1/their std is the scale.
    mean, logvar = ae.net.encode(train)
    raw = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=torch.Generator().manual_seed(7))
    assert float(ldm.scale_factor) == pytest.approx(1 / raw.std().item(), rel=0.01)
    assert abs(raw.std().item() - 1) > 0.05  # the test means something: unscaled latents are not unit variance
    assert ldm.encode(train).std().item() == pytest.approx(1.0, abs=0.01)
    again, _ = train_model(latent_spec(F), TINY, device="cpu", root=root)  # the scale travels in the checkpoint
    assert float(again.scale_factor) == float(ldm.scale_factor)


def test_latent_sampling_does_not_clip(trained) -> None:
    """A network that predicts eps = 0 makes x0_hat = x_t / sqrt(a_t), far outside [-1, 1] at large t: clipping
    would change every step. The latent methods must match the unclipped samplers exactly."""
    ldm, *_ = trained
    zero = lambda x, t: torch.zeros_like(x)
    x_T = initial_noise(ldm.sample_shape, 0, range(4))
    for name, run in [
        ("ddpm-fixedsmall", lambda clip, noise: samplers.ddpm_sample(
            eps_denoiser(zero, ldm.alpha_bar), x_T, timesteps=samplers.ddpm_respaced_timesteps(1000, 10),
            variance="fixedsmall", clip_x0=clip, noise=noise)),
        ("ddim", lambda clip, noise: samplers.ddim_sample(eps_denoiser(zero, ldm.alpha_bar), x_T, nfe=10, clip_x0=clip,
                                                           noise=noise)),
    ]:
        got = get_method(f"ldm-f{F}-{name}").sample(ldm, x_T, 10, net=zero, noise=ImageNoise(0, range(4)))
        torch.testing.assert_close(got, run(False, ImageNoise(0, range(4))))
        assert not torch.allclose(got, run(True, ImageNoise(0, range(4))))
        assert got.abs().max() > 1


def test_pixel_ddpm_still_clips() -> None:
    """The other side of the check above: the image model's ancestral sampler does clip, so the latent one not
    clipping comes from the latent model, not from the sampler ignoring the flag."""
    from trilemma_bench.presets import get_preset

    pixel = build_model("ddpm", get_preset("digits")).eval()
    zero = lambda x, t: torch.zeros_like(x)
    x_T = initial_noise((1, 8, 8), 0, range(2))
    got = get_method("ddpm-fixedsmall").sample(pixel, x_T, 10, net=zero, noise=GeneratorNoise(torch.Generator().manual_seed(0)))
    want = samplers.ddpm_sample(eps_denoiser(zero, pixel.alpha_bar), x_T, timesteps=samplers.ddpm_respaced_timesteps(1000, 10),
                                variance="fixedsmall", clip_x0=True, noise=GeneratorNoise(torch.Generator().manual_seed(0)))
    torch.testing.assert_close(got, want)


def _copy_checkpoints(root: Path, dst_root: Path, *paths: Path) -> None:
    """Copies, so that the module's fixture stays as it was."""
    import shutil

    for src in paths:
        dst = dst_root / src.relative_to(root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)


def test_checkpoint_made_on_other_autoencoder_weights_is_refused(trained, tmp_path: Path) -> None:
    _, _, root, path, ae_path = trained
    _copy_checkpoints(root, tmp_path, path, ae_path)
    other = tmp_path / ae_path.relative_to(root)  # the same autoencoder configuration, one weight changed
    ckpt = torch.load(other, weights_only=False)
    ckpt["state_dict"]["net.decoder.stem.bias"][0] += 0.1
    torch.save(ckpt, other)
    with pytest.raises(CheckpointError, match="trained on the latents of autoencoder weights .* now holds"):
        train_model(latent_spec(F), TINY, device="cpu", root=tmp_path)
    train_model(latent_spec(F), TINY, device="cpu", root=root)  # the matching pair is accepted


def test_checkpoint_made_on_another_autoencoder_configuration_is_refused(trained, tmp_path: Path) -> None:
    _, _, root, path, _ = trained
    _copy_checkpoints(root, tmp_path, path)
    # Same latent model configuration, an autoencoder trained under another one (KL weight 1e-5, 2 steps).
    other = TINY.replace(models={**TINY.models, "kl-ae": TINY.models["kl-ae"].replace(train_steps=2).with_options(kl_weight=1e-5)})
    with pytest.raises(CheckpointError, match=r"another autoencoder configuration \(options: .*train_steps"):
        train_model(latent_spec(F), other, device="cpu", root=tmp_path)


def test_latent_model_needs_its_autoencoder_to_train() -> None:
    ldm = build_model(latent_spec(F), TINY)
    assert ldm.sample_shape == (FACTORS[F], 4, 4)
    with pytest.raises(RuntimeError, match="no trained autoencoder"):
        ldm.on_fit_start()


def test_every_f_has_its_methods_and_the_short_names_resolve() -> None:
    for f in FACTORS:
        for sampler in ("ddim", "ddpm-fixedsmall", "ddpm-fixedlarge", "dpmpp-2m", "dpmpp-3m-logsnr", "heun"):
            m = METHODS[f"ldm-f{f}-{sampler}"]
            assert m.decoder is not None and m.spec_for(10).tag == f"ldm-f{f}"
    assert get_method("ldm-ddim").name == "ldm-f2-ddim"
    assert get_method("ldm-heun").name == "ldm-f2-heun"
    with pytest.raises(ValueError, match="f must be a power of two"):
        build_model(ModelSpec("ldm", {"f": 3, "channels": 2}), TINY)


def test_bench_rows_time_the_decoder_apart(trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real latent method through the harness: sampler and decoder timed apart, both FLOPs counted."""

    from trilemma_bench.benchmark.harness import run_bench

    ldm, _, root, _, _ = trained
    monkeypatch.setattr("trilemma_bench.train.train_model", lambda *a, **k: (ldm, root / "x.ckpt"))
    monkeypatch.setitem(PRESETS, TINY.name, TINY)
    from trilemma_bench.benchmark.request import BenchRequest

    args = BenchRequest(method="ldm-ddim", preset=TINY.name, dataset=None, device="cpu", retrain=False, steps=None,
                              nfe=[5], seeds=[0], num_samples=64, batch_size=32, bf16=False, compile=False,
                              extractor="raw", results=tmp_path, threads=1, repeats=None)
    row = run_bench(args)[0]
    assert row["method"] == f"ldm-f{F}-ddim" and row["model"] == f"ldm-f{F}" and row["nfe"] == 5
    assert row["sampler_ms_per_image"] > 0 and row["decoder_ms_per_image"] > 0
    assert row["ms_per_image"] == pytest.approx(row["sampler_ms_per_image"] + row["decoder_ms_per_image"])
    assert row["decoder_gflops_per_image"] > 0
    # Every row of a latent model carries its first stage (LatentDiffusion.row_info): the reconstruction FID is the
    # ceiling the report draws.
    info = ldm.row_info()
    assert info["latent_shape"] == f"{FACTORS[F]}x4x4" and info["latent_scale"] == float(ldm.scale_factor)
    assert info["autoencoder"].startswith(f"kl-ae-f{F}-") and "recon_fid" in info
    for key in ("latent_shape", "latent_scale", "autoencoder", "recon_fid"):
        assert row[key] == info[key] or (math.isnan(row[key]) and math.isnan(info[key])), key
    # Its training compute, the autoencoder's training included, is recounted from the row alone (an untrained
    # copy, the row's per-call FLOPs) to what the bench counted on the trained model.
    import pandas as pd

    from trilemma_bench.benchmark.compute import recount

    assert row["train_gflops"] > ldm.pretrain_gflops > 0
    again = recount(pd.DataFrame([row]).assign(train_gflops=math.nan), {TINY.name: TINY})
    assert again["train_gflops"].iloc[0] == pytest.approx(row["train_gflops"], rel=1e-6)


def test_a_shipped_latent_model_holds_its_own_weights_and_takes_the_shipped_autoencoder(trained, tmp_path: Path) -> None:
    """Shipping a latent model ships its autoencoder as a model of its own; the latent model's file leaves the
    frozen autoencoder out (its digest names only what it trained) and, loaded, takes the shipped autoencoder back
    and samples exactly as the cached model."""
    from safetensors.torch import load_file

    from trilemma_bench.train import ship_model
    from trilemma_bench.weights import weights_id

    ldm, _, root, _, _ = trained
    shipped = tmp_path / "models"
    path = ship_model(latent_spec(F), TINY, root=root, shipped_root=shipped)
    assert not any(k.startswith("autoencoder.") for k in load_file(str(path)))
    assert list((shipped / "digits").glob(f"kl-ae-f{F}-latent-test-*.safetensors"))
    assert not list((shipped / "digits" / "curves").glob("kl-ae-*"))  # no rows cite the autoencoder's curve
    again, where = train_model(latent_spec(F), TINY, device="cpu", root=root, shipped_root=shipped)
    assert again.weights_source == "shipped" and where == path and weights_id(again) == weights_id(ldm)
    assert torch.equal(again.scale_factor, ldm.scale_factor)
    z = initial_noise(ldm.sample_shape, 0, range(4))
    method = get_method(f"ldm-f{F}-ddim")
    a = method.sample(ldm, z, 3, noise=ImageNoise(0, range(4)))
    b = method.sample(again, z, 3, noise=ImageNoise(0, range(4)))
    assert torch.equal(method.decoder(ldm)(a), method.decoder(again)(b))


def test_a_kept_checkpoint_loaded_names_the_autoencoder_it_samples_through(trained, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A kept (curve) checkpoint records no autoencoder of its own: loaded, it takes the trained one in, checks it,
    and its rows name it (they said "untrained" while sampling through the trained decoder)."""
    from trilemma_bench.train import curve_files, load_weights_file

    ldm, _, root, _, _ = trained
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "checkpoints").symlink_to(root)  # the prerequisites resolve through the default cache
    monkeypatch.setenv("TRILEMMA_BENCH_CACHE", str(tmp_path / "cache"))
    kept = curve_files(latent_spec(F), TINY, root=root)
    assert kept, "the tiny training kept no checkpoint"
    module = load_weights_file(latent_spec(F), TINY, kept[-1])
    named = module.row_info()["autoencoder"]
    assert "untrained" not in named and named == ldm.row_info()["autoencoder"]


def test_a_latent_models_training_compute_counts_its_encoder_and_its_autoencoders_training(trained) -> None:
    """Each step runs the frozen encoder on the batch besides the UNet's forward and backward (3 forwards), and
    the model cannot sample without its autoencoder's training: 3 forwards of encoder and decoder per image x
    batch x steps. Both from separate forward counts."""
    from trilemma_bench.flops import forward_flops

    ldm, ae, _, _, _ = trained
    x = torch.zeros(2, 1, 8, 8)
    c, side, _ = ldm.sample_shape
    unet = forward_flops(lambda: ldm.net(torch.zeros(2, c, side, side), torch.zeros(2, dtype=torch.long)))
    encoder = forward_flops(lambda: ldm.autoencoder.encode(x))
    assert ldm.train_passes == pytest.approx(3 + encoder / unet, rel=0.02) and encoder > 0
    whole = forward_flops(lambda: ae.net(x)) / 2
    cfg = TINY.train_config("kl-ae")
    assert ldm.pretrain_gflops == pytest.approx(3 * whole * cfg.batch_size * cfg.train_steps / 1e9, rel=0.02)
