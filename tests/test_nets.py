"""The shared networks: sizes from the presets, the paper's parameter count, conditioning options, EMA."""

from __future__ import annotations

import pytest
import torch

from trilemma_bench.ema import EMA
from trilemma_bench.nets import MLPDenoiser, UNet, build_net, count_params
from trilemma_bench.presets import PRESETS


def test_paper_preset_is_the_ddpm_cifar10_network() -> None:
    # Ho et al. 2020, App. B: 35.7M parameters for CIFAR-10.
    assert abs(count_params(build_net(PRESETS["paper"].train_config("ddpm").net)) / 1e6 - 35.7) < 0.05


@pytest.mark.parametrize("name", ["smoke", "digits", "small"])
def test_preset_networks_keep_the_data_shape(name: str) -> None:
    from trilemma_bench.data import DATASETS

    preset = PRESETS[name]
    shape = DATASETS[preset.dataset].shape
    x = torch.randn(3, *shape)
    out = build_net(preset.train_config("ddpm").net)(x, torch.tensor([0, 500, 999]))
    assert out.shape == x.shape


def test_unet_depends_on_time_z_and_fourier_features() -> None:
    torch.manual_seed(0)
    net = UNet(1, image_size=8, ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0,
               fourier=(6, 7), z_dim=4).eval()
    x, z = torch.randn(2, 1, 8, 8), torch.randn(2, 4)
    base = net(x, torch.tensor([10, 10]), z)
    assert not torch.allclose(base, net(x, torch.tensor([900, 900]), z))
    assert not torch.allclose(base, net(x, torch.tensor([10, 10]), torch.randn(2, 4)))
    with pytest.raises(ValueError, match="z_dim"):
        net(x, torch.tensor([1, 1]))


@pytest.mark.parametrize(
    ("size", "ch_mult", "attention_at"),
    [(7, (1, 2, 2), 1), (14, (1, 2, 2, 2), 2), (4, (1, 2), 0), (2, (1, 2), None), (8, (1, 2), 1)],
)
def test_unet_runs_on_sizes_that_are_not_powers_of_two(size: int, ch_mult: tuple[int, ...], attention_at: int | None) -> None:
    """7x7 (MNIST at f=4), 14x14 with three downsamplings (14 -> 7 -> 4 -> 2), 4x4 and 2x2 latents of digits;
    attention sits at the level whose real size is 4 (7 -> 4, not 7 // 2 = 3)."""
    from trilemma_bench.nets.unet import Attention

    torch.manual_seed(0)
    net = UNet(2, image_size=size, ch=8, ch_mult=ch_mult, num_res_blocks=1, attn_resolutions=(4,), dropout=0.0)
    x = torch.randn(3, 2, size, size)
    assert net(x, torch.tensor([0, 500, 999])).shape == x.shape
    where = [i for i, level in enumerate(net.down) if isinstance(level.attn[0], Attention)]
    assert where == ([] if attention_at is None else [attention_at])


@pytest.mark.parametrize("size", range(1, 10))
def test_cropped_upsampling_is_nearest_interpolation_to_the_size(size: int) -> None:
    from trilemma_bench.nets.unet import Upsample

    up = Upsample(3)
    with torch.no_grad():
        up[1].weight.zero_()
        up[1].weight[:, :, 1, 1] = torch.eye(3)  # the conv as the identity: what is left is the resampling
        up[1].bias.zero_()
    small = torch.randn(2, 3, (size + 1) // 2, (size + 1) // 2)
    want = torch.nn.functional.interpolate(small, size=(size, size), mode="nearest")
    torch.testing.assert_close(up(small, (size, size)), want)


@pytest.mark.parametrize(("size", "f", "latent"), [(8, 1, 8), (8, 2, 4), (8, 4, 2), (28, 4, 7), (28, 8, 4)])
def test_autoencoder_downsamples_by_f_and_decodes_back_to_the_image_size(size: int, f: int, latent: int) -> None:
    from trilemma_bench.nets.autoencoder import KLAutoencoder, levels_for

    ae = KLAutoencoder(1, image_size=size, ch=8, ch_mult=(1, 2, 2, 2)[: levels_for(f)], z_channels=3)
    x = torch.rand(2, 1, size, size) * 2 - 1
    recon, mean, logvar = ae(x)
    assert ae.f == f and mean.shape == logvar.shape == (2, 3, latent, latent) and ae.latent_shape == (3, latent, latent)
    assert recon.shape == x.shape
    with pytest.raises(ValueError, match=f"takes {latent}x{latent} latents"):
        ae.decode(torch.zeros(1, 3, latent + 1, latent + 1))


def test_unknown_network_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown network type"):
        build_net({"type": "transformer"})


def test_ema_follows_the_warmup_decay() -> None:
    net = MLPDenoiser(hidden=8, depth=1)
    ema = EMA(net, decay=0.9)
    start = [p.clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    d = min(0.9, 2 / 11)  # first update: (1 + n) / (10 + n) with n = 1
    for s, e, p in zip(start, ema.module.parameters(), net.parameters()):
        torch.testing.assert_close(e, d * s + (1 - d) * p)
    assert not ema.module.training
